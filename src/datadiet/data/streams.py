"""Streamed training sets: a litdata ``StreamingDataset`` or any ``IterableDataset`` whose items carry their index.

A stream is read in its own order; pruning is a filter on it. Each epoch the loader hands the dataset a
bitmap of the examples kept for that epoch (N bits, packed) before its workers start, and the dataset skips
the others before collation: they cost their read, never a forward or backward pass.
"""

from __future__ import annotations

import copy
import hashlib
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from datadiet.data.indexed import IndexedBatch

#: ``epoch -> original indices`` an epoch presents (``None``: every example of the stream).
EpochKept = Callable[[int], Optional[np.ndarray]]


def is_litdata_stream(dataset: Any) -> bool:
    """Whether ``dataset`` is a litdata ``StreamingDataset`` (litdata is only imported if the user did)."""
    litdata = sys.modules.get("litdata")
    return litdata is not None and isinstance(dataset, litdata.StreamingDataset)


def litdata_num_examples(dataset: Any) -> int:
    """Items of a litdata ``StreamingDataset`` over all ranks: its global indices run from 0 to this, excluded."""
    return int(sum(end - start for start, end in dataset.region_of_interest))


def stream_fingerprint(dataset: Any, num_examples: int) -> str:
    """A short hash of a stream read without touching an item: its type and size, and for litdata its
    location and ``index.json`` (the chunks and their sizes). A plain ``IterableDataset`` has no more to hash
    without reading it (in an order that may change), so two of one class and size share a fingerprint."""
    hasher = hashlib.sha256(f"stream:{type(dataset).__name__}:{num_examples}".encode())
    input_dir = getattr(dataset, "input_dir", None)
    where = getattr(input_dir, "path", None) or getattr(input_dir, "url", None)
    if where is not None:
        hasher.update(str(where).encode())
        index = Path(str(where)) / "index.json"
        if index.is_file():
            hasher.update(index.read_bytes())
    return hasher.hexdigest()[:16]


class IndexedStream(IterableDataset):
    """Yields ``(original_index, item)`` for the items of ``stream`` kept this epoch, in the stream's order.

    Args:
        stream: a litdata ``StreamingDataset`` (index: its global item index) or an ``IterableDataset``.
        num_examples: number of distinct examples; an index outside ``[0, num_examples)`` is refused.
        index_fn: ``item -> original index`` for a plain ``IterableDataset`` (``None`` for litdata).

    Raises (while iterating):
        ValueError: an index outside ``[0, num_examples)``, or one this worker already yielded this epoch.
    """

    def __init__(self, stream: IterableDataset, num_examples: int, index_fn: Optional[Callable[[Any], Any]]) -> None:
        self.stream = stream
        self.num_examples = num_examples
        self.index_fn = index_fn
        #: The kept examples of the coming epoch as ``np.packbits`` of N booleans (``None``: all); pickled
        #: to the workers with the dataset when the loader's iterator starts them.
        self.kept_bits: Optional[np.ndarray] = None
        self._all_ranks = False

    def all_ranks(self) -> "IndexedStream":
        """This stream read whole by one process, every rank's shard (a litdata dataset; a plain stream shards
        itself and is returned as it is)."""
        environment = getattr(self.stream, "distributed_env", None)
        if environment is None:
            return self
        stream = copy.copy(self.stream)
        stream.distributed_env = type(environment)(world_size=1, global_rank=0, num_nodes=1)
        whole = IndexedStream(stream, self.num_examples, self.index_fn)
        whole._all_ranks = True
        return whole

    def start_epoch(self, kept: Optional[np.ndarray], epoch: Optional[int]) -> None:
        """Sets the kept examples (original indices, ``None``: all) and the stream's epoch, before iterating."""
        if kept is None:
            self.kept_bits = None
        else:
            mask = np.zeros(self.num_examples, dtype=bool)
            mask[np.asarray(kept, dtype=np.int64)] = True
            self.kept_bits = np.packbits(mask)
        if epoch is not None and hasattr(self.stream, "set_epoch"):
            self.stream.set_epoch(epoch + 1)  # litdata counts epochs from 1
        environment = getattr(self.stream, "distributed_env", None)
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if environment is not None and not self._all_ranks and distributed:
            # litdata reads the ranks when the dataset is made, often before the Trainer started the processes
            self.stream.distributed_env = type(environment).detect()

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        size = self.num_examples
        kept = None if self.kept_bits is None else np.unpackbits(self.kept_bits, count=size).view(bool)
        seen = np.zeros(size, dtype=bool)
        for index, item in self._indexed_items():
            if not 0 <= index < size:
                raise ValueError(
                    f"the stream gave an item with original index {index}, outside [0, num_examples={size}): "
                    "pass `num_examples` = the number of distinct examples, and indices from 0 to it"
                )
            if seen[index]:
                raise ValueError(
                    f"the stream gave original index {index} twice in one epoch: each example must appear once per "
                    "epoch (with DataLoader workers, shard the stream by `torch.utils.data.get_worker_info()`)"
                )
            seen[index] = True
            if kept is None or kept[index]:
                yield index, item

    def _indexed_items(self) -> Iterator[tuple[int, Any]]:
        if self.index_fn is not None:
            for item in self.stream:
                yield _as_index(self.index_fn(item)), item
            return
        # litdata's `__next__` reads each item through `self.__getitem__(ChunkedIndex(index=global index, ...))`:
        # a copy of the dataset with that attribute wrapped records the index of the item it returns
        stream = copy.copy(self.stream)
        read = stream.__getitem__
        indices: list[int] = []

        def indexed_read(chunked: Any) -> Any:
            indices.append(int(getattr(chunked, "index", chunked)))
            return read(chunked)

        stream.__getitem__ = indexed_read  # type: ignore[method-assign]
        for item in stream:
            yield indices.pop(), item


