"""``datadiet task=select``: the run that only chooses — score, select, and write ``subset.npz`` with its dataset card
(``README.md``, ``subset_card.json``) into the run directory, for any number of later runs to train on with
``pruning.subset_path``.
"""

from __future__ import annotations

import shlex
import time
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
from hydra.core.hydra_config import HydraConfig

from datadiet import __version__
from datadiet.app.accounting import measure_flops_per_example
from datadiet.app.kept_subset import choose_subset, save_label_records
from datadiet.app.probe import make_model
from datadiet.app.summary import format_summary
from datadiet.app.user_code import make_datamodule
from datadiet.compute import run_flops
from datadiet.files import atomic_write_json
from datadiet.subset import export_foundation_subset

if TYPE_CHECKING:
    from lightning.pytorch.loggers import Logger

    from datadiet.app.kept_subset import KeptSubset
    from datadiet.app.plan import RunPlan
    from datadiet.data import PruningDataModule

#: The subset's file in a ``task=select`` run directory (its card: ``README.md`` and ``subset_card.json``).
SUBSET_FILE_NAME = "subset.npz"

_SELECTORS = {
    "in_run": "in-run: the model's own first {epochs} epoch(s) on all data, then an eval-mode scoring pass",
    "separate": "a separate selector model trained {epochs} epoch(s) on all data, then an eval-mode scoring pass",
    "imported": "imported scores ({path})",
    "none": "no scores (a score-free strategy)",
}


