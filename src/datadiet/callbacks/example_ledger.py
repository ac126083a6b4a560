"""Which examples a probe presented in training, and their class labels as an ``Adapter`` reads them."""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import default_collate


def _is_class_labels(target: Any) -> bool:
    return isinstance(target, Tensor) and target.ndim == 1 and not target.is_floating_point()


class ExampleLedger:
    """Per original index: presented in a training batch or not, and (optionally) the adapter's label.

    Both live on the model's device and are written without host–device synchronisation; they are
    merged over processes (elementwise max) once, when the score table is built.

    Args:
        num_examples: size of the full training set.
        record_labels: keep the labels that ``target_fn`` reads from the batches (``-1`` = not seen).
    """

    def __init__(self, num_examples: int, record_labels: bool) -> None:
        self.presented = torch.zeros(num_examples, dtype=torch.uint8)
        self.labels: Optional[Tensor] = torch.full((num_examples,), -1) if record_labels else None
        #: False after a checkpoint without this ledger was restored: presentations before it are unknown.
        self.presentations_known = True

    def to(self, device: torch.device | str) -> "ExampleLedger":
        self.presented = self.presented.to(device)
        if self.labels is not None:
            self.labels = self.labels.to(device)
        return self

    def mark_presented(self, index: Tensor) -> None:
        self.presented[index.to(self.presented.device)] = 1

    def record_labels(self, index: Tensor, target: Any) -> None:
        """Keeps a batch's labels; a target that is not 1-D integer class labels stops the recording."""
        if self.labels is None:
            return
        if not _is_class_labels(target):
            self.labels = None
            return
        self.labels[index.to(self.labels.device)] = target.to(self.labels.device, torch.long)

    def never_presented(self, trainer: "pl.Trainer") -> Optional[int]:
        """How many examples no training batch of any process held; ``None`` when unknown. Every rank calls it."""
        presented = self.presented
        if trainer.world_size > 1:
            presented = trainer.strategy.reduce(presented.clone(), reduce_op="max")
        return int(len(presented) - int(presented.sum())) if self.presentations_known else None

    def merged_labels(
        self, trainer: "pl.Trainer", dataset: Any, collate_fn: Optional[Callable], target_fn: Callable
    ) -> Optional[np.ndarray]:
        """Every example's label: those seen (merged over processes), the rest read once through ``target_fn``.

        ``None`` when labels are not recorded or are not class labels. Every rank calls it.
        """
        if self.labels is None:
            return None
        seen = self.labels
        if trainer.world_size > 1:
            seen = trainer.strategy.reduce(seen.clone(), reduce_op="max")
        labels = seen.cpu().numpy().astype(np.int64)
        missing = np.flatnonzero(labels < 0)
        collate = collate_fn or default_collate
        for chunk in np.array_split(missing, math.ceil(len(missing) / 256)) if len(missing) else []:
            target = target_fn(collate([dataset[int(i)] for i in chunk]))
            if not _is_class_labels(target):
                return None
            labels[chunk] = target.cpu().numpy()
        return labels

    def state_dict(self) -> dict[str, Any]:
        """On the CPU the tensors share memory with the ledger (no copy per checkpoint)."""
        return {
            "presented": self.presented.cpu(),
            "labels": None if self.labels is None else self.labels.cpu(),
        }

    def load_state_dict(self, state: Optional[dict[str, Any]]) -> None:
        """Restores a ledger; a checkpoint without one (older versions) leaves presentations unknown."""
        state = state or {}
        presented, labels = state.get("presented"), state.get("labels")
        self.presentations_known = presented is not None and len(presented) == len(self.presented)
        if self.presentations_known:
            self.presented = presented.to(self.presented.device, torch.uint8, copy=True)
        if self.labels is not None:
            if labels is not None and len(labels) == len(self.labels):
                self.labels = labels.to(self.labels.device, torch.long, copy=True)
            else:
                self.labels.fill_(-1)
