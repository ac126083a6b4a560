"""The pruned run's training budget: its epochs under ``pruning.budget``, against all data for ``max_epochs``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from datadiet.compute import full_data_flops, scoring_pass_examples

BUDGETS = ("epochs", "steps", "compute")


@dataclass(frozen=True)
class Budget:
    """How many epochs the main training gets (E = ``max_epochs``, f = kept / all).

    - ``epochs``: E, or ``epochs_scale · E`` rounded (halves up, at least 1).
    - ``steps``: the optimizer steps of full data: ``round(E / f)``; with the in-run probe the first k =
      ``in_run_epochs`` epochs are on all data: ``k + round((E - k) / f)``.
    - ``compute``: the largest number of epochs whose FLOPs (the probe's and, in-run, the first k full
      epochs and the scoring pass included) stay within ``compute_fraction`` × full-data FLOPs — rounded
      down, so the run never spends more than its budget.

    Attributes:
        kind: ``epochs``, ``steps`` or ``compute`` (``pruning.budget``).
        max_epochs: E, the full-data reference's epochs.
        epochs_scale: ``pruning.epochs_scale`` (``epochs`` only).
        compute_fraction: ``pruning.compute_fraction`` (``compute`` only).
        in_run_epochs: epochs on all data before the in-run probe prunes (0 without it).
        in_run_scoring: whether the in-run pruning scores with an eval-mode pass (an ``eval`` score).
    """

    kind: str
    max_epochs: int
    epochs_scale: float = 1.0
    compute_fraction: Optional[float] = None
    in_run_epochs: int = 0
    in_run_scoring: bool = False

    @property
    def scaled_epochs(self) -> int:
        """``epochs_scale · max_epochs`` rounded to the nearest (halves up), at least 1."""
        return max(1, math.floor(self.epochs_scale * self.max_epochs + 0.5 + 1e-9))

    def train_epochs(self, num_examples: int, num_kept: int, flops_per_example: float, probe_flops: float = 0.0) -> int:
        """The main training's epochs when ``num_kept`` of ``num_examples`` are kept.

        Raises:
            ValueError: a compute budget too small to train one epoch on the kept subset.
        """
        epochs = self.max_epochs
        in_run = self.in_run_epochs > 0 and num_kept < num_examples
        before = self.in_run_epochs if in_run else 0
        if self.kind == "epochs":
            return self.scaled_epochs
        if self.kind == "steps":
            return before + max(1, round((epochs - before) / (num_kept / num_examples)))
        full = full_data_flops(num_examples, epochs, flops_per_example)
        spent = probe_flops
        if in_run:
            scored = scoring_pass_examples(num_examples) if self.in_run_scoring else 0
            spent += full_data_flops(num_examples, before, flops_per_example) + scored * flops_per_example
        per_epoch = full_data_flops(num_kept, 1, flops_per_example)
        after = math.floor((float(self.compute_fraction) * full - spent) / per_epoch + 1e-9)
        if after < 1:
            raise ValueError(
                f"`pruning.compute_fraction={self.compute_fraction}` is spent before the pruned training: selection "
                f"costs {spent / full:.2f}× full-data compute and one epoch on {num_kept:,} examples "
                f"{per_epoch / full:.2f}×; raise compute_fraction or use a cheaper probe (probe=selector, "
                "probe.mode=in_run)"
            )
        return before + after
