"""Training presentations gathered into large batches before the training-phase scores see them.

A probe's batches are small (128 examples, say), and updating several scores from one small batch
costs tens of tiny tensor operations whose fixed cost per call dwarfs the arithmetic. Copying each
step's logits, labels and original indices into preallocated buffers costs three copies; the scores then
run once per 65,536 examples, on the layout that is fast for large batches. The values are the same:
every score's update is per example. (Copies, not references: holding every step's tensors alive until
the next update measurably slowed the training steps themselves — the allocator could not reuse them.)
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


class PresentationBuffer:
    """Accumulates ``(original_index, logits, target)`` batches, up to ``max_examples`` examples.

    ``max_elements`` bounds the logits held for models with many classes (``examples * K`` at most).
    Logits are stored as float32 (as the scores compute), in buffers allocated on the device of the
    first batch and reused.

    Example::

        buffer = PresentationBuffer()
        if not buffer.fits(len(index), logits.shape[1]):
            update_scores(*buffer.take())
        buffer.add(index, logits, target)
        ...
        if len(buffer):
            update_scores(*buffer.take())
    """

    def __init__(self, max_examples: int = 65536, max_elements: int = 1 << 22) -> None:
        if max_examples < 1 or max_elements < 1:
            raise ValueError(f"`max_examples` and `max_elements` must be >= 1, got {max_examples}, {max_elements}")
        self.max_examples = max_examples
        self.max_elements = max_elements
        self._index: Optional[Tensor] = None
        self._logits: Optional[Tensor] = None
        self._target: Optional[Tensor] = None
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def fits(self, batch_size: int, num_classes: int) -> bool:
        """Whether a batch can be added without taking what is held first (always, when empty)."""
        size = self._size + batch_size
        return self._size == 0 or (size <= self.max_examples and size * num_classes <= self.max_elements)

    def add(self, original_index: Tensor, logits: Tensor, target: Optional[Tensor]) -> None:
        """Copies one batch in. Call :meth:`take` first when :meth:`fits` says no."""
        if logits.ndim != 2:
            raise ValueError(f"logits must have shape (batch, num_classes), got {tuple(logits.shape)}")
        batch_size, num_classes = logits.shape
        if self._size == 0:
            self._reserve(batch_size, logits, target)
        elif num_classes != self._logits.shape[1] or (target is None) != (self._target is None):
            raise ValueError(
                f"logits {tuple(logits.shape)} (labels: {target is not None}) do not match the held batches "
                f"(num_classes {self._logits.shape[1]}, labels: {self._target is not None}): `take()` them first"
            )
        end = self._size + batch_size
        if end > len(self._logits):
            raise RuntimeError("PresentationBuffer is full: `take()` what it holds before adding more")
        self._index[self._size : end] = original_index
        self._logits[self._size : end] = logits.detach()
        if target is not None:
            self._target[self._size : end] = target
        self._size = end

    def take(self) -> tuple[Tensor, Tensor, Optional[Tensor]]:
        """The examples held, as one batch (views valid until the next :meth:`add`), and empties the buffer."""
        if not self._size:
            raise RuntimeError("PresentationBuffer.take(): nothing held (check `len(buffer)` first)")
        size, self._size = self._size, 0
        target = None if self._target is None else self._target[:size]
        return self._index[:size], self._logits[:size], target

    def _reserve(self, batch_size: int, logits: Tensor, target: Optional[Tensor]) -> None:
        """(Re)allocates the buffers when the first batch after a take does not fit them."""
        num_classes, device = logits.shape[1], logits.device
        same = (
            self._logits is not None
            and self._logits.shape[1] == num_classes
            and self._logits.device == device
            and batch_size <= len(self._logits)
            and (target is None) == (self._target is None)
            and (target is None or target.dtype == self._target.dtype)
        )
        if same:
            return
        capacity = max(batch_size, min(self.max_examples, self.max_elements // max(num_classes, 1)))
        self._index = torch.empty(capacity, dtype=torch.long, device=device)
        self._logits = torch.empty(capacity, num_classes, dtype=torch.float32, device=device)
        self._target = None if target is None else torch.empty(capacity, dtype=target.dtype, device=device)
