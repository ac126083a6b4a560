"""Streams: a litdata StreamingDataset and a plain IterableDataset, read in their own order and pruned by a
filter; no item is read by integer index, only kept examples reach ``training_step``, and the statistics are
those of the same data served map-style (and of an EL2N recomputed by hand)."""

import copy
import multiprocessing

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset, get_worker_info

from _modules import LitClassifier, quiet_trainer
from _reference import softmax
from datadiet import DifficultyCallback, DynamicPruning, PruneDuringFit, PruningDataModule

litdata = pytest.importorskip("litdata")

N, D, K = 240, 5, 3


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D)).astype(np.float32)
    y = (x[:, :K].argmax(axis=1) + (rng.random(N) < 0.25) * rng.integers(1, K, size=N)) % K
    return torch.tensor(x), torch.tensor(y, dtype=torch.long)


def _item(i):
    x, y = data()
    return x[i], int(y[i])


@pytest.fixture(scope="module")
def litdata_dir(tmp_path_factory):
    """A litdata dataset of the N (x, y) items, in chunks of 40 (optimized once per module)."""
    out = tmp_path_factory.mktemp("litdata") / "optimized"
    before = multiprocessing.get_start_method(allow_none=True)
    litdata.optimize(
        fn=_item,
        inputs=list(range(N)),
        output_dir=str(out),
        chunk_size=40,
        num_workers=1,
        start_method="fork",
        verbose=False,
    )
    multiprocessing.set_start_method(before, force=True)  # optimize sets it for the whole process
    return str(out)


class CountedStreamingDataset(litdata.StreamingDataset):
    """Counts reads by integer index (random access) and reads by litdata's own ChunkedIndex (streaming)."""

    int_reads = 0
    chunked_reads = 0

    def __getitem__(self, index):
        if isinstance(index, int):
            type(self).int_reads += 1
        else:
            type(self).chunked_reads += 1
        return super().__getitem__(index)


class DictStream(IterableDataset):
    """A plain stream of dict items carrying their index, in a fixed (non-identity) order, sharded by worker."""

    def __init__(self, order, x, y, with_len=False):
        self.order, self.x, self.y = list(order), x, y
        if with_len:
            self.__class__ = DictStreamWithLen

    def __iter__(self):
        info = get_worker_info()
        share = self.order if info is None else self.order[info.id :: info.num_workers]
        for i in share:
            yield {"index": i, "x": self.x[i], "y": self.y[i]}


class DictStreamWithLen(DictStream):
    def __len__(self):
        return len(self.order)


class DictClassifier(LitClassifier):
    def forward(self, x):
        return self.model(x["x"] if isinstance(x, dict) else x)

    def training_step(self, batch, batch_idx):
        assert set(batch) == {"index", "x", "y"} and batch["x"].shape[1:] == (D,)
        return super().training_step((batch["x"], batch["y"]), batch_idx)


class Record(Callback):
    """Test-owned: the original indices presented each epoch, the batch shapes, the weights at each epoch end."""

    def __init__(self):
        self.presented, self.weights, self.shapes = {}, {}, set()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        index = trainer.datamodule.batch_original_index
        self.presented.setdefault(trainer.current_epoch, []).extend(index.tolist())
        x = batch["x"] if isinstance(batch, dict) else batch[0]
        self.shapes.add(tuple(x.shape[1:]))

    def on_train_epoch_end(self, trainer, pl_module):
        self.weights[trainer.current_epoch] = copy.deepcopy(pl_module.state_dict())


def reference_el2n(state, x, y):
    weight, bias = state["model.weight"].double().numpy(), state["model.bias"].double().numpy()
    z = x.double().numpy() @ weight.T + bias
    return np.linalg.norm(softmax(z) - np.eye(K)[y.numpy()], axis=1)


