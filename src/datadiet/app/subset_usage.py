"""Training on a foundation subset (``pruning.subset_path``): the subset's provenance in ``summary.json`` and the
selection's cost accounted two ways — the run alone, and shared over the runs that used the subset (the jobs of
this Hydra multirun that train on it; a single run counts 1)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from datadiet.subset import load_foundation_subset, subset_group

if TYPE_CHECKING:
    from datadiet.app.plan import RunPlan

_SUBSET_KEY = "pruning.subset_path"


def subset_entries(plan: RunPlan, summary: dict[str, Any]) -> dict[str, Any]:
    """The summary's entries of a run on ``pruning.subset_path``: ``subset`` (where it came from) and the compute
    with the selection's cost — whole (``compute_ratio_with_selection``) and shared over
    ``runs_sharing_selection`` runs (``compute_ratio_with_selection_share``; ``runs_counted_by`` says how)."""
    path = Path(str(plan.pruning.subset_path))
    metadata = load_foundation_subset(path).metadata
    selection, cost = metadata.get("selection") or {}, metadata.get("cost") or {}
    selector = selection.get("selector") or {}
    selection_flops = cost.get("flops")
    runs, counted_by = runs_sharing_subset(path)
    entries: dict[str, Any] = {
        "strategy": f"subset ({selection.get('score') or '-'} / {selection.get('strategy', '?')})",
        "subset": {
            "path": str(path.resolve()),
            "dataset_fingerprint": metadata.get("dataset_fingerprint"),
            "selector": selector.get("description"),
            "selector_model": selector.get("model"),
            "selector_parameters": selector.get("parameters"),
            "score": selection.get("score", metadata.get("score")),
            "strategy": selection.get("strategy"),
            "keep_fraction": selection.get("keep_fraction"),
            "selection_flops": selection_flops,
            "selection_wall_time_s": cost.get("wall_time_s"),
            "group": subset_group(path),
        },
        "runs_sharing_selection": runs,
        "runs_counted_by": counted_by,
    }
    if selection_flops is None:
        entries["compute_with_selection"] = (
            "not known: the subset file records no selection cost (write it with datadiet task=select)"
        )
        return entries
    full, run_alone = float(summary["full_data_flops"]), float(summary["total_flops"])
    shared = run_alone + float(selection_flops) / runs
    entries.update(
        selection_flops=float(selection_flops),
        total_flops_with_selection=run_alone + float(selection_flops),
        total_flops_with_selection_share=shared,
        compute_ratio_with_selection=(run_alone + float(selection_flops)) / full if full else None,
        compute_ratio_with_selection_share=shared / full if full else None,
    )
    return entries


def runs_sharing_subset(path: Path) -> tuple[int, str]:
    """How many runs share the subset's selection cost, and how they were counted: in a Hydra multirun, the jobs
    of the sweep (read from its ``multirun.yaml``) that train on this subset; otherwise 1."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return 1, "a single run: 1"
    hydra_cfg = HydraConfig.get()
    jobs = _sweep_jobs(Path(hydra_cfg.sweep.dir))
    if jobs is None:
        return 1, "a multirun whose sweep could not be read (not the basic sweeper): counted as 1"
    here = path.resolve()
    sharing = sum(1 for job in jobs if _job_subset(job, here))
    sharing = max(sharing, 1)
    return (
        sharing,
        f"the jobs of this multirun that train on the subset: {sharing} of {len(jobs)} (hydra multirun.yaml)",
    )


def _sweep_jobs(sweep_dir: Path) -> list[list[str]] | None:
    """Each job's overrides of the basic sweeper's sweep (``None`` when it cannot be read)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    saved = sweep_dir / "multirun.yaml"
    if not saved.is_file():
        return None
    try:
        config = OmegaConf.load(saved)
        if "basic_sweeper" not in str(OmegaConf.select(config, "hydra.sweeper._target_") or ""):
            return None
        params = OmegaConf.select(config, "hydra.sweeper.params") or {}
        arguments = [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)
        overrides = OverridesParser.create().parse_overrides(arguments)
        return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
    except Exception:  # noqa: BLE001  an override the plain parser cannot read (a sweeper plugin's syntax): not countable here
        return None


def _job_subset(job: list[str], here: Path) -> bool:
    for item in job:
        key, _, value = item.partition("=")
        if key.lstrip("+~") == _SUBSET_KEY:
            return value not in ("", "null") and Path(value).resolve() == here
    return True  # the sweep does not set it per job: every job trains on the same subset
