"""The selection phase: the kept subset of a run, saved in the run directory as ``kept_indices.npz`` (a
foundation subset, see :mod:`datadiet.subset`) that a rerun with the same settings reuses.

How it is chosen is the plan's :attr:`~datadiet.app.plan.RunPlan.selection`: all data, an earlier run's
subset file, probe (or imported) scores then the strategy, or — ``probe.mode=in_run`` — by
:class:`~datadiet.PruneDuringFit` during the main training (:func:`in_run_pruning`, :func:`finish_in_run`).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import lightning.pytorch as pl
import numpy as np
from lightning.pytorch.loggers import Logger

from datadiet.app.ensemble import run_probe_seeds
from datadiet.app.plan import ALL_DATA, BY_SCORES, SUBSET_FILE
from datadiet.app.probe import run_probe
from datadiet.app.reuse import probe_provenance, selection_settings
from datadiet.app.rundir import may_reuse, set_aside
from datadiet.callbacks import PruneDuringFit
from datadiet.callbacks.noisy_labels import NoiseDecision, class_counts
from datadiet.data import PruningDataModule
from datadiet.data.labels import dataset_paths
from datadiet.detection import LabelIssues
from datadiet.diagnostics import save_correlations
from datadiet.files import UnreadableFileError, atomic_save_npz, read_json
from datadiet.store import ScoreTable
from datadiet.subset import export_foundation_subset, subset_for_datamodule, table_for_datamodule

if TYPE_CHECKING:
    from datadiet.app.plan import RunPlan

log = logging.getLogger(__name__)

#: The kept subset's file in the run directory.
KEPT_FILE = "kept_indices.npz"


@dataclass
class KeptSubset:
    """What probe → score → select decided; with ``probe.mode=in_run`` the fit fills it in."""

    kept: Optional[np.ndarray]  # None: chosen by PruneDuringFit during the fit
    keep_fraction: float
    table: Optional[ScoreTable] = None
    costs: dict[str, Any] = field(default_factory=lambda: {"probe_wall_time_s": 0.0, "probe_examples_seen": 0})
    resumed: list[str] = field(default_factory=list)  # phases whose earlier outputs this run reuses


def choose_subset(plan: "RunPlan", datamodule: PruningDataModule, loggers: list[Logger]) -> KeptSubset:
    """Sets the data module's kept subset as the plan says and saves it as ``kept_indices.npz``."""
    output_dir = plan.paths.output_dir
    subset = KeptSubset(
        kept=None, keep_fraction=plan.pruning.keep_fraction if plan.pruning.mode.selects_subset else 1.0
    )
    settings: Optional[dict[str, Any]] = None
    if plan.selection == ALL_DATA:
        datamodule.reset_pruning()
        subset.kept = np.arange(datamodule.num_examples)
    elif plan.selection == SUBSET_FILE:  # a foundation subset from an earlier run: no probe
        subset.kept = datamodule.kept_indices = subset_for_datamodule(
            plan.pruning.subset_path, datamodule, remedy="pass `pruning.subset_path` a subset file datadiet wrote"
        )
    elif plan.selection == BY_SCORES:
        _score(plan, datamodule, loggers, subset)
        settings = _select(plan, datamodule, subset)
    # IN_RUN: chosen by PruneDuringFit after probe.epochs epochs of the training
    if subset.kept is not None and _rank_zero():
        save_kept(plan, output_dir / KEPT_FILE, subset.kept, subset.table, settings)
    return subset


def save_kept(
    plan: "RunPlan",
    path: Path,
    kept: np.ndarray,
    table: Optional[ScoreTable],
    settings: Optional[dict[str, Any]] = None,
) -> None:
    """Writes the kept subset as a reusable foundation subset (see :mod:`datadiet.subset`); ``settings``
    (what the selection depends on) lets a rerun in the same run directory reuse it."""
    export_foundation_subset(
        path,
        kept,
        table,
        score=plan.pruning.score if table is not None else None,
        provenance={
            "pruning": plan.pruning.settings,
            "probe_fingerprint": None if table is None else table.metadata.get("probe_fingerprint"),
            "settings": settings,
        },
    )