def _as_index(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"an item's original index must be an integer, got {value!r} ({type(value).__name__})")
    return int(value)


class KeyIndex:
    """``item -> item[index_key]`` for dict items, refusing other items in one line (picklable, for workers)."""

    def __init__(self, index_key: str) -> None:
        self.index_key = index_key

    def __call__(self, item: Any) -> Any:
        if not isinstance(item, Mapping) or self.index_key not in item:
            keys = list(item) if isinstance(item, Mapping) else type(item).__name__
            raise ValueError(
                f"`index_key={self.index_key!r}` reads the index from dict items, but an item is {keys}; pass "
                "`index_fn=` for other items"
            )
        return item[self.index_key]


def checked_stream(
    dataset: IterableDataset,
    index_key: Optional[str],
    index_fn: Optional[Callable[[Any], Any]],
    num_examples: Optional[int],
    shuffle: Optional[bool],
    sample_weights: Any,
    loader_options: Optional[Mapping[str, Any]],
) -> IndexedStream:
    """The checked :class:`IndexedStream` over a user's stream, or a one-line refusal of what it cannot do."""
    name = type(dataset).__name__
    if sample_weights is not None:
        raise ValueError(
            f"`sample_weights` draw examples by index, which a stream ({name}) cannot do: it is read in its own "
            "order; leave `sample_weights` out, or pass a map-style dataset"
        )
    if shuffle:
        raise ValueError(
            f"`shuffle=True` reorders by index, which a stream ({name}) cannot do: it is read in its own order; "
            "shuffle in the stream itself (e.g. `StreamingDataset(..., shuffle=True)`) and leave `shuffle` out"
        )
    if (loader_options or {}).get("persistent_workers"):
        raise ValueError(
            "`loader_options['persistent_workers']=True` cannot be honoured on a stream: each epoch's workers must "
            "start with that epoch's kept set; leave it out"
        )
    if index_key is not None and index_fn is not None:
        raise ValueError("pass one of `index_key` (dict items) and `index_fn` (other items), not both")
    if is_litdata_stream(dataset):
        if index_key is not None or index_fn is not None or num_examples is not None:
            raise ValueError(
                "a litdata StreamingDataset gives each item's index and size itself; leave `index_key`, `index_fn` "
                "and `num_examples` out"
            )
        return IndexedStream(dataset, litdata_num_examples(dataset), None)
    if index_key is None and index_fn is None:
        raise ValueError(
            f"{name} is a stream (an IterableDataset): its items must carry their original index; pass "
            "`index_key=` (dict items) or `index_fn=` (item -> index), and `num_examples=` (the number of examples)"
        )
    if isinstance(num_examples, bool) or not isinstance(num_examples, (int, np.integer)) or num_examples < 1:
        raise ValueError(
            f"`num_examples` must be the number of distinct examples of the stream {name} (a positive integer), "
            f"got {num_examples!r}"
        )
    return IndexedStream(dataset, int(num_examples), index_fn if index_fn is not None else KeyIndex(index_key))


class StreamLoader(DataLoader):
    """A ``DataLoader`` over an :class:`IndexedStream` that sets each epoch's kept examples as it starts.

    ``kept_fn(epoch)`` is read in the main process when the epoch's iterator is created, before workers
    (never persistent: they must receive the new bitmap) copy the dataset. The batches are checked there
    too: an index repeated across workers (an unsharded stream) is refused.

    Under DDP each rank filters its own shard, so ranks keep different numbers of examples; with
    ``any_rank_fn`` (``has a batch -> does any rank have one``, a collective per batch) a rank whose shard
    ends first repeats its last batch until every rank's has ended, as a ``DistributedSampler`` pads an
    epoch with repeats, so that every rank runs the same number of steps.
    """

    def __init__(
        self,
        stream: IndexedStream,
        kept_fn: EpochKept,
        epoch_fn: Callable[[], Optional[int]],
        any_rank_fn: Optional[Callable[[bool], bool]] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(stream, **kwargs)
        self.kept_fn = kept_fn
        self.epoch_fn = epoch_fn
        self.any_rank_fn = any_rank_fn

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        epoch = self.epoch_fn()
        self.dataset.start_epoch(self.kept_fn(-1 if epoch is None else epoch), epoch)  # type: ignore[attr-defined]
        batches = _checked_once(super().__iter__(), self.dataset.num_examples)  # type: ignore[attr-defined]
        return batches if self.any_rank_fn is None else _padded(batches, self.any_rank_fn)


def _padded(batches: Iterator[IndexedBatch], any_rank_fn: Callable[[bool], bool]) -> Iterator[IndexedBatch]:
    last = None
    while True:
        batch = next(batches, None)
        if not any_rank_fn(batch is not None):
            return
        if batch is None:
            if last is None:
                raise RuntimeError(
                    "this rank's shard of the stream holds none of the examples kept this epoch while another rank's "
                    "does: keep more examples, or use fewer processes"
                )
            batch = last
        last = batch
        yield batch


def _checked_once(batches: Iterator[IndexedBatch], num_examples: int) -> Iterator[IndexedBatch]:
    seen = np.zeros(num_examples, dtype=bool)
    for batch in batches:
        index = batch.original_index.numpy()
        values, counts = np.unique(index, return_counts=True)
        repeated = np.concatenate([values[counts > 1], index[seen[index]]])
        if len(repeated):
            raise ValueError(
                f"original index {int(repeated[0])} came twice in one epoch: each DataLoader worker (and each DDP "
                "rank) must read its own shard of the stream (`torch.utils.data.get_worker_info()`)"
            )
        seen[index] = True
        yield batch
