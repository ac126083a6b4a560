"""DifficultyCallback against statistics recomputed in numpy from logits the test records itself."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from _modules import DictDataset, DictTupleClassifier, LitClassifier, quiet_trainer
from _reference import softmax
from datadiet import Adapter, DifficultyCallback, PruningDataModule
from datadiet.callbacks.presentation_buffer import PresentationBuffer
from datadiet.scores import get_score

N, D, K = 97, 6, 3


def noisy_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D)).astype(np.float32)
    y = (x[:, :K].argmax(axis=1) + (rng.random(N) < 0.2) * rng.integers(1, K, size=N)) % K  # 20 % label noise
    return torch.tensor(x), torch.tensor(y, dtype=torch.long)


def record_training_logits(module, x_all):
    """A test-owned forward hook: (original index, logits, train mode) of every forward call."""
    records = []

    def hook(mod, args, output):
        if mod.training:
            index = torch.cdist(args[0].detach().float(), x_all).argmin(dim=1)
            records.append((index.numpy(), output.detach().double().numpy()))

    module.register_forward_hook(hook)
    return records


def reference_forgetting(records, y, num_epochs, batches_per_epoch):
    """Toneva et al.: count 1 -> 0 transitions of argmax z == y over consecutive presentations."""
    correct_history = np.full((num_epochs, N), np.nan)
    for step, (index, logits) in enumerate(records):
        correct_history[step // batches_per_epoch, index] = logits.argmax(axis=1) == y[index]
    forgotten = np.zeros(N)
    previous = np.zeros(N, dtype=bool)
    for epoch in range(num_epochs):
        now = correct_history[epoch] == 1
        forgotten += previous & ~now
        previous = now
    ever = (correct_history == 1).any(axis=0)
    return forgotten, np.where(ever, forgotten, np.inf)


@pytest.mark.parametrize("buffer_examples", [None, 20])
def test_scores_match_numpy_reference(buffer_examples, monkeypatch):
    if buffer_examples is not None:  # scores updated every 20 examples instead of once an epoch: same values
        import datadiet.callbacks.difficulty as difficulty

        monkeypatch.setattr(difficulty, "PresentationBuffer", lambda: PresentationBuffer(max_examples=buffer_examples))
    torch.manual_seed(0)
    x, y = noisy_data()
    module = LitClassifier(nn.Sequential(nn.Linear(D, 16), nn.ReLU(), nn.Linear(16, K)), lr=0.8)
    records = record_training_logits(module, x)
    dm = PruningDataModule(TensorDataset(x, y), batch_size=16)
    callback = DifficultyCallback(scores=("el2n", "forgetting", "margin"))
    epochs = 8
    quiet_trainer(max_epochs=epochs, callbacks=[callback]).fit(module, datamodule=dm)
    table = callback.score_table
    y_np = y.numpy()

    assert len(records) == epochs * 7  # ceil(97 / 16) batches per epoch, one forward each
    raw_forgetting, oriented_forgetting = reference_forgetting(records, y_np, epochs, 7)
    assert raw_forgetting.max() >= 1, "the probe must forget something for this test to mean anything"
    np.testing.assert_array_equal(table.raw("forgetting"), raw_forgetting)
    np.testing.assert_array_equal(table["forgetting"], oriented_forgetting)

    # el2n and margin: eval-mode pass with the final model
    module.eval()
    with torch.no_grad():
        z = module(x).double().numpy()
    el2n = np.linalg.norm(softmax(z) - np.eye(K)[y_np], axis=1)
    others = z.copy()
    others[np.arange(N), y_np] = -np.inf
    margin = z[np.arange(N), y_np] - others.max(axis=1)
    np.testing.assert_allclose(table["el2n"], el2n, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(table.raw("margin"), margin, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(table["margin"], -margin, rtol=1e-5, atol=1e-5)
    assert table.labels.tolist() == y_np.tolist()
    assert table.metadata["probe_epochs"] == epochs


def test_eval_scores_use_eval_mode():
    """With dropout, a train-mode scoring pass would give different (random) logits."""
    torch.manual_seed(0)
    x, y = noisy_data()
    module = LitClassifier(nn.Sequential(nn.Linear(D, 64), nn.Dropout(0.5), nn.Linear(64, K)))
    callback = DifficultyCallback(scores="el2n")
    quiet_trainer(max_epochs=1, callbacks=[callback]).fit(module, datamodule=PruningDataModule(TensorDataset(x, y)))
    module.eval()
    with torch.no_grad():
        z = module(x).double().numpy()
    np.testing.assert_allclose(
        callback.score_table["el2n"], np.linalg.norm(softmax(z) - np.eye(K)[y.numpy()], axis=1), rtol=1e-5
    )
    assert module.training is False  # Lightning leaves it in eval after fit; we restored what we found


def test_one_line_adapter_for_dict_batches_and_tuple_outputs():
    torch.manual_seed(0)
    x, y = noisy_data()
    module = DictTupleClassifier(D, K)
    adapter = Adapter(input_fn=lambda b: b["x"], target_fn=lambda b: b["y"], logits_fn=lambda out: out[0])
    callback = DifficultyCallback(scores=("el2n", "forgetting"), adapter=adapter)
    quiet_trainer(max_epochs=2, callbacks=[callback]).fit(module, datamodule=PruningDataModule(DictDataset(x, y)))
    module.eval()
    with torch.no_grad():
        z = module(x)[0].double().numpy()
    expected = np.linalg.norm(softmax(z) - np.eye(K)[y.numpy()], axis=1)
    np.testing.assert_allclose(callback.score_table["el2n"], expected, rtol=1e-5)
    assert not np.isnan(callback.score_table["forgetting"]).any()


def test_never_seen_examples_are_nan():
    x, y = noisy_data()
    dm = PruningDataModule(TensorDataset(x, y), batch_size=10, shuffle=False)
    callback = DifficultyCallback(scores="forgetting")
    module = LitClassifier(nn.Linear(D, K))
    quiet_trainer(max_epochs=1, limit_train_batches=2, callbacks=[callback]).fit(module, datamodule=dm)
    forgetting = callback.score_table.raw("forgetting")
    assert not np.isnan(forgetting[:20]).any()
    assert np.isnan(forgetting[20:]).all()


def test_needs_pruning_datamodule():
    x, y = noisy_data()
    callback = DifficultyCallback()
    with pytest.raises(RuntimeError, match="PruningDataModule"):
        quiet_trainer(max_epochs=1, callbacks=[callback]).fit(
            LitClassifier(nn.Linear(D, K)), train_dataloaders=DataLoader(TensorDataset(x, y))
        )


def test_label_based_score_on_unlabelled_data_fails_fast():
    x, _ = noisy_data()
    callback = DifficultyCallback(scores=("el2n",))
    with pytest.raises(ValueError, match=r"\['el2n'\] need labels"):
        quiet_trainer(max_epochs=1, callbacks=[callback]).fit(
            LitClassifier(nn.Linear(D, K)), datamodule=PruningDataModule(TensorDataset(x))
        )


def test_constructor_validation():
    with pytest.raises(ValueError, match="unknown score 'el3n'; available: .*el2n"):
        DifficultyCallback(scores=("el3n",))
    with pytest.raises(ValueError, match="at least one score"):
        DifficultyCallback(scores=())
    with pytest.raises(ValueError, match="scoring_batch_size"):
        DifficultyCallback(scoring_batch_size=0)
    with pytest.raises(RuntimeError, match="after|once"):
        DifficultyCallback().score_table


def test_score_state_round_trip():
    score = get_score("forgetting")(5)
    logits = torch.tensor([[1.0, 0.0]] * 5)
    score.update(torch.arange(5), logits, torch.tensor([0, 0, 1, 1, 0]))
    score.end_epoch()
    restored = get_score("forgetting")(5)
    restored.load_state_dict(score.state_dict())
    for a, b in zip(score.compute(), restored.compute()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="shape"):
        get_score("forgetting")(6).load_state_dict(score.state_dict())


def test_mid_epoch_state_dict_holds_every_presentation_so_far():
    """A checkpoint taken mid-epoch (every_n_train_steps) must not lose the buffered presentations."""
    import lightning.pytorch as pl

    held = []

    class TakeStateMidEpoch(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx == 2:
                # a state dict shares memory with the live statistics (as nn.Module's does): copy to keep it
                held.append(difficulty.state_dict()["scores"]["aum"]["epoch_value"].clone())

    torch.manual_seed(0)
    x, y = noisy_data()
    difficulty = DifficultyCallback(scores=("aum", "el2n"))
    module = LitClassifier(nn.Sequential(nn.Linear(D, K)))
    trainer = quiet_trainer(max_epochs=1, callbacks=[difficulty, TakeStateMidEpoch()])
    trainer.fit(module, datamodule=PruningDataModule(TensorDataset(x, y), batch_size=16))
    assert int((~torch.isnan(held[0])).sum()) == 3 * 16
    assert not np.isnan(difficulty.score_table.raw("aum")).any()