def _score(plan: "RunPlan", datamodule: PruningDataModule, loggers: list[Logger], subset: KeptSubset) -> None:
    """The scores the selection reads: none (e.g. random), imported ones, or the probe's (cached or resumed)."""
    output_dir = plan.paths.output_dir
    if plan.probe_source == "none":  # e.g. random: the selection reads no scores, so no probe
        subset.table = None
    elif plan.probe_source == "file":  # imported or earlier scores instead of a probe
        subset.table = table_for_datamodule(plan.probe.scores_path, datamodule, plan.pruning.score)
    else:
        subset.table, subset.costs = run_probe_seeds(
            run_probe, plan, datamodule, loggers, output_dir, lambda seed_plan: probe_provenance(seed_plan, datamodule)
        )
    if subset.table is not None and _rank_zero() and len(subset.table) > 1:
        save_correlations(subset.table, output_dir / "score_correlations.csv", loggers)
    if subset.costs.pop("probe_resumed", False):
        subset.resumed.append("probe")
    elif subset.costs.get("probe_cache") == "hit":
        subset.resumed.append("probe from the cache")


def _select(plan: "RunPlan", datamodule: PruningDataModule, subset: KeptSubset) -> dict[str, Any]:
    """Prunes the data module by the scores (or reuses the subset an earlier run here chose with the same
    settings); returns those settings."""
    table, pruning = subset.table, plan.pruning
    kept_path = plan.paths.output_dir / KEPT_FILE
    settings = selection_settings(plan, datamodule, table)
    outputs = [kept_path, kept_path.with_suffix(".json")]
    reused = None
    if may_reuse("kept subset", plan.paths.output_dir, outputs, _kept_settings(kept_path), settings, plan.resume):
        try:
            reused = subset_for_datamodule(kept_path, datamodule)  # decided before a restart
        except UnreadableFileError as error:
            set_aside(plan.paths.output_dir, outputs, error, "kept subset")
    handling = pruning.mislabelled or "keep"
    if pruning.mislabelled == "auto":  # a separate probe: no extension, the flagged are excluded at once if noisy
        decision = NoiseDecision.make(
            float(table.metadata["label_noise_estimate"]),
            pruning.noise_threshold,
            pruning.keep_fraction,
            plan.max_epochs,
            int(plan.probe.epochs),
            0,
            class_counts(datamodule.labels),
            trained_epochs=0,
            confident_learning_estimate=table.metadata.get("confident_learning_noise_estimate"),
        )
        table.metadata["mislabelled_auto"] = decision.as_dict()
        handling = decision.handling
        if decision.guard is not None:  # the regime guard: static pruning cannot pay here, all data is kept
            log.info("pruning.mislabelled=auto: %s", decision.describe())
            subset.keep_fraction = 1.0
    if reused is not None:
        subset.kept = datamodule.kept_indices = reused
        subset.resumed.append("kept subset")
    else:
        subset.kept = datamodule.prune(
            table if table is not None else np.zeros(datamodule.num_examples),
            score=pruning.score,
            keep_fraction=subset.keep_fraction,
            strategy=pruning.strategy,
            class_balanced=pruning.class_balanced,
            seed=pruning.seed,
            mislabelled=handling,
            **pruning.strategy_options(datamodule.num_examples),
        )
    return settings


def _kept_settings(path: Path) -> Optional[dict[str, Any]]:
    """The settings an earlier run's ``kept_indices.npz`` was selected with (its ``.json``), or ``None``: none
    recorded, or a ``.json`` that cannot be read (a warning names it; the subset is then moved aside)."""
    sidecar = path.with_suffix(".json")
    if not (path.is_file() and sidecar.is_file()):
        return None
    try:
        record = read_json(sidecar)
        if not isinstance(record, dict):
            raise UnreadableFileError(sidecar, "it is not a JSON object")
    except UnreadableFileError as error:
        log.warning(
            "%s cannot be read (%s): the kept subset is treated as made with unknown settings", sidecar, error.reason
        )
        return None
    return record.get("settings")


# In-run selection ---------------------------------------------------------------------------------
def in_run_pruning(plan: "RunPlan", datamodule: PruningDataModule) -> PruneDuringFit:
    """``probe.mode=in_run``: the callback that scores with the main model after ``probe.epochs`` and prunes."""
    pruning = plan.pruning
    return PruneDuringFit(
        after_epochs=plan.probe.epochs,
        score=pruning.score,
        keep_fraction=pruning.keep_fraction,
        strategy=pruning.strategy,
        class_balanced=pruning.class_balanced,
        seed=pruning.seed,
        strategy_options=pruning.strategy_options(datamodule.num_examples),
        score_options=copy.deepcopy(plan.probe.score_options.get(pruning.score)),
        mislabelled=pruning.mislabelled,
        detector=pruning.detector,
        **(
            {"noise_threshold": pruning.noise_threshold, "noisy_extra_epochs": pruning.noisy_extra_epochs}
            if pruning.mislabelled == "auto"
            else {}
        ),
    )


