"""The full-data reference a run's test metric is compared with (``baseline=true`` or the reference cache), and
the verdict against the early-stopped full-data run (all data for the fewest epochs that cost at least what
the run cost: :func:`datadiet.app.accounting.early_stopped_epochs`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from datadiet import __version__
from datadiet.app.rundir import set_aside
from datadiet.files import UnreadableFileError, atomic_write_json, read_json

if TYPE_CHECKING:
    from datadiet.app.plan import RunPlan


def _path(plan: RunPlan, key: str) -> Path:
    return Path(plan.config["paths"]["cache_dir"]) / "references" / f"{key}.json"


def load_reference(plan: RunPlan, key: str) -> dict[str, Any] | None:
    """The recorded full-data run of this data/model/trainer/epochs/seed that measured the same test metric,
    or ``None``."""
    path = _path(plan, key)
    if not path.is_file():
        return None
    try:
        record = read_json(path)
        if not isinstance(record, dict):
            raise UnreadableFileError(path, "it is not a JSON object")
    except UnreadableFileError as error:  # the full-data run is made again and recorded anew
        set_aside(path.parent.parent, [path], error, "full-data reference")
        return None
    record.setdefault("test_metric", "test/acc")  # records of older versions measured accuracy
    record.setdefault("test_metric_value", record.get("test_accuracy"))
    if record.get("reference_key") != key or record["test_metric"] != plan.test_metric.name:
        return None
    return record


def save_reference(plan: RunPlan, key: str, summary: dict[str, Any]) -> None:
    """Records a full-data run (keep_fraction 1, max_epochs epochs, no probe) for later comparisons."""
    record = {
        "reference_key": key,
        "test_metric": summary["test_metric"],
        "test_metric_value": summary["test_metric_value"],
        "test_accuracy": summary["test_accuracy"],
        "total_flops": summary["total_flops"],
        "max_epochs": plan.max_epochs,
        "output_dir": summary["output_dir"],
        "datadiet_version": __version__,
    }
    atomic_write_json(_path(plan, key), record)


def compare_early_stopped(
    summary: dict[str, Any], early: dict[str, Any], max_epochs: int, plan: RunPlan
) -> dict[str, Any]:
    """The summary's verdict against the early-stopped full-data run: did pruning pay at this compute?"""
    metric = plan.test_metric
    epochs = int(early["train_epochs"])
    difference = metric.better_by(summary["test_metric_value"], early["test_metric_value"])
    early_ratio = epochs / max_epochs
    paid = difference > 0
    label = "test accuracy" if metric.is_accuracy else metric.name
    verdict = (
        f"pruning paid: {metric.describe(difference)} over all data for {epochs} epochs ({early_ratio:.2f}× compute)"
        if paid
        else f"pruning did not pay: all data for {epochs} epochs ({early_ratio:.2f}× compute) reaches "
        f"{label} {early['test_metric_value']:.4f}, {metric.describe(difference)} for this run"
    )
    return {
        "early_stopped_epochs": epochs,
        "early_stopped_compute_ratio": early_ratio,
        "early_stopped_test_metric_value": float(early["test_metric_value"]),
        "test_metric_vs_early_stopped": difference,
        "early_stopped_test_accuracy": early.get("test_accuracy"),
        "accuracy_vs_early_stopped_pt": difference if metric.is_accuracy else None,
        "pruning_paid": paid,
        "vs_early_stopped": verdict,
    }
