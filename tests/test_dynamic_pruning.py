"""DynamicPruning (InfoBatch) against numpy references on worked cases, and inside real Trainers."""

import math

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DistributedSampler, TensorDataset

from _modules import quiet_trainer
from datadiet import DynamicPruning, PruningDataModule
from datadiet.callbacks.dynamic_rules import infobatch_subset, seta_subset
from datadiet.data.epoch_sampler import EpochSampler

NUM_FEATURES, NUM_CLASSES = 5, 3


def make_data(num_examples=60, seed=0):
    generator = torch.Generator().manual_seed(seed)
    y = torch.randint(NUM_CLASSES, (num_examples,), generator=generator)
    means = torch.randn(NUM_CLASSES, NUM_FEATURES, generator=generator)
    x = means[y] + 1.2 * torch.randn(num_examples, NUM_FEATURES, generator=generator)
    return TensorDataset(x.double(), y)


class Net(pl.LightningModule):
    """Lightning's docs classifier (batch-mean cross-entropy), float64, SGD with an optional schedule."""

    def __init__(self, lr=0.1, schedule=None, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(NUM_FEATURES, 8), nn.Tanh(), nn.Linear(8, NUM_CLASSES)).double()
        self.lr = lr
        self.schedule = schedule
        self.learning_rates = []

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.learning_rates.append(self.trainer.optimizers[0].param_groups[0]["lr"])

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.lr)
        if self.schedule is None:
            return optimizer
        scheduler = self.schedule(optimizer, self.trainer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class Record(pl.Callback):
    """The original indices (and DynamicPruning's weights) of every training batch, per epoch."""

    def __init__(self, pruning=None):
        self.pruning = pruning
        self.seen, self.weights, self.batches = {}, {}, {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        index = trainer.datamodule.batch_original_index.tolist()
        self.seen.setdefault(trainer.current_epoch, []).extend(index)
        self.batches.setdefault(trainer.current_epoch, []).append(index)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.pruning is not None:
            weights = self.pruning.batch_weights
            index = trainer.datamodule.batch_original_index.tolist()
            values = [1.0] * len(index) if weights is None else weights.tolist()
            self.weights.setdefault(trainer.current_epoch, {}).update(zip(index, values))


def reference_losses(model, data):
    """Each example's cross-entropy under `model`, computed independently (numpy log-softmax)."""
    with torch.no_grad():
        z = model(data.tensors[0]).numpy()
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(z)), data.tensors[1].numpy()]


def fit(model, data, callbacks, epochs, batch_size=8, **options):
    dm = options.pop("datamodule", None) or PruningDataModule(data, batch_size=batch_size, **options.pop("dm", {}))
    trainer = quiet_trainer(max_epochs=epochs, callbacks=callbacks, **options)
    trainer.fit(model, datamodule=dm)
    return trainer, dm


# The rule -------------------------------------------------------------------------------------------
def test_infobatch_rule_on_a_worked_case():
    scores = np.array([0.1, 0.2, np.nan, 0.9, 1.0, 0.3, 2.0, np.nan, 0.6])
    # mean of the 7 presented = 5.0 / 7 = 0.714...: below it 0, 1, 5, 8 (n = 4); r = 0.5 skips 2, keeps 2 at weight 2
    below = {0, 1, 5, 8}
    skipped_sets = set()
    for seed in range(30):
        keep, weights = infobatch_subset(scores, 0.5, np.random.default_rng(seed))
        skipped = set(np.flatnonzero(~keep).tolist())
        assert len(skipped) == 2 and skipped <= below
        skipped_sets.add(frozenset(skipped))
        expected = np.ones(9)
        expected[sorted(below - skipped)] = 2.0
        np.testing.assert_array_equal(weights, expected)
        assert keep[[2, 7]].all()  # never presented: always kept
    assert len(skipped_sets) == 6  # every pair of the 4 can be drawn: C(4, 2)


