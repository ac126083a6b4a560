"""PruningDataModule: unchanged batches, original indices, pruning, wrapping a user's data module."""

import lightning.pytorch as L
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from _modules import LitClassifier, quiet_trainer
from datadiet import DifficultyCallback, PruningDataModule, ScoreTable
from datadiet.data import IndexedBatch

N = 50


@pytest.fixture
def dataset():
    x = torch.arange(N * 3, dtype=torch.float32).reshape(N, 3)  # row i starts with 3 * i
    y = torch.arange(N) % 4
    return TensorDataset(x, y)


def test_batches_are_exactly_the_wrapped_datasets_batches(dataset):
    dm = PruningDataModule(dataset, batch_size=8)
    torch.manual_seed(123)
    ours = list(dm.train_dataloader())
    torch.manual_seed(123)
    plain = list(DataLoader(dataset, batch_size=8, shuffle=True))
    assert len(ours) == len(plain)
    for indexed, (x, y) in zip(ours, plain):
        assert isinstance(indexed, IndexedBatch)
        stripped = dm.on_before_batch_transfer(indexed, 0)
        assert isinstance(stripped, list) and len(stripped) == 2
        torch.testing.assert_close(stripped[0], x)
        torch.testing.assert_close(stripped[1], y)
        # the original index travels beside the batch and names the right rows
        assert torch.equal(dm.batch_original_index * 3, x[:, 0].long())


class BatchShapeProbe(LitClassifier):
    def __init__(self):
        super().__init__(nn.Linear(3, 4))
        self.seen = []

    def training_step(self, batch, batch_idx):
        assert type(batch) is list and len(batch) == 2, f"training_step got {type(batch)}"
        x, y = batch
        self.seen.append(x[:, 0].long() // 3)
        return super().training_step(batch, batch_idx)


def test_training_step_sees_plain_batches_and_pruned_subset(dataset):
    dm = PruningDataModule(dataset, batch_size=8)
    scores = np.arange(N, dtype=float)  # example i has difficulty i
    kept = dm.prune(scores, keep_fraction=0.2, strategy="hard")
    assert kept.tolist() == list(range(40, 50))
    assert dm.kept_indices.tolist() == kept.tolist()
    module = BatchShapeProbe()
    quiet_trainer(max_epochs=2).fit(module, datamodule=dm)
    per_epoch = torch.cat(module.seen).reshape(2, -1)
    for epoch in per_epoch:  # each kept example exactly once per epoch
        assert sorted(epoch.tolist()) == kept.tolist()
    assert dm.train_examples_served == 20
    dm.reset_pruning()
    assert dm.kept_indices is None
    assert len(dm.train_dataloader().dataset) == N


def test_prune_with_score_table_and_class_balance(dataset):
    dm = PruningDataModule(dataset)
    table = ScoreTable({"el2n": np.arange(N, dtype=float)})
    kept = dm.prune(table, score="el2n", keep_fraction=0.5, strategy="easy", class_balanced=True)
    labels = dataset.tensors[1].numpy()
    counts = np.bincount(labels[kept], minlength=4)
    assert counts.tolist() == [round(np.sum(labels == c) / 2) for c in range(4)]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(table=np.zeros(N - 1)), ValueError, r"has 49 values but the training set has 50"),
        (dict(table=ScoreTable({"el2n": np.zeros(N)}), score="aum"), ValueError, r"unknown score 'aum'.*el2n"),
        (dict(table=np.zeros(N), keep_fraction=0.0), ValueError, r"keep_fraction.*got 0.0"),
        (dict(table=np.zeros(N), strategy="medium"), ValueError, r"unknown strategy 'medium'"),
    ],
)
def test_prune_rejects_bad_input(dataset, kwargs, error, match):
    with pytest.raises(error, match=match):
        PruningDataModule(dataset).prune(**kwargs)


def test_class_balanced_without_labels_fails():
    dm = PruningDataModule(TensorDataset(torch.zeros(N, 2)))
    with pytest.raises(ValueError, match="needs class labels"):
        dm.prune(np.arange(N, dtype=float), class_balanced=True)


