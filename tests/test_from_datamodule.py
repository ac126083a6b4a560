"""`PruningDataModule.from_datamodule` keeps the user's training pipeline, or refuses what it cannot keep."""

import warnings

import lightning.pytorch as L
import numpy as np
import pytest
import torch
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch import nn
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    SequentialSampler,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
)

from _modules import LitClassifier, quiet_trainer
from datadiet import PruningDataModule

N = 10


def make_dataset(n=N):
    x = torch.arange(n, dtype=torch.float32).unsqueeze(1)
    return TensorDataset(x, (torch.arange(n) % 2).long())


class LoaderModule(L.LightningDataModule):
    """A user's data module whose training loader is whatever the test passes."""

    def __init__(self, make_loader):
        super().__init__()
        self.make_loader = make_loader
        self.dataset = make_dataset()

    def train_dataloader(self):
        return self.make_loader(self.dataset)


def wrap(make_loader, **overrides):
    return PruningDataModule.from_datamodule(LoaderModule(make_loader), **overrides)


def epoch_indices(dm):
    """The original indices of one epoch of the training loader, batch by batch."""
    return [batch.original_index.tolist() for batch in dm.train_dataloader()]


def test_plain_batch_sampler_gives_its_batch_size_drop_last_and_shuffle():
    dm = wrap(lambda ds: DataLoader(ds, batch_sampler=BatchSampler(RandomSampler(ds), 4, drop_last=True)))
    assert (dm.batch_size, dm.drop_last, dm.shuffle) == (4, True, True)
    batches = epoch_indices(dm)
    assert [len(b) for b in batches] == [4, 4]  # 10 examples, batches of 4, the last 2 dropped
    dm = wrap(lambda ds: DataLoader(ds, batch_sampler=BatchSampler(SequentialSampler(ds), 3, drop_last=False)))
    assert epoch_indices(dm) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]


class EvenFirstBatchSampler(BatchSampler):
    pass


def test_custom_batch_sampler_is_refused_unless_replaced():
    make = lambda ds: DataLoader(ds, batch_sampler=EvenFirstBatchSampler(SequentialSampler(ds), 2, False))  # noqa: E731
    with pytest.raises(TypeError, match="batch sampler EvenFirstBatchSampler .* pass `batch_size=` and `shuffle=`"):
        wrap(make)
    dm = wrap(make, batch_size=5, shuffle=False)
    assert epoch_indices(dm) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]


def test_no_automatic_batching_is_refused():
    with pytest.raises(TypeError, match="batch_size=None"):
        wrap(lambda ds: DataLoader(ds, batch_size=None))


def test_weighted_sampler_is_honoured_and_follows_the_pruned_subset():
    weights = torch.tensor([0.0] * 5 + [1.0] * 5)  # only examples 5..9 can be drawn
    dm = wrap(lambda ds: DataLoader(ds, batch_size=5, sampler=WeightedRandomSampler(weights, N)))
    drawn = sum(epoch_indices(dm), [])
    assert len(drawn) == N and set(drawn) <= {5, 6, 7, 8, 9}
    # keep 0, 1, 2, 5, 6 (the five largest scores): of those only 5 and 6 have weight
    dm.prune(np.array([9, 8, 7, 0, 0, 6, 5, 0, 0, 0], dtype=float), keep_fraction=0.5, strategy="hard")
    assert dm.kept_indices.tolist() == [0, 1, 2, 5, 6]
    for _ in range(3):
        drawn = sum(epoch_indices(dm), [])
        assert len(drawn) == 5 and set(drawn) <= {5, 6}


def test_weighted_sampler_is_seeded_by_epoch(monkeypatch):
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)  # seed 0
    weights = torch.ones(N)
    dm = wrap(lambda ds: DataLoader(ds, batch_size=N, sampler=WeightedRandomSampler(weights, N, replacement=False)))
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(3)
    generator = torch.Generator().manual_seed(3)
    expected = torch.multinomial(torch.ones(N, dtype=torch.double), N, False, generator=generator)
    assert next(iter(loader)).original_index.tolist() == expected.tolist()


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda ds: DataLoader(ds, sampler=SubsetRandomSampler(range(5))), TypeError, "sampler SubsetRandomSampler"),
        (lambda ds: DataLoader(ds, sampler=RandomSampler(ds, replacement=True)), ValueError, "replacement=True"),
        (lambda ds: DataLoader(ds, sampler=RandomSampler(ds, num_samples=4)), ValueError, "num_samples=4"),
        (lambda ds: DataLoader(ds, sampler=WeightedRandomSampler(torch.ones(N), 3)), ValueError, "num_samples=3"),
    ],
)
def test_samplers_that_cannot_follow_a_subset_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        wrap(make)