@pytest.mark.parametrize(
    "ratio, num_below, skipped", [(0.3, 10, 3), (0.7, 10, 7), (0.5, 3, 2), (0.9, 10, 9), (0.0, 5, 0)]
)
def test_infobatch_rule_keeps_floor_of_one_minus_r_times_n(ratio, num_below, skipped):
    # InfoBatch keeps ⌊(1 - r)·n⌋ of the n below-mean examples, free of float drift (0.7 * 10 is 7.000000000000001)
    scores = np.concatenate([np.zeros(num_below), np.full(num_below + 1, 10.0)])
    keep, weights = infobatch_subset(scores, ratio, np.random.default_rng(0))
    assert (~keep).sum() == skipped
    assert np.allclose(weights[:num_below][keep[:num_below]], 1 / (1 - ratio))
    assert np.all(weights[num_below:] == 1)


def test_nothing_seen_keeps_everything():
    keep, weights = infobatch_subset(np.full(4, np.nan), 0.5, np.random.default_rng(0))
    assert keep.all() and np.all(weights == 1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"prune_ratio": 1.0}, "`prune_ratio` must be a number in \\[0, 1\\), got 1.0"),
        ({"prune_ratio": -0.1}, "got -0.1"),
        ({"prune_ratio": True}, "got True"),
        ({"anneal_fraction": 1.5}, "`anneal_fraction` must be a number in \\[0, 1\\], got 1.5"),
        ({"seed": -1}, "`seed` must be an integer >= 0, got -1"),
        ({"weight_gradients": "yes"}, "`weight_gradients` must be True or False, got 'yes'"),
        ({"rule": "infobat"}, "`rule` can be infobatch or seta, got 'infobat'"),
        ({"num_groups": 0}, "`num_groups` must be a positive integer, got 0"),
        ({"window_scale": 0.0}, "`window_scale` must be a number in \\(0, 1\\], got 0.0"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DynamicPruning(**kwargs)


def test_seta_rule_on_a_worked_case():
    # five well separated loss groups of 20 (centres 0..4); r = 0.25 samples 75; window round(5 * 0.6) = 3
    scores = np.repeat(np.arange(5.0), 20) + np.tile(np.linspace(0, 0.1, 20), 5)
    scores[[3, 47]] = np.nan  # never presented: kept whenever sampled
    for step, groups in [(0, {0, 1, 2, 3, 4}), (1, {1, 2, 3}), (2, {2, 3, 4}), (3, {0, 1, 2}), (None, {0, 1, 2, 3, 4})]:
        keep, weights = seta_subset(scores, 0.25, np.random.default_rng(7), step, num_groups=5, window_scale=0.6)
        sample = set(np.random.default_rng(7).choice(100, size=75, replace=False).tolist())
        expected = {i for i in sample if i in (3, 47) or int(scores[i]) in groups}
        assert set(np.flatnonzero(keep).tolist()) == expected, step
        assert np.all(weights == 1)


def test_seta_in_a_trainer_presents_the_sliding_window():
    data = make_data(80)
    model = Net(lr=0.0)
    pruning, record = (
        DynamicPruning(prune_ratio=0.25, anneal_fraction=0.25, rule="seta", num_groups=4, window_scale=0.5),
        Record(),
    )
    fit(model, data, [pruning, record], epochs=4)
    assert len(record.seen[0]) == 60  # the random 75 % (nothing scored yet: every sampled example kept)
    assert 0 < len(record.seen[1]) < 60 and len(record.seen[3]) == 60  # a window; then the annealed sample
    losses = reference_losses(model, data)
    assert losses[record.seen[1]].max() < losses[record.seen[2]].max()  # the window slid from easy to hard
    assert all(len(set(seen)) == len(seen) for seen in record.seen.values())


def test_anneal_epochs():
    assert DynamicPruning(anneal_fraction=0.125).first_anneal_epoch(30) == 27  # ⌊0.125 * 30⌋ = 3 epochs
    assert DynamicPruning(anneal_fraction=0.125).first_anneal_epoch(200) == 175
    assert DynamicPruning(anneal_fraction=0.0).first_anneal_epoch(15) == 15


# The sampler ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("size, replicas", [(10, 1), (11, 2), (7, 3)])
def test_epoch_sampler_without_subset_is_distributed_sampler(size, replicas):
    data = list(range(size))
    for rank in range(replicas):
        for epoch in (0, 3):
            reference = DistributedSampler(data, num_replicas=replicas, rank=rank, shuffle=True, seed=5)
            reference.set_epoch(epoch)
            sampler = EpochSampler(data, lambda e: None, num_replicas=replicas, rank=rank, shuffle=True, seed=5)
            sampler.set_epoch(epoch)
            assert list(sampler) == list(reference) and len(sampler) == len(reference)


def test_epoch_sampler_shards_a_subset_once_per_epoch():
    positions = np.array([1, 4, 5, 8, 9])
    shards = [
        list(EpochSampler(list(range(12)), lambda e: positions, lambda: 2, num_replicas=2, rank=rank, seed=1))
        for rank in range(2)
    ]
    assert [len(shard) for shard in shards] == [3, 3]
    seen = shards[0] + shards[1]
    assert set(seen) == set(positions.tolist()) and len(seen) == 6  # each once, plus one padding repeat


def _list_recipe(size, positions, replicas, rank, seed, epoch, shuffle=True):
    """The sampler as it was written with Python lists (DistributedSampler's recipe over the positions)."""
    order = (
        torch.randperm(size, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
        if shuffle
        else list(range(size))
    )
    indices = order if positions is None else positions[order].tolist()
    total = math.ceil(size / replicas) * replicas
    if total > size and indices:
        indices += (indices * math.ceil((total - size) / len(indices)))[: total - size]
    return indices[rank:total:replicas]


@pytest.mark.parametrize("size, replicas", [(1, 4), (2, 5), (13, 3), (40, 1), (0, 2)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_epoch_sampler_chunks_equal_the_list_recipe(monkeypatch, size, replicas, shuffle):
    from datadiet.data import epoch_sampler

    monkeypatch.setattr(epoch_sampler, "_CHUNK", 3)  # several chunks per epoch
    data = list(range(50))
    for positions in (None, np.sort(np.random.default_rng(size).choice(50, size, replace=False))):
        epoch_size = len(data) if positions is None else size
        for rank in range(replicas):
            sampler = EpochSampler(data, lambda e: positions, lambda: 3, num_replicas=replicas, rank=rank,
                                   shuffle=shuffle, seed=7)  # fmt: skip
            drawn = list(sampler)
            assert drawn == _list_recipe(epoch_size, positions, replicas, rank, 7, 3, shuffle)
            assert all(type(index) is int for index in drawn) and len(drawn) == len(sampler)


def test_int32_permutation_is_torchs_int64_one():
    for size in (17, 100_003):
        first = torch.randperm(size, generator=torch.Generator().manual_seed(3))
        second = torch.randperm(size, generator=torch.Generator().manual_seed(3), dtype=torch.int32)
        assert torch.equal(first, second.long())


# In a Trainer ---------------------------------------------------------------------------------------
def test_epochs_follow_the_rule_on_a_frozen_model():
    # lr = 0: every example's loss is fixed, so the numpy reference knows which examples may be skipped
    data = make_data(60)
    model = Net(lr=0.0)
    losses = reference_losses(model, data)
    below = set(np.flatnonzero(losses < losses.mean()).tolist())
    pruning = DynamicPruning(prune_ratio=0.5, anneal_fraction=0.25)
    record = Record(pruning)
    fit(model, data, [pruning, record], epochs=8)
    skipped_count = len(below) - math.floor(0.5 * len(below))
    assert sorted(record.seen[0]) == list(range(60))  # first epoch: everything, never seen before
    for epoch in range(8):
        seen = record.seen[epoch]
        assert len(seen) == len(set(seen)), "an example presented twice in one epoch"
        weights = record.weights[epoch]
        if epoch == 0 or epoch >= 6:  # first epoch, and the last ⌊0.25 * 8⌋ = 2 epochs: all data, weight 1
            assert sorted(seen) == list(range(60)) and set(weights.values()) == {1.0}
            continue
        skipped = set(range(60)) - set(seen)
        assert skipped <= below and len(skipped) == skipped_count
        for index, weight in weights.items():
            assert weight == (2.0 if index in below else 1.0)
    assert pruning.kept_per_epoch == [len(record.seen[e]) for e in range(8)]
    assert pruning.presentations_per_epoch == pruning.kept_per_epoch
    np.testing.assert_allclose(pruning.scores, losses, rtol=1e-6)  # stored as float32
    assert len({frozenset(record.seen[e]) for e in range(1, 6)}) > 1  # a new draw each epoch


@pytest.mark.parametrize("accumulate", [1, 2])
def test_hooked_gradient_equals_the_explicitly_weighted_loss(accumulate):
    # Epoch 0 has lr 0 (records the losses), epoch 1 takes one SGD step of the whole kept set (in
    # `accumulate` micro-batches); the reference applies InfoBatch's weights to the loss explicitly.
    data = make_data(40)
    schedule = lambda optimizer, trainer: torch.optim.lr_scheduler.LambdaLR(  # noqa: E731
        optimizer,
        lambda step: 0.0 if step == 0 else 1.0,  # one optimizer step per epoch
    )
    model = Net(lr=0.5, schedule=schedule)
    initial = Net(lr=0.5)
    pruning = DynamicPruning(prune_ratio=0.5, anneal_fraction=0.0)
    record = Record(pruning)
    batch_size = math.ceil(40 / accumulate)
    fit(model, data, [pruning, record], epochs=2, batch_size=batch_size, accumulate_grad_batches=accumulate)
    losses = reference_losses(initial, data)
    below = losses < losses.mean()
    x, y = data.tensors
    total = 0.0
    for index in record.batches[1]:
        index = torch.tensor(index)
        weights = torch.where(torch.from_numpy(below)[index], 2.0, 1.0).double()
        per_example = F.cross_entropy(initial(x[index]), y[index], reduction="none")
        total = total + (weights * per_example).mean() / accumulate
    total.backward()
    with torch.no_grad():
        for parameter in initial.parameters():
            parameter -= 0.5 * parameter.grad
    assert len(record.seen[1]) < 40  # epoch 1 was pruned
    difference = max((a - b).abs().max().item() for a, b in zip(model.parameters(), initial.parameters()))
    print(f"max |hooked - explicitly weighted| parameter difference after one step: {difference:.3g}")
    assert difference < 1e-14


def test_gradient_hook_equals_weighted_loss_through_batch_norm():
    # rows coupled upstream of the logits (BatchNorm) still give the weighted loss's exact gradient
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3)).double()
    x, y = torch.randn(10, 4).double(), torch.randint(3, (10,))
    w = torch.rand(10).double() + 0.5
    logits = net(x)
    logits.register_hook(lambda grad: grad * w[:, None])
    F.cross_entropy(logits, y).backward()
    hooked = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    (w * F.cross_entropy(net(x), y, reduction="none")).mean().backward()
    for a, p in zip(hooked, net.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=0, atol=1e-15)


def test_resume_gives_the_same_kept_sets_and_weights(tmp_path):
    data = make_data(48)
    make_pruning = lambda: DynamicPruning(prune_ratio=0.6, anneal_fraction=0.2)  # noqa: E731
    pruning, record = make_pruning(), Record()
    reference_model = Net(lr=0.3)
    fit(reference_model, data, [pruning, record], epochs=5, dm={"num_workers": 2})
    trainer, _ = fit(Net(lr=0.3), data, [make_pruning()], epochs=3, dm={"num_workers": 2})
    trainer.save_checkpoint(tmp_path / "epoch3.ckpt")
    # with workers, Lightning iterates a resumed run's first loader before `set_epoch`: the sampler reads the
    # Trainer's epoch instead, so the resumed epoch keeps the same examples in the same order
    resumed_pruning, resumed_record = make_pruning(), Record()
    resumed = Net(lr=0.3, seed=7)
    trainer = quiet_trainer(max_epochs=5, callbacks=[resumed_pruning, resumed_record])
    dm = PruningDataModule(data, batch_size=8, num_workers=2)
    trainer.fit(resumed, datamodule=dm, ckpt_path=tmp_path / "epoch3.ckpt")
    assert sorted(resumed_record.seen) == [3, 4]
    for epoch in (3, 4):
        assert resumed_record.seen[epoch] == record.seen[epoch]  # same examples, same order
    assert len(set(record.seen[3])) < 48  # epoch 3 was pruned (epoch 4 is annealed)
    assert resumed_pruning.kept_per_epoch == pruning.kept_per_epoch
    for a, b in zip(resumed.parameters(), reference_model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_checkpoint_after_validation_is_merged_on_resume(tmp_path):
    # Lightning's default ModelCheckpoint saves after validation, before `on_train_epoch_end`
    data = make_data(40)
    reference, record = DynamicPruning(prune_ratio=0.5, anneal_fraction=0.0), Record()
    fit(Net(), data, [reference, record], epochs=3, datamodule=PruningDataModule(data, data, batch_size=8))
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    fit(
        Net(),
        data,
        [DynamicPruning(prune_ratio=0.5, anneal_fraction=0.0), checkpoint],
        epochs=2,
        datamodule=PruningDataModule(data, data, batch_size=8),
        enable_checkpointing=True,
    )
    resumed, resumed_record = DynamicPruning(prune_ratio=0.5, anneal_fraction=0.0), Record()
    trainer = quiet_trainer(max_epochs=3, callbacks=[resumed, resumed_record])
    trainer.fit(Net(), datamodule=PruningDataModule(data, data, batch_size=8), ckpt_path=tmp_path / "last.ckpt")
    assert resumed_record.seen[2] == record.seen[2]
    np.testing.assert_array_equal(resumed.scores, reference.scores)


def test_workers_and_limit_train_batches():
    data = make_data(64)
    runs = {}
    for workers in (0, 2):
        pruning, record = DynamicPruning(prune_ratio=0.5, anneal_fraction=0.0), Record()
        fit(Net(), data, [pruning, record], epochs=4, limit_train_batches=5, dm={"num_workers": workers})
        runs[workers] = record.seen, pruning
    (seen, pruning), (seen_workers, _) = runs[0], runs[2]
    assert seen == seen_workers
    for epoch in range(4):
        assert len(seen[epoch]) == len(set(seen[epoch])) == 40  # 5 batches of 8, whatever the epoch's kept size
    # examples beyond the limit were never presented in epoch 0 (never scored), so epoch 1 keeps them all
    never_presented = set(range(64)) - set(seen[0])
    assert pruning.kept_per_epoch[1] >= len(never_presented) and pruning.kept_per_epoch[1] < 64
    assert pruning.presentations_per_epoch == [40] * 4


def test_fraction_limit_follows_the_pruned_epoch():
    data = make_data(64)
    pruning, record = DynamicPruning(prune_ratio=0.8, anneal_fraction=0.0), Record()
    fit(Net(), data, [pruning, record], epochs=3, limit_train_batches=0.5)
    for epoch in range(3):
        batches = math.ceil(pruning.kept_per_epoch[epoch] / 8)
        assert len(record.batches[epoch]) == int(batches * 0.5)


def test_static_subset_then_dynamic_pruning_inside_it():
    data = make_data(60)
    dm = PruningDataModule(data, batch_size=8)
    kept = dm.prune(np.arange(60.0), keep_fraction=0.5, strategy="hard")  # examples 30..59
    pruning, record = DynamicPruning(prune_ratio=0.5, anneal_fraction=0.0), Record()
    fit(Net(), data, [pruning, record], epochs=3, datamodule=dm)
    assert sorted(record.seen[0]) == kept.tolist()
    for epoch in (1, 2):
        assert set(record.seen[epoch]) < set(kept.tolist()) and len(set(record.seen[epoch])) == len(record.seen[epoch])
    assert np.isnan(pruning.scores[:30]).all() and not np.isnan(pruning.scores[30:]).any()
    assert dm.epoch_subset_fn is None  # a later Trainer without the callback trains on the whole kept subset


@pytest.mark.parametrize("stretch", [True, False])
def test_one_cycle_schedule_ends_where_the_full_data_schedule_ends(stretch):
    data = make_data(64)
    epochs, full = 4, 8  # a full epoch: 8 batches of 8
    schedule = lambda optimizer, trainer: torch.optim.lr_scheduler.OneCycleLR(  # noqa: E731
        optimizer, max_lr=0.5, total_steps=trainer.estimated_stepping_batches
    )
    model = Net(schedule=schedule)
    pruning, record = DynamicPruning(prune_ratio=0.7, anneal_fraction=0.0, stretch_step_schedules=stretch), Record()
    trainer, _ = fit(model, data, [pruning, record], epochs=epochs)
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert scheduler.total_steps == epochs * full  # `estimated_stepping_batches` counted full epochs
    batches = [len(record.batches[e]) for e in range(epochs)]
    assert sum(batches) < epochs * full  # pruned epochs are shorter
    if not stretch:
        assert scheduler.last_epoch == sum(batches)  # stops short of the schedule's end
        return
    # reference: a fresh OneCycleLR; after batch k of epoch e the full-data run has stepped it full·e + k times
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    reference = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.5, total_steps=epochs * full)
    after = [optimizer.param_groups[0]["lr"]]
    for _ in range(epochs * full):
        optimizer.step()
        reference.step()
        after.append(optimizer.param_groups[0]["lr"])
    assert scheduler.last_epoch == epochs * full
    lrs, position = np.array(model.learning_rates), 0
    for epoch, count in enumerate(batches):
        expected = [after[full * epoch + (k * full) // count] for k in range(1, count + 1)]
        np.testing.assert_allclose(lrs[position : position + count], expected, rtol=1e-12)
        position += count  # the epoch ends where the full-data schedule's epoch ends: after[full * (epoch + 1)]


def test_needs_a_pruning_datamodule_and_a_bounded_run():
    data = make_data(16)
    trainer = quiet_trainer(max_epochs=1, callbacks=[DynamicPruning()])
    with pytest.raises(RuntimeError, match="PruningDataModule"):
        trainer.fit(Net(), train_dataloaders=torch.utils.data.DataLoader(data, batch_size=8))
    trainer = quiet_trainer(max_epochs=-1, max_steps=3, callbacks=[DynamicPruning(anneal_fraction=0.1)])
    with pytest.raises(ValueError, match="max_epochs=-1"):
        trainer.fit(Net(), datamodule=PruningDataModule(data, batch_size=8))
    dm = PruningDataModule(data, batch_size=8, sample_weights=np.ones(16))
    with pytest.raises(ValueError, match="sample_weights"):
        quiet_trainer(max_epochs=1, callbacks=[DynamicPruning()]).fit(Net(), datamodule=dm)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_per_step_hooks_never_wait_on_the_device():
    class NoSync(DynamicPruning):
        """Fails on any host–device synchronisation inside the per-step hooks (the forward hook included)."""

        def _guarded(self, hook, *args):
            torch.cuda.set_sync_debug_mode("error")
            try:
                return hook(*args)
            finally:
                torch.cuda.set_sync_debug_mode("default")

        def on_train_batch_start(self, *args):
            self._guarded(super().on_train_batch_start, *args)

        def on_train_batch_end(self, *args):
            self._guarded(super().on_train_batch_end, *args)

        def _capture_output(self, *args):
            self._guarded(super()._capture_output, *args)

    data = make_data(64)
    pruning = NoSync(prune_ratio=0.5, anneal_fraction=0.0)
    trainer = quiet_trainer(accelerator="cuda", devices=1, max_epochs=3, callbacks=[pruning])
    trainer.fit(Net(), datamodule=PruningDataModule(data, batch_size=8))
    assert pruning.kept_per_epoch[0] == 64 and pruning.kept_per_epoch[1] < 64