def select_only(plan: RunPlan, loggers: list[Logger]) -> dict[str, Any]:
    """Chooses the subset as ``plan`` says and writes it with its card; returns the run's summary (also written to
    ``summary.json``; its ``objective`` is NaN: nothing is tested)."""
    output_dir = plan.paths.output_dir
    datamodule = make_datamodule(plan.data)
    scored_by_model = plan.selector in ("in_run", "separate")
    if scored_by_model:
        make_model(plan.probe.model, datamodule)  # a model that cannot be built for this data fails before scoring
    start = time.perf_counter()
    subset = choose_subset(plan, datamodule, loggers)
    wall_time = time.perf_counter() - start
    label_records = save_label_records(plan, datamodule, subset)
    selector, cost = _selector_and_cost(plan, datamodule, subset, wall_time, scored_by_model)
    path = output_dir / SUBSET_FILE_NAME
    provenance = {
        "dataset": {
            "name": datamodule.name,
            "fingerprint": datamodule.fingerprint(),
            "num_examples": datamodule.num_examples,
            "overrides": _data_overrides(),
        },
        "selection": {
            "selector": selector,
            "score": plan.pruning.score if subset.table is not None else None,
            "strategy": plan.pruning.strategy,
            "keep_fraction": plan.pruning.keep_fraction,
            "class_balanced": plan.pruning.class_balanced,
            "seed": plan.pruning.seed,
            "label_noise": _label_noise(plan, label_records),
        },
        "cost": cost,
        "train_command": train_command(path),
        "datadiet_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    is_zero = pl.utilities.rank_zero.rank_zero_only.rank == 0
    if is_zero:
        export_foundation_subset(
            path,
            subset.kept,
            subset.table,
            score=plan.pruning.score if subset.table is not None else None,
            provenance=provenance,
            card=True,
            labels=datamodule.labels,
            num_examples=datamodule.num_examples,
        )
    summary = {
        "task": "select",
        "dataset": datamodule.name,
        "train_examples": datamodule.num_examples,
        "examples_kept": len(subset.kept),
        "keep_fraction": plan.pruning.keep_fraction,
        "subset_path": str(path),
        "card": str(output_dir / "README.md"),
        "dataset_fingerprint": provenance["dataset"]["fingerprint"],
        **{key: provenance[key] for key in ("selection", "cost", "train_command")},
        **label_records,
        "resumed": subset.resumed,
        "objective": float("nan"),
        "output_dir": str(output_dir),
    }
    if is_zero:
        atomic_write_json(output_dir / "summary.json", summary)
    return summary


def readable_selection(summary: dict[str, Any]) -> str:
    """The console table of a ``task=select`` run."""
    selection, cost = summary["selection"], summary["cost"]
    return format_summary(
        {
            "dataset": f"{summary['dataset']} ({summary['train_examples']:,} examples)",
            "selector": selection["selector"]["description"],
            "selection": f"{selection['score'] or '-'} / {selection['strategy']}"
            f"{' / class-balanced' if selection['class_balanced'] else ''}",
            "examples kept": f"{summary['examples_kept']:,} / {summary['train_examples']:,}",
            "cost": f"{cost['flops']:.3g} FLOPs, {cost['wall_time_s']:.1f} s",
            "subset": summary["subset_path"],
            "card": summary["card"],
            "train on it": summary["train_command"],
        },
        title="datadiet subset",
    )


def train_command(path: Any) -> str:
    """The command line that trains a model on the subset at ``path``, with this run's data settings."""
    return " ".join(
        [
            "datadiet",
            "model=mlp",
            *(shlex.quote(item) for item in _data_overrides()),
            shlex.quote(f"pruning.subset_path={path}"),
        ]
    )


def _data_overrides() -> list[str]:
    """The command line's ``data`` settings (the group and its keys): the data the subset was made for."""
    if not HydraConfig.initialized():
        return []
    hydra_cfg = HydraConfig.get()
    overrides = [
        item for item in hydra_cfg.overrides.task if item.split("=", 1)[0].lstrip("+~").split(".")[0] == "data"
    ]
    if not any(item.split("=", 1)[0] == "data" for item in overrides) and "data" in hydra_cfg.runtime.choices:
        overrides.insert(0, f"data={hydra_cfg.runtime.choices['data']}")
    return overrides


def _selector_and_cost(
    plan: RunPlan, datamodule: PruningDataModule, subset: KeptSubset, wall_time: float, scored_by_model: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    costs = subset.costs
    description = _SELECTORS[plan.selector].format(epochs=plan.probe.epochs, path=plan.probe.scores_path)
    selector: dict[str, Any] = {"kind": plan.selector, "description": description}
    cost: dict[str, Any] = {
        "flops": 0.0,
        "wall_time_s": wall_time,
        "examples_seen": int(costs.get("probe_examples_seen", 0)),
    }
    if scored_by_model:
        model = make_model(plan.probe.model, datamodule)
        flops_per_example = measure_flops_per_example(model, datamodule)
        presentations, scored = int(costs.get("probe_presentations", 0)), int(costs.get("probe_scored_examples", 0))
        selector.update(
            model=_model_name(plan.probe.model),
            parameters=int(sum(p.numel() for p in model.parameters())),
            epochs=int(plan.probe.epochs),
            flops_per_example=flops_per_example,
        )
        cost.update(
            flops=run_flops(presentations, scored, flops_per_example),
            train_flops=run_flops(presentations, 0, flops_per_example),
            scoring_flops=run_flops(0, scored, flops_per_example),
            probe_wall_time_s=costs.get("probe_wall_time_s"),
        )
        if subset.resumed:
            cost["note"] = f"reused: {', '.join(subset.resumed)} (its cost is the original run's)"
    elif plan.selector == "imported":
        cost["note"] = "the imported scores' own cost is not known here; only the selection is counted"
    return selector, cost


def _model_name(model_cfg: dict[str, Any]) -> str:
    """``datadiet.models.MLP(hidden_sizes=[32])`` from a model config (its network's target and settings)."""
    net = model_cfg.get("net")
    if isinstance(net, dict) and "_target_" in net:
        settings = ", ".join(f"{key}={value}" for key, value in net.items() if not key.startswith("_"))
        return f"{net['_target_']}({settings})"
    return str(model_cfg.get("_target_"))


def _label_noise(plan: RunPlan, records: dict[str, Any]) -> dict[str, Any] | None:
    """How flagged (likely mislabelled) examples were treated; ``None`` when the detector did not run."""
    if "label_noise_estimate" not in records:
        return {"handling": "none (no mislabel detection)"}
    decision = records.get("mislabelled_auto")
    handling = plan.pruning.mislabelled if decision is None else ("exclude" if decision["noisy"] else "keep")
    return {
        "setting": plan.pruning.mislabelled,
        "handling": handling,
        "detector": plan.pruning.detector,
        "flagged": records["mislabelled_flagged"],
        "excluded": records["mislabelled_excluded"],
        "noise_estimate": round(float(records["label_noise_estimate"]), 4),
    }


__all__ = ["SUBSET_FILE_NAME", "readable_selection", "select_only", "train_command"]
