"""The closing summary of a run: ``summary.json`` in the run directory and a readable table on the console."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional

from datadiet.app.accounting import compute_summary
from datadiet.app.plan_parts import SUBSET_FILE
from datadiet.app.subset_usage import subset_entries
from datadiet.compute import ComputeAccount

if TYPE_CHECKING:
    from datadiet.app.kept_subset import KeptSubset
    from datadiet.app.plan import RunPlan
    from datadiet.app.training import Fit


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_summary(rows: Mapping[str, Any], title: str = "datadiet summary") -> str:
    """Two aligned columns under a title, one row per entry."""
    width = max((len(key) for key in rows), default=0)
    lines = [title, "-" * max(len(title), width + 20)]
    lines += [f"{key:<{width}}  {_format(value)}" for key, value in rows.items()]
    return "\n".join(lines)


def readable(summary: dict[str, Any]) -> dict[str, Any]:
    """The console rows of a run's ``summary.json`` entries, for :func:`format_summary`."""
    selection = (
        f"{summary['score']} / {summary['strategy']}{' / class-balanced' if summary['class_balanced'] else ''}"
        if summary["score"]
        else summary["strategy"]
    )
    return {
        "dataset": f"{summary['dataset']} ({summary['train_examples']:,} training examples)",
        "selection": selection,
        "examples kept": f"{summary['examples_kept']:,} / {summary['train_examples']:,} "
        f"({summary['keep_fraction']:.0%})",
        **({"dynamic pruning": _readable_dynamic(summary)} if "presentations_per_epoch" in summary else {}),
        **({"likely mislabelled": _readable_mislabelled(summary)} if "label_noise_estimate" in summary else {}),
        _metric_label(summary): f"{_metric_value(summary):.4f}",
        "probe wall time": f"{summary['probe_wall_time_s']:.1f} s",
        "probe examples seen": summary["probe_examples_seen"],
        "train wall time": f"{summary['train_wall_time_s']:.1f} s",
        "train examples seen": summary["train_examples_seen"],
        "total examples seen": summary["total_examples_seen"],
        **({"resumed": f"{', '.join(summary['resumed'])}; costs include earlier runs"} if summary["resumed"] else {}),
        **readable_compute(summary),
        "run directory": summary["output_dir"],
    }


def _readable_mislabelled(summary: dict[str, Any]) -> str:
    handling = "kept" if summary["mislabelled_handling"] == "keep" else "excluded"
    when, why = "", ""
    decision = summary.get("mislabelled_auto")
    if decision is not None:  # pruning.mislabelled=auto: when the detector ran, and why it excluded or not
        handling = "excluded" if decision["noisy"] and not decision.get("guard") else "kept"
        when, why = f" after {summary['mislabelled_scored_after_epochs']} epochs", f"; {_auto_reason(decision)}"
    truth = ""
    if "mislabel_precision" in summary:
        truth = (
            f" (injected {summary['label_noise']['num_flipped']:,}: precision {summary['mislabel_precision']:.3f}, "
            f"recall {summary['mislabel_recall']:.3f})"
        )
    return (
        f"{summary['mislabelled_flagged']:,} ({summary['label_noise_estimate']:.1%}){when}: {handling}{why}; list in "
        f"flagged_examples.csv{truth}"
    )


def _auto_reason(decision: dict[str, Any]) -> str:
    if decision.get("guard"):  # the regime guard kept all data
        return f"kept all: {decision['guard']}; trained on all data"
    seen = (
        f"labels looked {'noisy' if decision['noisy'] else 'clean'} after {decision['after_epochs']} epoch(s) "
        f"(estimate {decision['estimate']:.1%} {'>' if decision['noisy'] else '<='} {decision['threshold']:.0%})"
    )
    if not decision["noisy"]:
        return f"{seen}, so nothing was excluded"
    if not decision["extra_epochs"]:
        return seen
    return (
        f"{seen}, so the probe ran {decision['extra_epochs']} more epoch(s) and kept "
        f"{decision['keep_fraction']:.0%} to stay at the planned compute"
    )


def _readable_dynamic(summary: dict[str, Any]) -> str:
    anneal = 100 * summary["anneal_fraction"]
    presented = summary["presentations_per_epoch"]
    return f"InfoBatch r={summary['prune_ratio']}, last {anneal:.3g} % of epochs on all data; {presented} per epoch"


def readable_compute(summary: dict[str, Any]) -> dict[str, str]:
    """The console rows of the compute entries (see :func:`datadiet.app.accounting.compute_summary`)."""
    probe = (
        f"probe {_flops(summary['probe_flops_per_example'])}"
        if summary["probe_flops_per_example"]
        else "no separate probe"
    )
    reference = summary.get("reference_test_metric_value")
    return {
        "training epochs": f"{summary['train_epochs']} (budget: {_budget(summary)}; probe: {summary['probe_mode']})",
        "FLOPs per example": f"model {_flops(summary['flops_per_example'])}, {probe} (forward)",
        "compute": (
            f"{_flops(summary['total_flops'])} = probe {_flops(summary['probe_flops'])} + train "
            f"{_flops(summary['train_flops'])} = {summary['compute_ratio']:.2f}× full data"
        ),
        "vs full data": summary["vs_full_data"]
        + ("" if reference is None else f" (full data: {_metric_label(summary)} {reference:.4f})"),
        **({"vs early-stopped": summary["vs_early_stopped"]} if "vs_early_stopped" in summary else {}),
        **_readable_subset(summary),
    }