def finish_in_run(plan: "RunPlan", prune: PruneDuringFit, datamodule: PruningDataModule, subset: KeptSubset) -> None:
    """After an in-run fit: the kept subset, the scores it came from (saved like a probe's) and the scoring cost."""
    subset.kept = prune.kept_indices if prune.pruned else np.arange(datamodule.num_examples)
    subset.table = prune.score_table if prune.pruned and prune._score_table is not None else None
    subset.costs = {"probe_wall_time_s": prune.scoring_wall_time_s, "probe_examples_seen": prune.scored_examples}
    if subset.table is not None and _rank_zero():
        subset.table.metadata.update(probe_provenance(plan, datamodule))
        subset.table.metadata["probe_costs"] = dict(subset.costs)
        subset.table.save(plan.paths.output_dir / "scores.npz")
    if _rank_zero():
        save_kept(plan, plan.paths.output_dir / KEPT_FILE, subset.kept, subset.table)


# Mislabelled examples ---------------------------------------------------------------------------
#: The flagged examples' file in the run directory (original index, given label, predicted label, score, and the
#: example's file where the dataset knows it: ``ImageFolder.samples`` or a ``paths`` attribute).
FLAGGED_FILE = "flagged_examples.csv"
#: The injected label noise's record in the run directory (``data.label_noise > 0``).
NOISE_FILE = "label_noise.npz"


def save_label_records(plan: "RunPlan", datamodule: PruningDataModule, subset: KeptSubset) -> dict[str, Any]:
    """Writes ``flagged_examples.csv`` (when the detector ran) and ``label_noise.npz`` (when labels were replaced
    on purpose); returns the summary entries about them."""
    entries: dict[str, Any] = {}
    noise = getattr(datamodule, "label_noise", None)
    if noise is not None:
        entries["label_noise"] = noise.summary()
        if _rank_zero():
            atomic_save_npz(
                plan.paths.output_dir / NOISE_FILE,
                {"flipped_indices": noise.flipped_indices, "clean_labels": noise.clean_labels},
            )
    table = subset.table
    if table is None or "mislabelled" not in table.columns:
        return entries
    issues = LabelIssues(
        flagged=table.columns["mislabelled"].astype(bool),
        predicted_label=table.columns["predicted_label"],
        score=table.raw("label_issue"),
        noise_rate_estimate=float(table.metadata["label_noise_estimate"]),
        detector=plan.pruning.detector,
    )
    kept = np.zeros(datamodule.num_examples, dtype=bool)
    kept[subset.kept] = True
    decision = table.metadata.get("mislabelled_auto")  # what `auto` decided
    handling = plan.pruning.mislabelled if decision is None else ("exclude" if decision["noisy"] else "keep")
    entries.update(
        {
            "label_noise_estimate": issues.noise_rate_estimate,
            "mislabelled_flagged": issues.num_flagged,
            "mislabelled_excluded": int((issues.flagged & ~kept).sum()) if handling != "keep" else 0,
            "mislabelled_handling": plan.pruning.mislabelled,
            **(
                {}
                if decision is None
                else {
                    "mislabelled_auto": dict(decision),
                    "mislabelled_scored_after_epochs": int(table.metadata.get("probe_epochs", 0)),
                }
            ),
            "mislabel_detector": plan.pruning.detector,
            "flagged_examples": str(plan.paths.output_dir / FLAGGED_FILE),
        }
    )
    if noise is not None:  # the truth is known: how well the detector found it
        hits = int((issues.flagged & noise.is_flipped()).sum())
        entries["mislabel_precision"] = hits / max(issues.num_flagged, 1)
        entries["mislabel_recall"] = hits / max(noise.num_flipped, 1)
    if _rank_zero():
        issues.save_flagged(
            plan.paths.output_dir / FLAGGED_FILE,
            table.labels if table.labels is not None else datamodule.labels,
            paths=dataset_paths(datamodule.train_dataset),
        )  # ImageFolder's files, or `paths`
    return entries


def _rank_zero() -> bool:
    return pl.utilities.rank_zero.rank_zero_only.rank == 0
