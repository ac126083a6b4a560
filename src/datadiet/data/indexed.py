"""Carrying each example's original index beside (never inside) the batch a user's step sees."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset, default_collate


class IndexedBatch(NamedTuple):
    """What the training loader yields: the user's batch plus the original index of each example.

    :meth:`PruningDataModule.on_before_batch_transfer` strips it back to ``batch`` before the batch
    reaches ``training_step``.
    """

    original_index: Tensor
    batch: Any


class IndexedDataset(Dataset):
    """Wraps a map-style dataset so item ``i`` is ``(i, dataset[i])``; ``Subset`` keeps ``i`` original."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[int, Any]:
        return index, self.dataset[index]


class IndexedCollate:
    """Collates ``(index, item)`` pairs with the user's ``collate_fn`` (default: torch's) for the items."""

    def __init__(self, collate_fn: Optional[Callable[[list], Any]] = None) -> None:
        self.collate_fn = collate_fn or default_collate

    def __call__(self, samples: Sequence[tuple[int, Any]]) -> IndexedBatch:
        indices = torch.tensor([index for index, _ in samples], dtype=torch.long)
        return IndexedBatch(indices, self.collate_fn([item for _, item in samples]))
