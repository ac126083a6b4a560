"""The app's compute accounting: each model's FLOPs per example, and the summary's compute entries — the
run's FLOPs per phase against training on all data for ``max_epochs``, the comparison with the
full-data reference in words, and the epochs of the early-stopped full-data run of the same compute."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import torch
from torch.utils.data import default_collate

from datadiet.compute import ComputeAccount, forward_flops_per_example, full_data_flops
from datadiet.selection import num_to_keep

if TYPE_CHECKING:
    from datadiet.app.plan import RunPlan


def measure_flops_per_example(model: torch.nn.Module, datamodule: Any) -> float:
    """Forward FLOPs per example of ``model`` on two real training inputs (the ``x`` of ``(x, y)`` items)."""
    dataset = datamodule.train_dataset
    collate = datamodule.collate_fn or default_collate
    batch = collate([dataset[i] for i in range(min(2, len(dataset)))])
    inputs = batch[0] if isinstance(batch, (list, tuple)) else batch
    parameter = next(model.parameters(), None)
    if parameter is not None and inputs.is_floating_point():
        inputs = inputs.to(parameter.dtype)
    return forward_flops_per_example(model, inputs)


def expected_kept(keep_fraction: float, num_examples: int, labels: Optional[np.ndarray], class_balanced: bool) -> int:
    """How many examples ``select`` will keep (per class when class-balanced)."""
    if not class_balanced or labels is None:
        return num_to_keep(num_examples, keep_fraction)
    _, counts = np.unique(labels, return_counts=True)
    return int(sum(num_to_keep(int(count), keep_fraction) for count in counts))


def early_stopped_epochs(compute_ratio: float, max_epochs: int) -> int:
    """The fewest full-data epochs that cost at least ``compute_ratio`` × ``max_epochs`` epochs (at least 1):
    the early-stopped run gets no less compute than the run it is compared with."""
    return max(1, math.ceil(compute_ratio * max_epochs - 1e-6))


def compute_summary(
    account: ComputeAccount,
    plan: "RunPlan",
    num_examples: int,
    epochs: int,
    test_value: float,
    reference: Optional[dict[str, Any]],
    is_reference: bool = False,
) -> dict[str, Any]:
    """The summary's compute entries: FLOPs per phase, ``compute_ratio`` (total FLOPs over those of training
    the same model on all data for ``max_epochs``) and the comparison of the test metric (``test_value``) with
    the full-data reference, in numbers (``test_metric_vs_reference``: positive = better, points for accuracy)
    and in words."""
    full = full_data_flops(num_examples, plan.max_epochs, account.flops_per_example)
    ratio = account.ratio_to(full)
    entries: dict[str, Any] = {
        "probe_mode": plan.probe_mode,
        "budget": plan.budget.kind,
        "epochs_scale": plan.budget.epochs_scale,
        "max_epochs": plan.max_epochs,
        "train_epochs": int(epochs),
        "flops_per_example": account.flops_per_example,
        "probe_flops_per_example": account.probe_flops_per_example,
        "probe_presentations": account.probe_presentations,
        "probe_scored_examples": account.probe_scored + account.in_run_scored,
        "probe_flops": account.probe_flops,
        "train_flops": account.train_flops,
        "total_flops": account.total_flops,
        "full_data_flops": full,
        "compute_ratio": ratio,
        "reference_test_metric_value": None,
        "test_metric_vs_reference": None,
        "reference_test_accuracy": None,
        "accuracy_vs_reference_pt": None,
    }
    if is_reference:
        entries["vs_full_data"] = "this run is the full-data reference (recorded for later runs)"
    elif reference is None:
        entries["vs_full_data"] = "no full-data reference: run with baseline=true"
    else:
        metric = plan.test_metric
        reference_value = float(reference["test_metric_value"])
        difference = metric.better_by(test_value, reference_value)
        entries["reference_test_metric_value"] = reference_value
        entries["test_metric_vs_reference"] = difference
        if metric.is_accuracy:
            entries["reference_test_accuracy"] = reference_value
            entries["accuracy_vs_reference_pt"] = difference
        entries["vs_full_data"] = f"{metric.describe(difference)} at {ratio:.2f}× compute"
    return entries
