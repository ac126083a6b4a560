"""Each training presentation's per-example loss, gathered by original index for one epoch (``DynamicPruning``).

Where the loss comes from, in order: the ``example_loss`` entry of a ``training_step`` output dict; the
adapter's callable loss; cross-entropy of one logits row and one integer label per example, copied into a
:class:`PresentationBuffer` and computed in bulk (per step: three copies); or the adapter's per-example
loss, computed each step (sequences, bce, mse, l1, probability targets).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from datadiet.adapter import Adapter
from datadiet.callbacks.presentation_buffer import PresentationBuffer
from datadiet.losses import cross_entropy

#: The key of a ``training_step`` output dict that gives each example's loss instead of the adapter's.
EXAMPLE_LOSS_KEY = "example_loss"


class EpochLosses:
    """This epoch's per-example losses on the model's device: :attr:`values`, NaN where not presented."""

    def __init__(self, adapter: Adapter) -> None:
        self.adapter = adapter
        self.values: Optional[Tensor] = None
        self._buffer = PresentationBuffer()
        self._bulk: Optional[bool] = None  # decided by the first batch of a fit

    def start(self, num_examples: int, device: torch.device) -> None:
        """At a fit's start: keeps the values restored from a checkpoint, moved to ``device``."""
        if self.values is None:
            self.values = torch.full((num_examples,), float("nan"))
        self.values = self.values.to(device)
        self._bulk = None

    def add(self, index: Tensor, output: Any, batch: Any, step_output: Any) -> None:
        """One step: ``output`` of the module's forward, the ``batch``, what ``training_step`` returned."""
        given = step_output.get(EXAMPLE_LOSS_KEY) if isinstance(step_output, dict) else None
        if given is not None:
            self._store(index, self._checked(given, len(index)))
            return
        if not callable(self.adapter.loss):
            logits, target = self.adapter.read(output, batch)
            if self._bulk is None:  # batches of one fit share their structure: decided once
                self._bulk = self.adapter.loss == "cross_entropy" and _rows_and_labels(logits, target)
            if self._bulk:
                if not self._buffer.fits(len(index), logits.shape[-1]):
                    self.flush()
                self._buffer.add(index, logits.detach(), target)
                return
        with torch.no_grad():
            self._store(index, self.adapter.example_loss(output, batch))

    def flush(self) -> None:
        """Computes what the buffer holds (before the values are read: epoch end, checkpoints)."""
        if len(self._buffer):
            index, logits, target = self._buffer.take()
            self.values.scatter_(0, index, cross_entropy(logits, target))

    def _store(self, index: Tensor, losses: Tensor) -> None:
        self.values.scatter_(0, index, losses.detach().to(self.values.device, self.values.dtype))

    @staticmethod
    def _checked(losses: Any, batch_size: int) -> Tensor:
        if not isinstance(losses, Tensor) or tuple(losses.shape) != (batch_size,):
            shape = tuple(losses.shape) if isinstance(losses, Tensor) else type(losses).__name__
            raise ValueError(
                f"training_step's `{EXAMPLE_LOSS_KEY}` must be one loss per example of the batch ({batch_size},), "
                f"got {shape}"
            )
        return losses.float()


def _rows_and_labels(logits: Tensor, target: Any) -> bool:
    return logits.ndim == 2 and isinstance(target, Tensor) and target.ndim == 1 and not target.is_floating_point()
