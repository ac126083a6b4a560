"""The training sampler of a PruningDataModule: a (seed, epoch)-shuffled order, optionally restricted per epoch.

A ``DistributedSampler`` subclass, so Lightning uses it as it is under DDP instead of wrapping it: the
wrapper Lightning would put around a custom sampler fixes its length when it is built, and would pad a
shorter epoch with repeats of the kept examples. The order is held as one int32 permutation (int64 beyond
2**31 examples) and handed out in chunks, never as a Python list of the whole epoch.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator, Optional

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

#: Sampled positions turned into Python ints at a time.
_CHUNK = 1 << 16

#: ``epoch -> positions`` in the sampled dataset that the epoch presents, or ``None`` for all of them.
EpochPositions = Callable[[int], Optional[np.ndarray]]


class EpochSampler(DistributedSampler):
    """``DistributedSampler``'s order and sharding over the positions an epoch presents.

    With ``positions(epoch)`` returning ``None`` it yields exactly what ``DistributedSampler`` yields
    (the same permutation of ``seed + epoch``, the same padding and the same shards). Otherwise the same
    recipe runs over the epoch's positions only: they are permuted by ``seed + epoch`` (identical on every
    rank), padded with repeats to a multiple of ``num_replicas`` and dealt out, so that every chosen
    example is presented once per epoch (DDP padding aside) and its length is the epoch's.

    Args:
        dataset: the sampled dataset.
        positions: which positions each epoch presents (called at ``__iter__`` and ``__len__``).
        epoch_fn: the current epoch, when it is known better than by ``set_epoch`` (the Trainer's epoch:
            Lightning creates a resumed run's first iterator before it calls ``set_epoch``).
        num_replicas: processes sharing the epoch.
        rank: this process's rank.
        shuffle: permute the positions each epoch.
        seed: seed of the permutation (Lightning's ``PL_GLOBAL_SEED`` by convention).
    """

    def __init__(
        self,
        dataset: Dataset,
        positions: EpochPositions,
        epoch_fn: Optional[Callable[[], int]] = None,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self._positions = positions
        self._epoch_fn = epoch_fn

    def _current_epoch(self) -> int:
        return self.epoch if self._epoch_fn is None else int(self._epoch_fn())

    def __len__(self) -> int:
        positions = self._positions(self._current_epoch())
        size = len(self.dataset) if positions is None else len(positions)  # type: ignore[arg-type]
        return math.ceil(size / self.num_replicas)

    def __iter__(self) -> Iterator[int]:
        epoch = self._current_epoch()
        positions = self._positions(epoch)
        size = len(self.dataset) if positions is None else len(positions)  # type: ignore[arg-type]
        order = None
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed + epoch)
            # the permutation torch gives for int64, in half the memory
            dtype = torch.int32 if size < 2**31 else torch.int64
            order = torch.randperm(size, generator=generator, dtype=dtype).numpy()
        return self._shard(order, positions, size)

    def _shard(self, order: Optional[np.ndarray], positions: Optional[np.ndarray], size: int) -> Iterator[int]:
        """This rank's share of ``positions[order]``, padded to a multiple of the ranks with its own start
        (``DistributedSampler``'s recipe), as Python ints, a chunk at a time."""
        per_rank = math.ceil(size / self.num_replicas)
        total = per_rank * self.num_replicas
        for start in range(self.rank, total, _CHUNK * self.num_replicas):
            # slots of the padded sequence; slot size + j repeats slot j (j < padding < size)
            slots = np.arange(start, min(start + _CHUNK * self.num_replicas, total), self.num_replicas)
            padded = slots >= size
            slots[padded] = (slots[padded] - size) % size
            if order is not None:
                slots = order[slots]
            yield from (slots if positions is None else positions[slots]).tolist()
