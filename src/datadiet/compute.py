"""Compute accounting in FLOPs: what a pruned run really costs, its probe included (DESIGN.md §5b).

A training presentation costs :data:`TRAIN_FORWARD_MULTIPLE` (3) forward passes (forward + a backward
of about twice its cost); a scoring-pass forward costs one. Each model counts at its own forward FLOPs
per example, so a small probe costs what it really costs; with one model for both, the account reduces
to "presentations + 1/3 per scored example".
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

#: Cost of one training presentation (forward + backward) in forward passes.
TRAIN_FORWARD_MULTIPLE = 3.0


def forward_flops_per_example(module: nn.Module, example_batch: Tensor) -> float:
    """Forward FLOPs of ``module`` per example, measured on ``example_batch``.

    One eval-mode, no-grad forward pass under :class:`torch.utils.flop_counter.FlopCounterMode`,
    divided by the batch size (the first dimension). It counts what ``FlopCounterMode`` counts: two
    FLOPs per multiply-add of matrix products and convolutions; biases, activations and
    normalisation are left out (a few percent for the usual networks). The module's train/eval mode
    is restored afterwards; the batch is moved to the module's device.

    Args:
        module: the network (a ``LightningModule`` works: its ``forward`` is called).
        example_batch: a batch of inputs, shape ``(batch, *input_shape)``.

    Returns:
        FLOPs of one forward pass of one example.

    Raises:
        TypeError: ``example_batch`` is not a tensor with a batch dimension.
        ValueError: the batch is empty.

    Example::

        flops = forward_flops_per_example(model, torch.zeros(8, 1, 40))   # per example
    """
    from torch.utils.flop_counter import FlopCounterMode

    if not isinstance(example_batch, Tensor) or example_batch.ndim < 1:
        raise TypeError(
            f"`example_batch` must be a tensor of shape (batch, *input_shape), got {type(example_batch).__name__}"
            + (f" of shape {tuple(example_batch.shape)}" if isinstance(example_batch, Tensor) else "")
        )
    if len(example_batch) == 0:
        raise ValueError("`example_batch` is empty: give at least one example")
    parameter = next(module.parameters(), None)
    if parameter is not None:
        example_batch = example_batch.to(parameter.device)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(example_batch)
    finally:
        module.train(was_training)
    return counter.get_total_flops() / len(example_batch)


def run_flops(train_presentations: float, scored_examples: float, forward_flops: float) -> float:
    """FLOPs of ``train_presentations`` training presentations and ``scored_examples`` scoring forwards.

    ``3 · F · presentations + 1 · F · scored``, with ``F`` the forward FLOPs per example.
    """
    return forward_flops * (TRAIN_FORWARD_MULTIPLE * train_presentations + scored_examples)


def scoring_pass_examples(num_examples: int, world_size: int = 1) -> int:
    """Forward passes of one scoring pass over ``num_examples``, all ranks together: a ``DistributedSampler``
    pads every rank to ``ceil(N / world_size)`` examples, and the padding costs like any other forward."""
    return world_size * math.ceil(num_examples / world_size)


def full_data_flops(num_examples: int, epochs: int, forward_flops: float) -> float:
    """The reference: training one model on all ``num_examples`` for ``epochs`` epochs, no probe."""
    return run_flops(num_examples * epochs, 0, forward_flops)


@dataclass(frozen=True)
class ComputeAccount:
    """What one run spent, phase by phase, in presentations and FLOPs.

    The probe phase is everything spent choosing the subset: a separate probe model's training
    presentations and scoring pass, and any scoring pass of the main model during its own run
    (:class:`~datadiet.callbacks.PruneDuringFit`). The training phase is the main model's training
    presentations (those before an in-run pruning included: they train the final model).

    Args:
        flops_per_example: forward FLOPs per example of the main model.
        train_presentations: the main model's training presentations (all epochs, all ranks).
        probe_flops_per_example: forward FLOPs per example of the probe model (0 without a probe).
        probe_presentations: the probe model's training presentations.
        probe_scored: examples scored by the probe model's eval-mode pass.
        in_run_scored: examples scored by the main model's in-run scoring pass.

    Example::

        account = ComputeAccount(flops_per_example=2e5, train_presentations=90_000,
                                 probe_flops_per_example=5e4, probe_presentations=45_000, probe_scored=45_000)
        account.ratio_to(full_data_flops(45_000, 4, 2e5))
    """

    flops_per_example: float
    train_presentations: int = 0
    probe_flops_per_example: float = 0.0
    probe_presentations: int = 0
    probe_scored: int = 0
    in_run_scored: int = 0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"`{field.name}` must be a finite number >= 0, got {value!r}")

    @property
    def probe_flops(self) -> float:
        """FLOPs spent choosing the subset (probe training, probe scoring, in-run scoring)."""
        return run_flops(self.probe_presentations, self.probe_scored, self.probe_flops_per_example) + run_flops(
            0, self.in_run_scored, self.flops_per_example
        )

    @property
    def train_flops(self) -> float:
        """FLOPs of the main model's training presentations."""
        return run_flops(self.train_presentations, 0, self.flops_per_example)

    @property
    def total_flops(self) -> float:
        return self.probe_flops + self.train_flops

    def ratio_to(self, reference_flops: float) -> float:
        """``total_flops / reference_flops`` (e.g. the full-data run's :func:`full_data_flops`).

        Raises:
            ValueError: a reference that is not a positive number.
        """
        if not reference_flops > 0 or not math.isfinite(reference_flops):
            raise ValueError(f"`reference_flops` must be a positive finite number, got {reference_flops!r}")
        return self.total_flops / reference_flops

    def as_dict(self) -> dict[str, Any]:
        """The fields and the three FLOP totals, JSON-serialisable (for ``summary.json``)."""
        return {
            **dataclasses.asdict(self),
            "probe_flops": self.probe_flops,
            "train_flops": self.train_flops,
            "total_flops": self.total_flops,
        }
