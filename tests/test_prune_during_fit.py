"""PruneDuringFit: the kept subset is select() of the model's own scores at epoch k, computed independently,
and the epochs after k present only the kept examples."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch import nn
from torch.utils.data import TensorDataset

from _modules import LitClassifier, quiet_trainer
from _reference import softmax
from datadiet import PruneDuringFit, PruningDataModule, select

N, D, K = 60, 5, 3


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D)).astype(np.float32)
    y = (x[:, :K].argmax(axis=1) + (rng.random(N) < 0.25) * rng.integers(1, K, size=N)) % K
    return torch.tensor(x), torch.tensor(y, dtype=torch.long)


class Record(Callback):
    """Test-owned: the original indices presented in each epoch, and the weights at the end of each epoch."""

    def __init__(self):
        self.presented: dict[int, list[int]] = {}
        self.weights: dict[int, dict] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        index = trainer.datamodule.batch_original_index
        self.presented.setdefault(trainer.current_epoch, []).extend(index.tolist())

    def on_train_epoch_end(self, trainer, pl_module):  # runs before PruneDuringFit's: listed first
        self.weights[trainer.current_epoch] = copy.deepcopy(pl_module.state_dict())


def reference_el2n(state, x, y):
    weight, bias = state["model.weight"].double().numpy(), state["model.bias"].double().numpy()
    z = x.double().numpy() @ weight.T + bias
    return np.linalg.norm(softmax(z) - np.eye(K)[y.numpy()], axis=1)


@pytest.mark.parametrize("strategy, class_balanced", [("hard", False), ("easy", True)])
def test_kept_subset_is_select_of_the_scores_at_epoch_k(strategy, class_balanced):
    torch.manual_seed(0)
    x, y = data()
    record = Record()
    prune = PruneDuringFit(after_epochs=2, keep_fraction=0.4, strategy=strategy, class_balanced=class_balanced, seed=3)
    dm = PruningDataModule(TensorDataset(x, y), batch_size=16)
    quiet_trainer(max_epochs=4, callbacks=[record, prune]).fit(LitClassifier(nn.Linear(D, K), lr=0.5), datamodule=dm)

    scores = reference_el2n(record.weights[1], x, y)  # the model after 2 epochs on all data
    expected = select(scores, 0.4, strategy, labels=y.numpy(), class_balanced=class_balanced, seed=3)
    assert len(expected) == 24
    np.testing.assert_array_equal(prune.kept_indices, expected)
    np.testing.assert_array_equal(dm.kept_indices, expected)
    np.testing.assert_allclose(prune.score_table["el2n"], scores, rtol=1e-5, atol=1e-6)
    assert prune.pruned_after_epoch == 2 and prune.scored_examples == N
    for epoch in (0, 1):  # all data, each example once
        assert sorted(record.presented[epoch]) == list(range(N))
    for epoch in (2, 3):  # only the kept examples, each once
        assert sorted(record.presented[epoch]) == expected.tolist()


def test_random_needs_no_scoring_pass():
    torch.manual_seed(0)
    x, y = data()
    record = Record()
    prune = PruneDuringFit(after_epochs=1, strategy="random", keep_fraction=0.5, seed=7)
    dm = PruningDataModule(TensorDataset(x, y), batch_size=16)
    quiet_trainer(max_epochs=2, callbacks=[record, prune]).fit(LitClassifier(nn.Linear(D, K)), datamodule=dm)
    expected = np.sort(np.random.default_rng(7).choice(N, size=30, replace=False))
    np.testing.assert_array_equal(prune.kept_indices, expected)
    assert sorted(record.presented[1]) == expected.tolist()
    assert prune.scored_examples == 0
    with pytest.raises(RuntimeError, match="uses none"):
        prune.score_table


class WithValidation(LitClassifier):
    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))


def fit_with_checkpoints(tmp_path, max_epochs, ckpt_path=None, on_validation_end=False):
    torch.manual_seed(0)
    x, y = data()
    record = Record()
    prune = PruneDuringFit(after_epochs=1, keep_fraction=0.5, seed=1)
    dm = PruningDataModule(TensorDataset(x, y), TensorDataset(x, y), batch_size=16)
    checkpoint = ModelCheckpoint(
        dirpath=tmp_path, filename="{epoch}", save_top_k=-1, save_on_train_epoch_end=not on_validation_end
    )
    trainer = quiet_trainer(
        max_epochs=max_epochs, callbacks=[record, prune, checkpoint], enable_checkpointing=True, num_sanity_val_steps=0
    )
    trainer.fit(WithValidation(nn.Linear(D, K), lr=0.5), datamodule=dm, ckpt_path=ckpt_path)
    return prune, record, dm


def test_resume_after_pruning_trains_on_the_same_subset(tmp_path):
    full, full_record, _ = fit_with_checkpoints(tmp_path, max_epochs=3)
    resumed, record, dm = fit_with_checkpoints(tmp_path, max_epochs=3, ckpt_path=tmp_path / "epoch=1.ckpt")
    np.testing.assert_array_equal(resumed.kept_indices, full.kept_indices)
    np.testing.assert_array_equal(dm.kept_indices, full.kept_indices)
    assert sorted(record.presented[2]) == full.kept_indices.tolist()
    np.testing.assert_array_equal(resumed.score_table["el2n"], full.score_table["el2n"])
    assert resumed.score_table.labels is not None and resumed.scored_examples == N
    assert full_record.presented[2] == record.presented[2]  # the same batches, in the same order


def test_resume_from_a_checkpoint_saved_before_the_pruning_prunes_at_restart(tmp_path):
    # Saved at validation end of epoch 0: before PruneDuringFit's `on_train_epoch_end` pruned.
    full, _, _ = fit_with_checkpoints(tmp_path, max_epochs=3, on_validation_end=True)
    checkpoint = torch.load(tmp_path / "epoch=0.ckpt", weights_only=False)
    assert next(v for k, v in checkpoint["callbacks"].items() if "PruneDuringFit" in k)["kept_indices"] is None
    resumed, record, _ = fit_with_checkpoints(
        tmp_path, max_epochs=3, ckpt_path=tmp_path / "epoch=0.ckpt", on_validation_end=True
    )
    np.testing.assert_array_equal(resumed.kept_indices, full.kept_indices)
    assert sorted(record.presented[1]) == full.kept_indices.tolist()


def test_refusals():
    with pytest.raises(ValueError, match="after_epochs"):
        PruneDuringFit(after_epochs=0)
    with pytest.raises(ValueError, match="keep_fraction"):
        PruneDuringFit(keep_fraction=1.5)
    with pytest.raises(ValueError, match="unknown strategy"):
        PruneDuringFit(strategy="hardest")
    with pytest.raises(ValueError, match="unknown score"):
        PruneDuringFit(score="el3n")
    x, y = data()
    dm = PruningDataModule(TensorDataset(x, y), batch_size=16)
    with pytest.raises(ValueError, match="after_epochs=2.*max_epochs=2"):
        quiet_trainer(max_epochs=2, callbacks=[PruneDuringFit(after_epochs=2)]).fit(
            LitClassifier(nn.Linear(D, K)), datamodule=dm
        )
    dm.prune(np.arange(N, dtype=float), keep_fraction=0.5)
    with pytest.raises(ValueError, match="already pruned to 30 of 60"):
        quiet_trainer(max_epochs=3, callbacks=[PruneDuringFit(after_epochs=1)]).fit(
            LitClassifier(nn.Linear(D, K)), datamodule=dm
        )


def test_training_that_stops_before_the_pruning_warns():
    x, y = data()

    class StopEarly(Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            trainer.should_stop = True

    prune = PruneDuringFit(after_epochs=2)
    with pytest.warns(UserWarning, match="never pruned"):
        quiet_trainer(max_epochs=4, callbacks=[StopEarly(), prune]).fit(
            LitClassifier(nn.Linear(D, K)), datamodule=PruningDataModule(TensorDataset(x, y), batch_size=16)
        )
    assert not prune.pruned


def test_training_phase_score_reads_the_first_epochs():
    """forgetting from the first k epochs: the callback drives a DifficultyCallback over exactly those."""
    torch.manual_seed(0)
    x, y = data()
    prune = PruneDuringFit(after_epochs=3, score="forgetting", keep_fraction=0.5)
    dm = PruningDataModule(TensorDataset(x, y), batch_size=16)
    quiet_trainer(max_epochs=4, callbacks=[prune]).fit(LitClassifier(nn.Linear(D, K), lr=0.8), datamodule=dm)
    assert prune.score_table.metadata["probe_epochs"] == 3
    assert prune.scored_examples == 0  # a training-phase score needs no scoring pass
    assert len(prune.kept_indices) == 30


def test_a_second_fit_decides_anew():
    torch.manual_seed(0)
    x, y = data()
    prune = PruneDuringFit(after_epochs=1, keep_fraction=0.5)
    first = PruningDataModule(TensorDataset(x, y), batch_size=16)
    quiet_trainer(max_epochs=2, callbacks=[prune]).fit(LitClassifier(nn.Linear(D, K), lr=0.5), datamodule=first)
    kept_first = prune.kept_indices
    record = Record()
    model = LitClassifier(nn.Linear(D, K), lr=0.5)
    second = PruningDataModule(TensorDataset(x, y), batch_size=16)
    quiet_trainer(max_epochs=2, callbacks=[record, prune]).fit(model, datamodule=second)
    assert sorted(record.presented[0]) == list(range(N))  # the second fit starts on all data again
    np.testing.assert_array_equal(prune.kept_indices, select(reference_el2n(record.weights[0], x, y), 0.5, "hard"))
    assert kept_first is not None


class ScoresAtEpochStart(Callback):
    """Test-owned: DynamicPruning's per-example losses as each epoch starts (what that epoch's choice reads)."""

    def __init__(self, dynamic):
        self.dynamic, self.scores = dynamic, {}

    def on_train_epoch_start(self, trainer, pl_module):
        self.scores[trainer.current_epoch] = self.dynamic.scores


def test_dynamic_pruning_prunes_inside_the_in_run_subset_once_it_is_chosen():
    from datadiet import DynamicPruning

    torch.manual_seed(0)
    x, y = data()
    ratio = 0.5
    record = Record()
    prune = PruneDuringFit(after_epochs=1, keep_fraction=0.5, strategy="hard", seed=3)
    dynamic = DynamicPruning(prune_ratio=ratio, anneal_fraction=0.0, seed=1)
    scores = ScoresAtEpochStart(dynamic)
    dm = PruningDataModule(TensorDataset(x, y), batch_size=16)
    quiet_trainer(max_epochs=4, callbacks=[scores, record, prune, dynamic]).fit(
        LitClassifier(nn.Linear(D, K), lr=0.5), datamodule=dm
    )
    kept = prune.kept_indices
    assert sorted(record.presented[0]) == list(range(N))  # the first epoch presents everything
    for epoch in (1, 2, 3):
        presented = record.presented[epoch]
        assert len(presented) == len(set(presented)) and set(presented) <= set(kept.tolist())
        # InfoBatch over the kept subset, from the losses as the epoch starts: of its n below-mean
        # examples, floor((1 - r) n) are kept; every other kept example is presented
        loss = scores.scores[epoch][kept]
        below = int((loss < loss.mean()).sum())
        assert len(presented) == len(kept) - below + int(np.floor((1 - ratio) * below + 1e-9))


def test_state_dict_keeps_the_tables_labels_and_columns():
    from datadiet import ScoreTable

    prune = PruneDuringFit(after_epochs=1, keep_fraction=0.5)
    prune._score_table = ScoreTable({"el2n": np.array([0.5, 0.1, 0.9], dtype=np.float32)}, labels=np.array([0, 1, 1]),
                                    columns={"flagged": np.array([False, True, False])}, metadata={"seed": 1})  # fmt: skip
    prune.kept_indices = np.array([0, 2])
    state = prune.state_dict()
    assert isinstance(state["kept_indices"], torch.Tensor)
    restored = PruneDuringFit(after_epochs=1, keep_fraction=0.5)
    restored.load_state_dict(state)
    table = restored._score_table
    np.testing.assert_array_equal(table.labels, [0, 1, 1])
    np.testing.assert_array_equal(table.columns["flagged"], [False, True, False])
    assert table["el2n"].dtype == np.float32 and table.metadata == {"seed": 1}
    np.testing.assert_array_equal(restored.kept_indices, [0, 2])
    older = {**state, "kept_indices": [0, 2], "score_table": {k: v for k, v in state["score_table"].items()
                                                               if k not in ("labels", "columns")}}  # fmt: skip
    restored.load_state_dict(older)  # checkpoints of earlier versions: a list, no labels or columns
    assert restored._score_table.labels is None and restored.kept_indices.tolist() == [0, 2]