def test_a_refused_sampler_can_be_replaced_explicitly():
    dm = wrap(lambda ds: DataLoader(ds, batch_size=N, sampler=SubsetRandomSampler(range(5))), shuffle=False)
    assert epoch_indices(dm) == [list(range(N))]


def _init_worker(worker_id):
    pass


def test_loader_settings_are_forwarded():
    generator = torch.Generator().manual_seed(7)
    dm = wrap(
        lambda ds: DataLoader(
            ds, batch_size=3, shuffle=True, drop_last=True, num_workers=2, pin_memory=True, persistent_workers=False,
            worker_init_fn=_init_worker, generator=generator, prefetch_factor=3, timeout=5,
        )
    )  # fmt: skip
    loader = dm.train_dataloader()
    assert (loader.batch_size, loader.drop_last, loader.num_workers, loader.pin_memory) == (3, True, 2, True)
    assert loader.persistent_workers is False  # the user's choice, not our default of True with workers
    assert (loader.worker_init_fn, loader.prefetch_factor, loader.timeout) == (_init_worker, 3, 5)
    assert loader.generator is generator
    scoring = dm.scoring_dataloader()
    assert (scoring.worker_init_fn, scoring.prefetch_factor, scoring.timeout) == (_init_worker, 3, 5)
    assert scoring.persistent_workers is False


class OrderRecorder(LitClassifier):
    def __init__(self):
        super().__init__(nn.Linear(1, 2))
        self.seen = []

    def training_step(self, batch, batch_idx):
        self.seen.append(self.trainer.datamodule.batch_original_index.tolist())
        return super().training_step(batch, batch_idx)


def test_the_generators_seed_seeds_the_shuffle_inside_a_trainer():
    dm = wrap(lambda ds: DataLoader(ds, batch_size=N, shuffle=True, generator=torch.Generator().manual_seed(7)))
    module = OrderRecorder()
    quiet_trainer(max_epochs=2).fit(module, datamodule=dm)
    # a DistributedSampler of one replica: randperm seeded with seed + epoch
    expected = [torch.randperm(N, generator=torch.Generator().manual_seed(7 + epoch)).tolist() for epoch in (0, 1)]
    assert module.seen == expected


def test_loader_options_are_validated():
    with pytest.raises(ValueError, match=r"got \['sampler'\]"):
        PruningDataModule(make_dataset(), loader_options={"sampler": None})
    with pytest.raises(ValueError, match="prefetch_factor'\\]=2` needs `num_workers` > 0"):
        PruningDataModule(make_dataset(), loader_options={"prefetch_factor": 2})
    with pytest.raises(ValueError, match="`sample_weights` must be one finite weight >= 0 per training example"):
        PruningDataModule(make_dataset(), sample_weights=[1.0, -1.0])


class TrainOnly(L.LightningDataModule):
    """A data module with a training loader only, as Lightning allows."""

    def train_dataloader(self):
        return DataLoader(make_dataset(), batch_size=5)


class Validating(LitClassifier):
    def __init__(self):
        super().__init__(nn.Linear(1, 2))
        self.val_batches = 0

    def validation_step(self, batch, batch_idx):
        self.val_batches += 1

    def test_step(self, batch, batch_idx):
        pass


def _fit_warnings(datamodule):
    module = Validating()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_trainer(max_epochs=1).fit(module, datamodule=datamodule)
    assert module.val_batches == 0
    return sorted({str(w.message) for w in caught if "val" in str(w.message)})


def test_a_data_module_without_validation_behaves_as_in_plain_lightning():
    wrapped = PruningDataModule.from_datamodule(TrainOnly())
    assert not is_overridden("val_dataloader", wrapped) and not is_overridden("test_dataloader", wrapped)
    assert _fit_warnings(wrapped) == _fit_warnings(TrainOnly())  # no crash, the same (Lightning's own) warnings
    assert not is_overridden("val_dataloader", PruningDataModule(make_dataset()))
    assert is_overridden("val_dataloader", PruningDataModule(make_dataset(), val_dataset=make_dataset()))
    with pytest.raises(MisconfigurationException, match="test_dataloader"):  # not a silent test on nothing
        quiet_trainer().test(Validating(), datamodule=wrapped)


class WeightRecorder(OrderRecorder):
    pass


def test_weighted_draws_inside_a_trainer_follow_the_trainers_epoch(monkeypatch):
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)  # seed 0
    weights = torch.arange(1.0, N + 1)
    dm = wrap(lambda ds: DataLoader(ds, batch_size=N, sampler=WeightedRandomSampler(weights, N)))
    module = WeightRecorder()
    quiet_trainer(max_epochs=2).fit(module, datamodule=dm)
    expected = [
        torch.multinomial(weights.double(), N, True, generator=torch.Generator().manual_seed(epoch)).tolist()
        for epoch in (0, 1)
    ]
    assert module.seen == expected