def test_constructor_validation(dataset):
    with pytest.raises(ValueError, match="batch_size.*got 0"):
        PruningDataModule(dataset, batch_size=0)
    with pytest.raises(ValueError, match="num_workers"):
        PruningDataModule(dataset, num_workers=-1)
    with pytest.raises(TypeError, match="map-style"):
        PruningDataModule(iter(range(3)))


def test_state_dict_restores_kept_indices(dataset):
    dm = PruningDataModule(dataset)
    dm.prune(np.arange(N, dtype=float), keep_fraction=0.1)
    restored = PruningDataModule(dataset)
    restored.load_state_dict(dm.state_dict())
    assert restored.kept_indices.tolist() == dm.kept_indices.tolist()
    with pytest.raises(ValueError, match="50 training examples"):
        PruningDataModule(TensorDataset(torch.zeros(3, 1))).load_state_dict(dm.state_dict())


class UserDataModule(L.LightningDataModule):
    """A user's existing data module, with its own batch hook."""

    def __init__(self):
        super().__init__()
        self.hook_calls = 0

    def setup(self, stage):
        x = torch.randn(40, 3)
        self.train_set = TensorDataset(x, (x[:, 0] > 0).long())
        self.val_set = TensorDataset(x[:8], (x[:8, 0] > 0).long())

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=5, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=4)

    def on_before_batch_transfer(self, batch, dataloader_idx):
        self.hook_calls += 1
        return batch


class WithValidation(LitClassifier):
    def __init__(self):
        super().__init__(nn.Linear(3, 2))
        self.val_batches = 0

    def validation_step(self, batch, batch_idx):
        self.val_batches += 1


def test_from_datamodule_wraps_and_forwards():
    user = UserDataModule()
    dm = PruningDataModule.from_datamodule(user)
    assert dm.batch_size == 5 and dm.shuffle and dm.num_examples == 40
    callback = DifficultyCallback(scores=("el2n", "forgetting"))
    module = WithValidation()
    quiet_trainer(max_epochs=1, num_sanity_val_steps=0, callbacks=[callback]).fit(module, datamodule=dm)
    assert module.val_batches == 2  # the user's val loader (8 examples, batch 4)
    assert user.hook_calls == 8 + 2  # the user's hook still sees every train and val batch
    assert not np.isnan(callback.score_table["forgetting"]).any()


class HookedModule(LitClassifier):
    def __init__(self):
        super().__init__(nn.Linear(3, 4))
        self.calls = 0

    def on_before_batch_transfer(self, batch, dataloader_idx):
        self.calls += 1
        return batch


def test_modules_own_batch_hook_still_runs(dataset):
    module = HookedModule()
    quiet_trainer(max_epochs=1).fit(module, datamodule=PruningDataModule(dataset, batch_size=10))
    assert module.calls == 5


class OrderRecorder(LitClassifier):
    def __init__(self):
        super().__init__(nn.Linear(3, 4))
        self.seen = {}

    def training_step(self, batch, batch_idx):
        self.seen.setdefault(self.trainer.current_epoch, []).extend(
            self.trainer.datamodule.batch_original_index.tolist()
        )
        return super().training_step(batch, batch_idx)


def test_a_resumed_fit_with_workers_keeps_the_uninterrupted_order(dataset, tmp_path, monkeypatch):
    # with workers, Lightning iterates a resumed run's first loader before it calls `set_epoch`
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)  # seed 0

    def fit(epochs, ckpt_path=None):
        module, trainer = OrderRecorder(), quiet_trainer(max_epochs=epochs)
        trainer.fit(module, datamodule=PruningDataModule(dataset, batch_size=10, num_workers=1), ckpt_path=ckpt_path)
        return trainer, module.seen

    _, uninterrupted = fit(3)
    trainer, _ = fit(2)
    trainer.save_checkpoint(tmp_path / "epoch2.ckpt")
    _, resumed = fit(3, tmp_path / "epoch2.ckpt")
    # a DistributedSampler of one replica: randperm seeded with seed + epoch
    expected = {epoch: torch.randperm(N, generator=torch.Generator().manual_seed(epoch)).tolist() for epoch in range(3)}
    assert uninterrupted == expected
    assert resumed == {2: expected[2]}
