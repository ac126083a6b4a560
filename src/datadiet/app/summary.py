"""The closing summary of a run: a readable table on the console and ``summary.json`` in the run directory."""

from __future__ import annotations

from typing import Any, Mapping


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
        "examples kept": f"{summary['examples_kept']:,} / {summary['train_examples']:,} ({summary['keep_fraction']:.0%})",
        **({"dynamic pruning": _readable_dynamic(summary)} if "presentations_per_epoch" in summary else {}),
        "test accuracy": f"{summary['test_accuracy']:.4f}",
        "probe wall time": f"{summary['probe_wall_time_s']:.1f} s",
        "probe examples seen": summary["probe_examples_seen"],
        "train wall time": f"{summary['train_wall_time_s']:.1f} s",
        "train examples seen": summary["train_examples_seen"],
        "total examples seen": summary["total_examples_seen"],
        **({"resumed": f"{', '.join(summary['resumed'])}; costs include earlier runs"} if summary["resumed"] else {}),
        **readable_compute(summary),
        "run directory": summary["output_dir"],
    }


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
    reference = summary.get("reference_test_accuracy")
    return {
        "training epochs": f"{summary['train_epochs']} (budget: {_budget(summary)}; probe: {summary['probe_mode']})",
        "FLOPs per example": f"model {_flops(summary['flops_per_example'])}, {probe} (forward)",
        "compute": (
            f"{_flops(summary['total_flops'])} = probe {_flops(summary['probe_flops'])} + train "
            f"{_flops(summary['train_flops'])} = {summary['compute_ratio']:.2f}× full data"
        ),
        "vs full data": summary["vs_full_data"]
        + ("" if reference is None else f" (full data: test accuracy {reference:.4f})"),
        **({"vs early-stopped": summary["vs_early_stopped"]} if "vs_early_stopped" in summary else {}),
    }


def _budget(summary: dict[str, Any]) -> str:
    scale = summary.get("epochs_scale", 1.0)
    return summary["budget"] if scale == 1 else f"{summary['budget']} × {scale:g} of max_epochs={summary['max_epochs']}"


def _flops(value: float) -> str:
    return f"{value:.3g}" if value < 1000 else f"{value:.3g}".replace("e+0", "e").replace("e+", "e")