def fit(dm, callbacks, epochs, model_cls=LitClassifier):
    torch.manual_seed(0)
    record = Record()
    model = model_cls(nn.Linear(D, K), lr=0.5)
    quiet_trainer(max_epochs=epochs, callbacks=[record, *callbacks]).fit(model, datamodule=dm)
    return record


def test_litdata_prune_during_fit_streams_and_trains_on_the_kept_examples_only(litdata_dir):
    x, y = data()
    CountedStreamingDataset.int_reads = CountedStreamingDataset.chunked_reads = 0
    dm = PruningDataModule(CountedStreamingDataset(litdata_dir), batch_size=32, num_workers=2)
    prune = PruneDuringFit(after_epochs=1, keep_fraction=0.4, seed=1, mislabelled=None)
    record = fit(dm, [prune], epochs=3)
    assert CountedStreamingDataset.int_reads == 0  # workers are other processes: the main process read none
    kept = prune.kept_indices
    assert len(kept) == int(0.4 * N)
    assert sorted(record.presented[0]) == list(range(N))
    for epoch in (1, 2):  # every kept example once, nothing else
        assert sorted(record.presented[epoch]) == kept.tolist()
    assert record.shapes == {(D,)}
    # the kept set is the hardest 40 % by EL2N of the model after epoch 0, recomputed by hand
    scores = reference_el2n(record.weights[0], x, y)
    assert set(kept.tolist()) == set(np.argsort(-scores, kind="stable")[: len(kept)].tolist())
    # the table belongs to this stream (its fingerprint does not depend on the epoch the stream is at)
    fresh = PruningDataModule(CountedStreamingDataset(litdata_dir), batch_size=32)
    np.testing.assert_array_equal(fresh.prune(prune.score_table, keep_fraction=0.4, seed=1), kept)


def test_litdata_reads_only_through_the_stream_in_process(litdata_dir, monkeypatch):
    """With num_workers=0 the counters see every read: all by ChunkedIndex, none by integer."""
    CountedStreamingDataset.int_reads = CountedStreamingDataset.chunked_reads = 0
    dm = PruningDataModule(CountedStreamingDataset(litdata_dir), batch_size=32)
    difficulty = DifficultyCallback(scores=("el2n", "forgetting"))
    fit(dm, [difficulty], epochs=2)
    assert CountedStreamingDataset.int_reads == 0
    assert CountedStreamingDataset.chunked_reads >= 3 * N  # two epochs and the scoring pass