def _readable_subset(summary: dict[str, Any]) -> dict[str, str]:
    """The rows of a run on a foundation subset: who chose it, and the compute with its selection's cost."""
    if "subset" not in summary:
        return {}
    subset = summary["subset"]
    rows = {"subset": f"{subset['path']} (chosen by {subset['selector'] or 'an unrecorded selector'})"}
    if summary.get("compute_ratio_with_selection_share") is None:
        rows["with selection"] = summary.get("compute_with_selection", "not known")
    else:
        rows["with selection"] = (
            f"{summary['compute_ratio_with_selection']:.2f}× full data; "
            f"shared over {summary['runs_sharing_selection']} "
            f"run(s): {summary['compute_ratio_with_selection_share']:.2f}× ({summary['runs_counted_by']})"
        )
    return rows


def _metric_label(summary: dict[str, Any]) -> str:
    name = summary.get("test_metric", "test/acc")
    return "test accuracy" if name == "test/acc" else name


def _metric_value(summary: dict[str, Any]) -> float:
    return summary["test_metric_value"] if "test_metric_value" in summary else summary["test_accuracy"]


def metric_text(summary: dict[str, Any]) -> str:
    """``test accuracy 0.9730`` (or the run's own test metric), for one-line reports."""
    return f"{_metric_label(summary)} {_metric_value(summary):.4f}"


def _optional(metrics: dict[str, Any], name: str) -> Optional[float]:
    return float(metrics[name]) if name in metrics else None


def _budget(summary: dict[str, Any]) -> str:
    scale = summary.get("epochs_scale", 1.0)
    return summary["budget"] if scale == 1 else f"{summary['budget']} × {scale:g} of max_epochs={summary['max_epochs']}"


def _flops(value: float) -> str:
    return f"{value:.3g}" if value < 1000 else f"{value:.3g}".replace("e+0", "e").replace("e+", "e")


# summary.json -------------------------------------------------------------------------------------
def run_summary(
    plan: "RunPlan", datamodule: Any, subset: "KeptSubset", fit: "Fit", reference: Optional[dict[str, Any]]
) -> tuple[dict[str, Any], bool]:
    """The run's ``summary.json`` entries, with its compute against full data and the full-data ``reference``
    (``None`` when there is none); and whether this run is itself the full-data reference."""
    kept, table, costs, pruning = subset.kept, subset.table, subset.costs, plan.pruning
    metric = plan.test_metric
    value = metric.value(fit.test_metrics)
    test_accuracy = _optional(fit.test_metrics, "test/acc")
    summary = {
        "dataset": datamodule.name,
        "train_examples": datamodule.num_examples,
        "examples_kept": int(len(kept)),
        "keep_fraction": subset.keep_fraction,
        "score": pruning.score if table is not None else None,
        "strategy": (
            pruning.strategy
            if table is not None or (len(kept) < datamodule.num_examples and not pruning.subset_path)
            else "all (no probe)"
        ),
        "class_balanced": pruning.class_balanced,
        "test_metric": metric.name,
        "test_metric_mode": metric.mode,
        "test_metric_value": value,
        "objective": metric.objective(value),
        # the built-in models' metrics (None where the model does not log them)
        "test_accuracy": test_accuracy,
        "test_error": None if test_accuracy is None else 1.0 - test_accuracy,
        "test_loss": _optional(fit.test_metrics, "test/loss"),
        **costs,
        "train_wall_time_s": fit.wall_time_s,
        "train_examples_seen": fit.examples_seen,
        "total_examples_seen": costs["probe_examples_seen"] + fit.examples_seen,
        "seed": plan.seed,
        "output_dir": str(plan.paths.output_dir),
        "resumed": subset.resumed,
        "pruning_mode": pruning.mode.name,
        **pruning.mode.summary(fit.mode_callbacks),
    }
    account = ComputeAccount(
        flops_per_example=fit.flops_per_example,
        train_presentations=fit.examples_seen,
        probe_flops_per_example=fit.probe_flops_per_example,
        probe_presentations=int(costs.get("probe_presentations", 0)),
        probe_scored=int(costs.get("probe_scored_examples", 0)),
        in_run_scored=fit.prune.scored_examples if fit.prune is not None else 0,
    )
    is_reference = plan.may_be_reference(fit.epochs, account.probe_flops)
    summary.update(
        compute_summary(
            account,
            plan,
            datamodule.num_examples,
            fit.epochs,
            value,
            None if is_reference else reference,
            is_reference,
        )
    )
    if plan.selection == SUBSET_FILE:  # a foundation subset: where it came from, and its cost shared
        summary.update(subset_entries(plan, summary))
    return summary, is_reference
