"""How the app prunes besides a probe-chosen subset: ``pruning.mode`` (static, dynamic, both) and
``probe.mode=in_run`` (the main model scores and prunes after ``probe.epochs`` epochs of its own fit)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import lightning.pytorch as pl
import numpy as np
from omegaconf import DictConfig

from datadiet.app.probe import provenance, score_options
from datadiet.callbacks import DynamicPruning, PruneDuringFit
from datadiet.data import PruningDataModule
from datadiet.store import ScoreTable

#: ``pruning.mode``: a probe-chosen subset, InfoBatch-style dynamic pruning of all data, or both at once.
PRUNING_MODES = ("static", "dynamic", "both")


def validate_pruning_mode(cfg: DictConfig) -> None:
    """Fails before any training on a bad ``pruning.mode`` or settings it cannot honour."""
    mode = cfg.pruning.get("mode", "static")
    if mode not in PRUNING_MODES:
        raise ValueError(f"`pruning.mode` can be {', '.join(PRUNING_MODES)}, got {mode!r}")
    if mode == "static":
        return
    dynamic_pruning(cfg)  # validates prune_ratio and anneal_fraction
    if cfg.pruning.get("budget", "epochs") != "epochs":
        raise ValueError(
            f"`pruning.mode={mode}` skips examples as training goes, so `pruning.budget={cfg.pruning.budget}` (set "
            "from the kept subset's size before training) cannot be honoured; use pruning.budget=epochs"
        )
    if mode == "dynamic" and cfg.pruning.get("subset_path"):
        raise ValueError(
            "`pruning.mode=dynamic` trains on all data; to prune dynamically inside "
            f"`pruning.subset_path={cfg.pruning.subset_path}`, use pruning.mode=both"
        )


def dynamic_pruning(cfg: DictConfig) -> DynamicPruning:
    """The ``DynamicPruning`` callback of ``pruning.mode=dynamic|both``."""
    return DynamicPruning(
        prune_ratio=cfg.pruning.prune_ratio, anneal_fraction=cfg.pruning.anneal_fraction, seed=int(cfg.pruning.seed)
    )


def strategy_options(cfg: DictConfig, num_examples: int) -> dict[str, Any]:
    """``pruning.options`` for the selection strategy; ``auto`` reads the whole training set's size (its regime)."""
    options = dict(cfg.pruning.get("options", {}))
    if cfg.pruning.strategy == "auto":  # the data regime is the whole training set's, also per class
        options.setdefault("num_examples", num_examples)
    return options


def in_run_pruning(cfg: DictConfig, datamodule: PruningDataModule) -> PruneDuringFit:
    """``probe.mode=in_run``: the callback that scores with the main model after ``probe.epochs`` and prunes."""
    return PruneDuringFit(
        after_epochs=int(cfg.probe.epochs),
        score=cfg.pruning.score,
        keep_fraction=float(cfg.pruning.keep_fraction),
        strategy=cfg.pruning.strategy,
        class_balanced=bool(cfg.pruning.class_balanced),
        seed=int(cfg.pruning.seed),
        strategy_options=strategy_options(cfg, datamodule.num_examples),
        score_options=score_options(cfg).get(cfg.pruning.score),
    )


def finish_in_run(
    prune: PruneDuringFit, cfg: DictConfig, datamodule: PruningDataModule, output_dir: Path
) -> tuple[np.ndarray, Optional[ScoreTable], dict[str, Any]]:
    """After an in-run fit: the kept subset, the scores it came from (saved like a probe's) and the scoring cost."""
    kept = prune.kept_indices if prune.pruned else np.arange(datamodule.num_examples)
    table = prune.score_table if prune.pruned and prune._score_table is not None else None
    costs = {"probe_wall_time_s": prune.scoring_wall_time_s, "probe_examples_seen": prune.scored_examples}
    if table is not None and pl.utilities.rank_zero.rank_zero_only.rank == 0:
        table.metadata.update(provenance(cfg, datamodule))
        table.metadata["probe_costs"] = dict(costs)
        table.save(output_dir / "scores.npz")
    return kept, table, costs