def test_scores_equal_the_map_style_run(litdata_dir):
    """Same items, same order (no shuffling), same init: the same scores; EL2N also checked by hand."""
    x, y = data()
    tables = []
    for train_set in (litdata.StreamingDataset(litdata_dir), TensorDataset(x, y)):
        difficulty = DifficultyCallback(scores=("el2n", "forgetting", "aum"))
        shuffle = None if isinstance(train_set, IterableDataset) else False
        dm = PruningDataModule(train_set, batch_size=32, shuffle=shuffle)
        record = fit(dm, [difficulty], epochs=2)
        tables.append(difficulty.score_table)
    stream, mapped = tables
    for name in ("el2n", "forgetting", "aum"):
        np.testing.assert_allclose(stream[name], mapped[name], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(stream["el2n"], reference_el2n(record.weights[1], x, y), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(stream.labels, y.numpy())


def test_dm_prune_on_a_plain_stream_with_workers():
    x, y = data()
    order = np.random.default_rng(5).permutation(N).tolist()
    dm = PruningDataModule(DictStream(order, x, y), batch_size=16, num_workers=2, index_key="index", num_examples=N)
    kept = dm.prune(np.arange(N, dtype=float), keep_fraction=0.25)  # the hardest: the largest indices
    np.testing.assert_array_equal(kept, np.arange(N - N // 4, N))
    record = fit(dm, [], epochs=2, model_cls=DictClassifier)
    for epoch in (0, 1):
        assert sorted(record.presented[epoch]) == kept.tolist()


def test_dynamic_pruning_kept_sets_equal_the_map_style_run(litdata_dir):
    x, y = data()
    presented = []
    for train_set in (litdata.StreamingDataset(litdata_dir), TensorDataset(x, y)):
        dynamic = DynamicPruning(prune_ratio=0.5, anneal_fraction=0.0, seed=2)
        shuffle = None if isinstance(train_set, IterableDataset) else False
        dm = PruningDataModule(train_set, batch_size=32, shuffle=shuffle)
        presented.append(fit(dm, [dynamic], epochs=3).presented)
    stream, mapped = presented
    assert {e: sorted(v) for e, v in stream.items()} == {e: sorted(v) for e, v in mapped.items()}
    assert len(stream[2]) < N


def test_plain_stream_with_len_through_prune_during_fit_and_scoring():
    x, y = data()
    stream = DictStream(range(N), x, y, with_len=True)
    dm = PruningDataModule(stream, batch_size=32, index_key="index", num_examples=N)
    prune = PruneDuringFit(after_epochs=1, keep_fraction=0.5, mislabelled=None)
    record = fit(dm, [prune], epochs=2, model_cls=DictClassifier)
    assert sorted(record.presented[1]) == prune.kept_indices.tolist()
    np.testing.assert_allclose(prune.score_table["el2n"], reference_el2n(record.weights[0], x, y), rtol=1e-5, atol=1e-6)


def test_bad_streams_are_refused_in_one_line():
    x, y = data()
    with pytest.raises(ValueError, match="index_key=.*index_fn="):
        PruningDataModule(DictStream(range(N), x, y))
    with pytest.raises(ValueError, match="num_examples"):
        PruningDataModule(DictStream(range(N), x, y), index_key="index")
    with pytest.raises(ValueError, match="sample_weights"):
        PruningDataModule(DictStream(range(N), x, y), index_key="index", num_examples=N, sample_weights=np.ones(N))
    with pytest.raises(ValueError, match="shuffle=True"):
        PruningDataModule(DictStream(range(N), x, y), index_key="index", num_examples=N, shuffle=True)
    too_small = PruningDataModule(DictStream(range(N), x, y), index_key="index", num_examples=N - 1)
    with pytest.raises(ValueError, match=f"original index {N - 1}, outside"):
        list(too_small.train_dataloader())
    twice = PruningDataModule(DictStream([0, 1, 2, 1], x, y), index_key="index", num_examples=N)
    with pytest.raises(ValueError, match="original index 1 twice"):
        list(twice.train_dataloader())


class _UnshardedStream(DictStream):
    def __iter__(self):
        for i in self.order:
            yield {"index": i, "x": self.x[i], "y": self.y[i]}


def test_an_unsharded_stream_under_workers_is_refused():
    x, y = data()
    stream = _UnshardedStream(range(20), x, y)
    dm = PruningDataModule(stream, batch_size=4, num_workers=2, index_key="index", num_examples=N)
    with pytest.raises(ValueError, match="came twice in one epoch"):
        list(dm.train_dataloader())


class _StreamDataModule(__import__("lightning").LightningDataModule):
    def __init__(self, loader):
        super().__init__()
        self.loader = loader

    def train_dataloader(self):
        return self.loader


def test_from_datamodule_wraps_a_streaming_loader(litdata_dir):
    loader = litdata.StreamingDataLoader(litdata.StreamingDataset(litdata_dir), batch_size=20)
    dm = PruningDataModule.from_datamodule(_StreamDataModule(loader))
    assert dm.is_stream and dm.num_examples == N and dm.batch_size == 20
    x, y = data()
    plain = _StreamDataModule(DataLoader(DictStream(range(N), x, y), batch_size=8))
    with pytest.raises(TypeError, match="index_key=.*num_examples="):
        PruningDataModule.from_datamodule(plain)
    wrapped = PruningDataModule.from_datamodule(plain, index_key="index", num_examples=N)
    assert [len(b.original_index) for b in wrapped.train_dataloader()][:2] == [8, 8]


@pytest.mark.parametrize("pruning", ["prune_during_fit", "dynamic"])
def test_resume_restores_the_kept_sets_and_the_order(litdata_dir, tmp_path, pruning):
    """A shuffled litdata stream, stopped after epoch 1 and resumed from its checkpoint: epochs 2-3 present the
    examples of the uninterrupted run, in its order (the stream's epoch is the Trainer's)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    def callbacks():
        if pruning == "dynamic":
            return [DynamicPruning(prune_ratio=0.5, anneal_fraction=0.0, seed=2)]
        return [PruneDuringFit(after_epochs=1, keep_fraction=0.4, mislabelled=None)]

    def run(epochs, ckpt_path=None, checkpoint=None):
        torch.manual_seed(0)
        record = Record()
        dm = PruningDataModule(litdata.StreamingDataset(litdata_dir, shuffle=True, seed=3), batch_size=32)
        trainer = quiet_trainer(
            max_epochs=epochs, callbacks=[record, *callbacks(), *([checkpoint] if checkpoint else [])],
            enable_checkpointing=checkpoint is not None,
        )  # fmt: skip
        trainer.fit(LitClassifier(nn.Linear(D, K), lr=0.5), datamodule=dm, ckpt_path=ckpt_path)
        return record.presented

    whole = run(4)
    run(2, checkpoint=ModelCheckpoint(dirpath=tmp_path, save_last=True))
    resumed = run(4, ckpt_path=str(tmp_path / "last.ckpt"))
    assert sorted(resumed) == [2, 3]
    for epoch in (2, 3):
        assert resumed[epoch] == whole[epoch]
        assert len(whole[epoch]) < N
    assert whole[2] != whole[3]  # the stream's own shuffle changes with the epoch


def test_a_rank_whose_shard_ends_first_repeats_its_last_batch():
    """Under DDP the loader asks, batch by batch, whether any rank still has one; here another rank has two
    batches more: this rank repeats its last batch twice, then every rank stops together."""
    from datadiet.data.indexed import IndexedCollate
    from datadiet.data.streams import IndexedStream, StreamLoader

    x, y = data()
    other_rank_batches = 5  # this rank has 3 (10 examples in batches of 4)
    asked = []

    def any_rank(has_batch):
        asked.append(has_batch)
        return has_batch or len(asked) <= other_rank_batches

    stream = IndexedStream(DictStream(range(10), x, y), N, lambda item: item["index"])
    loader = StreamLoader(stream, lambda epoch: None, lambda: 0, any_rank, batch_size=4, collate_fn=IndexedCollate())
    batches = [batch.original_index.tolist() for batch in loader]
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [8, 9], [8, 9]]
    assert asked == [True, True, True, False, False, False]


def _third(item):
    return item[2]


class TupleStream(IterableDataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __iter__(self):
        for i in reversed(range(len(self.x))):
            yield self.x[i], self.y[i], i


def test_index_fn_reads_the_index_of_other_items():
    x, y = data()
    dm = PruningDataModule(TupleStream(x, y), batch_size=50, index_fn=_third, num_examples=N)
    kept = dm.prune(-np.arange(N, dtype=float), keep_fraction=0.5)  # the hardest: the smallest indices
    batches = list(dm.train_dataloader())
    served = np.concatenate([batch.original_index.numpy() for batch in batches])
    np.testing.assert_array_equal(served, kept[::-1])  # the stream's own (reversed) order, kept examples only
    np.testing.assert_array_equal(batches[0].batch[0], x[served[:50]])
    wrong_key = PruningDataModule(TupleStream(x, y), index_key="index", num_examples=N)
    with pytest.raises(ValueError, match="`index_key='index'` reads the index from dict items, but an item is tuple"):
        list(wrong_key.train_dataloader())
