"""The forward hooks of :class:`~datadiet.DynamicPruning`: every forward of a training step read, and weighted.

The first forward of a step is the one scored. Each forward whose output (as the adapter's ``logits_fn``
reads it) needs a gradient gets a tensor hook scaling its row ``i`` by ``w_i``; such an output must have one
row per example of the batch. A module call that ran other calls of the module inside it is Lightning's
redirection of ``training_step`` through the DDP wrapper, not a forward: it is skipped.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor


class WeightedForwards:
    """Mixed into :class:`~datadiet.DynamicPruning` (which sets ``adapter`` and ``weight_gradients``)."""

    adapter: Any
    weight_gradients: bool

    def _reset_step(self) -> None:
        self._batch_index: Optional[Tensor] = None
        self._batch_weights: Optional[Tensor] = None
        self._weights_read = False
        self._capturing = False
        self._captured: Any = None
        self._forwards = 0
        self._open_calls: list[bool] = []  # per module call in progress: whether another call ran inside it
        self._odd_rows: Optional[str] = None

    @property
    def batch_weights(self) -> Optional[Tensor]:
        """Weights of the current training batch's examples, in batch order, on the model's device.

        Ones in an epoch where every weight is 1; ``None`` outside training. Use it with
        ``weight_gradients=False``:
        ``loss = (F.cross_entropy(logits, y, reduction="none") * pruning.batch_weights).mean()``.
        """
        self._weights_read = True
        if self._batch_index is None or self._batch_weights is not None:
            return self._batch_weights
        return torch.ones(len(self._batch_index), device=self._batch_index.device)

    def _begin_step(self, index: Tensor, weights: Optional[Tensor]) -> None:
        self._batch_index, self._batch_weights = index, weights
        self._weights_read = False
        self._captured, self._forwards, self._open_calls = None, 0, []
        self._capturing = True

    def _end_step(self) -> Any:
        """The output of the step's first forward; raises what the step showed cannot be weighted."""
        self._capturing = False
        if self._captured is None:
            raise RuntimeError(
                "DynamicPruning saw no call of the LightningModule's forward in `training_step`; call `self(x)` "
                "there (not `self.net(x)`), so that each example's loss can be read"
            )
        captured, self._captured = self._captured, None
        if self._odd_rows is not None:
            raise ValueError(self._odd_rows)
        if self._batch_weights is not None and not self.weight_gradients and not self._weights_read:
            raise RuntimeError(
                "DynamicPruning(weight_gradients=False) leaves weighting to training_step, but this weighted step "
                "never read `pruning.batch_weights`: multiply each example's loss by it (or use weight_gradients=True)"
            )
        return captured

    def _enter_forward(self, module: torch.nn.Module, args: Any) -> None:
        if self._capturing:
            if self._open_calls:
                self._open_calls[-1] = True
            self._open_calls.append(False)

    def _capture_output(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        if not self._capturing:
            return
        if self._open_calls and self._open_calls.pop():
            return  # a call that ran forwards inside it: Lightning's redirection of `training_step` (DDP), not one
        self._forwards += 1
        if self._captured is None:  # the step's first forward is the one scored
            self._captured = output
        if not self.weight_gradients:
            return
        logits = self.adapter.logits_fn(output)
        if not isinstance(logits, Tensor) or not logits.requires_grad:  # not trained on: nothing to weight
            return
        weights = self._batch_weights
        if logits.ndim == 0 or logits.shape[0] != len(self._batch_index):
            if weights is not None:
                raise ValueError(self._rows_message(logits))
            self._odd_rows = self._rows_message(logits)  # refused at the end of the step
            return
        if weights is not None:
            shape = (-1,) + (1,) * (logits.ndim - 1)
            logits.register_hook(lambda grad: grad * weights.view(shape).to(grad.dtype))

    def _rows_message(self, logits: Tensor) -> str:
        return (
            f"DynamicPruning weights each example's rows of every forward in a training step, but forward call "
            f"{self._forwards} returned {tuple(logits.shape)} for a batch of {len(self._batch_index)} examples. "
            "Compute "
            "that output under `torch.no_grad()` if it is not trained on, or pass `weight_gradients=False` and weight "
            "the loss yourself with `pruning.batch_weights`"
        )
