"""The kept subset of a run: probe → score → select, saved in the run directory as ``kept_indices.npz``
(a foundation subset, see :mod:`datadiet.subset`) that a rerun with the same settings reuses."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import lightning.pytorch as pl
import numpy as np
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

from datadiet.app.ensemble import run_probe_seeds
from datadiet.app.probe import provenance, run_probe
from datadiet.app.pruning_modes import strategy_options
from datadiet.app.rundir import array_digest, may_reuse
from datadiet.data import PruningDataModule
from datadiet.diagnostics import save_correlations
from datadiet.selection import needs_scores
from datadiet.store import ScoreTable
from datadiet.subset import export_foundation_subset, subset_for_datamodule, table_for_datamodule

#: The kept subset's file in the run directory.
KEPT_FILE = "kept_indices.npz"


def save_kept(
    path: Path,
    kept: np.ndarray,
    table: Optional[ScoreTable],
    cfg: DictConfig,
    settings: Optional[dict[str, Any]] = None,
) -> None:
    """Writes the kept subset as a reusable foundation subset (see :mod:`datadiet.subset`); ``settings``
    (what the selection depends on) lets a rerun in the same run directory reuse it."""
    export_foundation_subset(
        path,
        kept,
        table,
        score=cfg.pruning.score if table is not None else None,
        provenance={
            "pruning": OmegaConf.to_container(cfg.pruning, resolve=True),
            "probe_fingerprint": None if table is None else table.metadata.get("probe_fingerprint"),
            "settings": settings,
        },
    )


def _kept_settings(path: Path) -> Optional[dict[str, Any]]:
    """The settings an earlier run's ``kept_indices.npz`` was selected with (its ``.json``), or ``None``."""
    sidecar = path.with_suffix(".json")
    return json.loads(sidecar.read_text()).get("settings") if path.is_file() and sidecar.is_file() else None


@dataclass
class KeptSubset:
    """What probe → score → select decided; with ``probe.mode=in_run`` the fit fills it in."""

    kept: Optional[np.ndarray]  # None: chosen by PruneDuringFit during the fit
    keep_fraction: float
    table: Optional[ScoreTable] = None
    costs: dict[str, Any] = field(default_factory=lambda: {"probe_wall_time_s": 0.0, "probe_examples_seen": 0})
    resumed: list[str] = field(default_factory=list)  # phases whose earlier outputs this run reuses


def choose_subset(
    cfg: DictConfig, datamodule: PruningDataModule, loggers: list[Logger], output_dir: Path
) -> KeptSubset:
    """Probe → score → select: sets the data module's kept subset and saves it as ``kept_indices.npz``."""
    subset = KeptSubset(kept=None, keep_fraction=float(cfg.pruning.keep_fraction))
    kept_settings: Optional[dict[str, Any]] = None
    if cfg.pruning.get("mode", "static") == "dynamic":  # all data, pruned epoch by epoch during the fit: no probe
        subset.keep_fraction = 1.0
        datamodule.reset_pruning()
        subset.kept = np.arange(datamodule.num_examples)
    elif cfg.pruning.get("subset_path"):  # a foundation subset from an earlier run: no probe
        subset.kept = datamodule.kept_indices = subset_for_datamodule(cfg.pruning.subset_path, datamodule)
    elif cfg.probe.get("mode", "separate") == "in_run" and (
        subset.keep_fraction < 1 or not cfg.probe.skip_when_keeping_all
    ):
        pass  # chosen by PruneDuringFit after probe.epochs epochs of the training
    elif subset.keep_fraction < 1.0 or not cfg.probe.skip_when_keeping_all:
        _score(cfg, datamodule, loggers, output_dir, subset)
        kept_settings = _select(cfg, datamodule, output_dir, subset)
    else:
        datamodule.reset_pruning()
        subset.kept = np.arange(datamodule.num_examples)
    if subset.kept is not None and pl.utilities.rank_zero.rank_zero_only.rank == 0:
        save_kept(output_dir / KEPT_FILE, subset.kept, subset.table, cfg, kept_settings)
    return subset


def _score(
    cfg: DictConfig, datamodule: PruningDataModule, loggers: list[Logger], output_dir: Path, subset: KeptSubset
) -> None:
    """The scores the selection reads: none (e.g. random), imported ones, or the probe's (cached or resumed)."""
    if not needs_scores(cfg.pruning.strategy):  # e.g. random: the selection reads no scores, so no probe
        subset.table = None
    elif cfg.probe.get("scores_path"):  # imported or earlier scores instead of a probe
        subset.table = table_for_datamodule(cfg.probe.scores_path, datamodule, cfg.pruning.score)
    else:
        subset.table, subset.costs = run_probe_seeds(
            run_probe, cfg, datamodule, loggers, output_dir, lambda seed_cfg: provenance(seed_cfg, datamodule)
        )
    if subset.table is not None and pl.utilities.rank_zero.rank_zero_only.rank == 0 and len(subset.table) > 1:
        save_correlations(subset.table, output_dir / "score_correlations.csv", loggers)
    if subset.costs.pop("probe_resumed", False):
        subset.resumed.append("probe")
    elif subset.costs.get("probe_cache") == "hit":
        subset.resumed.append("probe from the cache")


def _select(cfg: DictConfig, datamodule: PruningDataModule, output_dir: Path, subset: KeptSubset) -> dict[str, Any]:
    """Prunes the data module by the scores (or reuses the subset an earlier run here chose with the same
    settings); returns those settings."""
    table = subset.table
    kept_path = output_dir / KEPT_FILE
    kept_settings = {  # what the selection depends on: a rerun reuses the subset only if all are equal
        "pruning": OmegaConf.to_container(cfg.pruning, resolve=True),
        "probe_fingerprint": None if table is None else table.metadata.get("probe_fingerprint"),
        "scores": None if table is None else array_digest(table[cfg.pruning.score]),
        "dataset_fingerprint": datamodule.fingerprint(),
    }
    outputs = [kept_path, kept_path.with_suffix(".json")]
    if may_reuse("kept subset", output_dir, outputs, _kept_settings(kept_path), kept_settings, cfg.get("resume", True)):
        subset.kept = datamodule.kept_indices = subset_for_datamodule(kept_path, datamodule)  # decided before a restart
        subset.resumed.append("kept subset")
    else:
        subset.kept = datamodule.prune(
            table if table is not None else np.zeros(datamodule.num_examples),
            score=cfg.pruning.score,
            keep_fraction=subset.keep_fraction,
            strategy=cfg.pruning.strategy,
            class_balanced=cfg.pruning.class_balanced,
            seed=cfg.pruning.seed,
            **strategy_options(cfg, datamodule.num_examples),
        )
    return kept_settings
