"""The app's pipeline for one config: probe → score → select → train → test.

:func:`run` is what ``datadiet`` (:mod:`datadiet.app.cli`) calls for each job. The run directory gets
``scores.npz`` (+ ``scores.json`` provenance), ``kept_indices.npz`` (+ ``.json``) and ``summary.json``,
all written atomically; the function returns the test error for sweepers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import lightning.pytorch as pl
import numpy as np
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

from datadiet._io import atomic_write_json
from datadiet.app.accounting import (
    baseline_config,
    compare_early_stopped,
    compute_summary,
    early_stopped_epochs,
    expected_kept,
    is_reference_run,
    load_reference,
    measure_flops_per_example,
    reference_key,
    save_reference,
    train_epochs,
    validate_accounting,
    will_be_reference,
)
from datadiet.app.checkpointing import LAST, AtomicCheckpointIO, PhaseClock, phase_checkpoint, resume_path
from datadiet.app.config import check_epochs, check_known_keys
from datadiet.app.kept_subset import KEPT_FILE, KeptSubset, choose_subset, save_kept
from datadiet.app.probe import make_model, trainer_settings
from datadiet.app.pruning_modes import dynamic_pruning, finish_in_run, in_run_pruning, validate_pruning_mode
from datadiet.app.quiet import expected_warnings
from datadiet.app.rundir import array_digest, may_reuse, record_settings, recorded_settings
from datadiet.app.summary import format_summary, readable
from datadiet.callbacks import DynamicPruning, PruneDuringFit
from datadiet.callbacks.examples_seen import ExamplesSeen
from datadiet.compute import ComputeAccount, run_flops
from datadiet.data import PruningDataModule
from datadiet.report.wandb_logging import log_job
from datadiet.scores import get_score
from datadiet.selection import STRATEGIES, validate_keep_fraction


def validate_config(cfg: DictConfig) -> None:
    """Fails before any training when the settings cannot work or would be ignored."""
    check_known_keys(cfg)  # a `+key=value` the schema does not have would be silently ignored
    check_epochs(cfg)
    validate_keep_fraction(cfg.pruning.keep_fraction)
    STRATEGIES.get(cfg.pruning.strategy)
    for name in cfg.probe.scores:
        get_score(name)
    if cfg.pruning.score not in cfg.probe.scores and not cfg.probe.get("scores_path"):
        raise ValueError(
            f"`pruning.score={cfg.pruning.score}` is not recorded by the probe; "
            f"`probe.scores` has {list(cfg.probe.scores)}"
        )
    validate_accounting(cfg)
    validate_pruning_mode(cfg)


def make_loggers(cfg: DictConfig) -> list[Logger]:
    """Instantiates every logger of the ``logger`` group (none when the group is empty)."""
    loggers = []
    for name, logger_cfg in (cfg.get("logger") or {}).items():
        if isinstance(logger_cfg, DictConfig) and "_target_" in logger_cfg:
            loggers.append(instantiate(logger_cfg))
        elif logger_cfg is not None:
            raise ValueError(f"`logger.{name}` has no `_target_`: it is not a logger (`logger=csv|wandb|none`)")
    return loggers


@dataclass
class _Fit:
    """The main training: its budget, what it cost and how it tested."""

    epochs: int
    flops_per_example: float
    probe_flops_per_example: float
    wall_time_s: float
    examples_seen: int
    test_metrics: dict[str, float]
    prune: Optional[PruneDuringFit]
    dynamic: Optional[DynamicPruning]
    is_global_zero: bool


def run(cfg: DictConfig, announce: bool = True) -> dict[str, Any]:
    """Runs the whole pipeline for one config and returns the summary (also written to ``summary.json``).

    With ``baseline=true`` it also trains the same model on all data for ``max_epochs`` (first; unless the
    reference cache has that run) and, after this run, on all data for the fewest epochs that cost at least
    what this run cost (the early-stopped full-data run: the line a pruned run must beat); the summary says
    whether pruning paid. ``announce=False`` prints one line instead of the summary table (those nested runs).
    """
    validate_config(cfg)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule: PruningDataModule = instantiate(cfg.data)
    reference_id = reference_key(cfg, datamodule)
    if cfg.get("baseline") and not will_be_reference(cfg) and load_reference(cfg, reference_id) is None:
        _nested_run(baseline_config(cfg), "full data", int(cfg.max_epochs))  # the same model on all data for max_epochs
        pl.seed_everything(cfg.seed, workers=True)
    loggers = make_loggers(cfg)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    subset = choose_subset(cfg, datamodule, loggers, output_dir)
    fit = _train(cfg, datamodule, loggers, output_dir, subset)
    summary, reference_run = _summarise(cfg, datamodule, output_dir, subset, fit, reference_id)

    if fit.is_global_zero:
        if reference_run:
            save_reference(cfg, reference_id, summary)
        atomic_write_json(output_dir / "summary.json", summary)
    log_job(loggers, summary, output_dir / KEPT_FILE)
    for logger in loggers:
        logger.finalize("success")
    _finish_wandb(loggers)
    if fit.is_global_zero and announce:  # last, after W&B's closing lines: the summary is what stays on screen
        print("\n" + format_summary(readable(summary)) + "\n", flush=True)
    return summary


def _train(
    cfg: DictConfig, datamodule: PruningDataModule, loggers: list[Logger], output_dir: Path, subset: KeptSubset
) -> _Fit:
    """Trains the main model for the budget's epochs (resuming an unfinished run of the same settings) and tests it."""
    # FLOPs per example of each model (fresh instances; the main model is re-made after seeding below)
    flops_per_example = measure_flops_per_example(make_model(cfg.model, datamodule), datamodule)
    costs = subset.costs
    probe_forwards = int(costs.get("probe_presentations", 0)) + int(costs.get("probe_scored_examples", 0))
    probe_flops_per_example = (
        measure_flops_per_example(make_model(cfg.probe.model, datamodule), datamodule) if probe_forwards else 0.0
    )
    probe_flops = run_flops(
        costs.get("probe_presentations", 0), costs.get("probe_scored_examples", 0), probe_flops_per_example
    )
    num_kept = (
        len(subset.kept)
        if subset.kept is not None
        else expected_kept(subset.keep_fraction, datamodule.num_examples, datamodule.labels, cfg.pruning.class_balanced)
    )
    epochs = train_epochs(cfg, datamodule.num_examples, num_kept, flops_per_example, probe_flops)
    prune = None if subset.kept is not None else in_run_pruning(cfg, datamodule)
    dynamic = dynamic_pruning(cfg) if cfg.pruning.get("mode", "static") != "static" else None

    train_dir = output_dir / "train"
    train_settings = _train_settings(cfg, datamodule, subset.kept, epochs)
    if dynamic is not None:  # only then: static runs keep the settings they recorded before this key existed
        train_settings["dynamic_pruning"] = {
            key: cfg.pruning[key] for key in ("mode", "prune_ratio", "anneal_fraction", "seed")
        }
    # An explicit `ckpt_path` is the user's choice: resumed from as given, whatever it was made with.
    resume_training = bool(cfg.get("ckpt_path")) or may_reuse(
        "training checkpoint", output_dir, [train_dir, output_dir / "summary.json"], recorded_settings(train_dir),
        train_settings, cfg.get("resume", True), sign=train_dir / "checkpoints" / LAST,
    )
    record_settings(train_dir, train_settings)

    pl.seed_everything(cfg.seed, workers=True)
    model = make_model(cfg.model, datamodule)
    trainer: pl.Trainer = instantiate(
        cfg.trainer,
        max_epochs=epochs,
        callbacks=[
            *([prune] if prune is not None else []),
            *([dynamic] if dynamic is not None else []),
            train_seen := ExamplesSeen(),
            clock := PhaseClock(),
            phase_checkpoint(train_dir),
        ],
        plugins=[AtomicCheckpointIO()],
        logger=loggers or False,
        default_root_dir=str(train_dir),
    )
    start = time.perf_counter()
    # A resumed run's data module state carries the kept subset; `load_state_dict` checks it equals `kept`.
    ckpt_path = resume_path(train_dir, resume_training, cfg.get("ckpt_path"))
    # weights_only=False: the run's own checkpoints hold OmegaConf hyperparameters, which torch's safe loader refuses.
    with expected_warnings(datamodule):
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False)
    wall_time = clock.earlier_s + time.perf_counter() - start  # earlier sessions included
    if ckpt_path is not None:
        subset.resumed.append("training")
    if prune is not None:  # the subset and scores were chosen during the fit
        subset.kept, subset.table, subset.costs = finish_in_run(prune, cfg, datamodule, output_dir)
        if pl.utilities.rank_zero.rank_zero_only.rank == 0:
            save_kept(output_dir / KEPT_FILE, subset.kept, subset.table, cfg)
    test_metrics = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    return _Fit(
        epochs=epochs,
        flops_per_example=flops_per_example,
        probe_flops_per_example=probe_flops_per_example,
        wall_time_s=wall_time,
        examples_seen=train_seen.count,  # summed over ranks, earlier sessions included
        test_metrics=test_metrics,
        prune=prune,
        dynamic=dynamic,
        is_global_zero=trainer.is_global_zero,
    )


def _train_settings(
    cfg: DictConfig, datamodule: PruningDataModule, kept: Optional[np.ndarray], epochs: int
) -> dict[str, Any]:
    """What the main training depends on: its checkpoint is resumed only if an earlier run's settings are equal."""
    return {
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "trainer": trainer_settings(cfg),
        "max_epochs": int(cfg.max_epochs),
        "seed": int(cfg.seed),
        "data_config": OmegaConf.to_container(cfg.data, resolve=True),
        "dataset_fingerprint": datamodule.fingerprint(),
        "kept_indices": (
            array_digest(np.sort(np.asarray(kept, dtype=np.int64)))
            if kept is not None
            else {"in_run": OmegaConf.to_container(cfg.pruning, resolve=True), "after_epochs": int(cfg.probe.epochs)}
        ),
        "train_epochs": epochs,
    }


def _summarise(
    cfg: DictConfig, datamodule: PruningDataModule, output_dir: Path, subset: KeptSubset, fit: _Fit, reference_id: str
) -> tuple[dict[str, Any], bool]:
    """The run's summary with its compute against full data (and, with ``baseline=true``, against the
    early-stopped full-data run, trained here); and whether this run is itself the full-data reference."""
    kept, table, costs = subset.kept, subset.table, subset.costs
    pruning_mode = cfg.pruning.get("mode", "static")
    test_accuracy = float(fit.test_metrics["test/acc"])
    summary = {
        "dataset": datamodule.name,
        "train_examples": datamodule.num_examples,
        "examples_kept": int(len(kept)),
        "keep_fraction": subset.keep_fraction,
        "score": cfg.pruning.score if table is not None else None,
        "strategy": (
            cfg.pruning.strategy
            if table is not None or (len(kept) < datamodule.num_examples and not cfg.pruning.get("subset_path"))
            else "all (no probe)"
        ),
        "class_balanced": bool(cfg.pruning.class_balanced),
        "test_accuracy": test_accuracy,
        "test_error": 1.0 - test_accuracy,
        "test_loss": float(fit.test_metrics["test/loss"]),
        **costs,
        "train_wall_time_s": fit.wall_time_s,
        "train_examples_seen": fit.examples_seen,
        "total_examples_seen": costs["probe_examples_seen"] + fit.examples_seen,
        "seed": int(cfg.seed),
        "output_dir": str(output_dir),
        "resumed": subset.resumed,
        "pruning_mode": pruning_mode,
    }
    if fit.dynamic is not None:  # examples presented per epoch: the skipped ones are in `train_examples_seen` already
        summary.update(
            prune_ratio=fit.dynamic.prune_ratio,
            anneal_fraction=fit.dynamic.anneal_fraction,
            presentations_per_epoch=list(fit.dynamic.presentations_per_epoch),
        )
        if pruning_mode == "dynamic":
            summary["strategy"] = "dynamic"
    account = ComputeAccount(
        flops_per_example=fit.flops_per_example,
        train_presentations=fit.examples_seen,
        probe_flops_per_example=fit.probe_flops_per_example,
        probe_presentations=int(costs.get("probe_presentations", 0)),
        probe_scored=int(costs.get("probe_scored_examples", 0)),
        in_run_scored=fit.prune.scored_examples if fit.prune is not None else 0,
    )
    reference_run = is_reference_run(cfg, fit.epochs, account.probe_flops)
    reference = None if reference_run else load_reference(cfg, reference_id)
    summary.update(
        compute_summary(account, cfg, datamodule.num_examples, fit.epochs, test_accuracy, reference, reference_run)
    )
    if cfg.get("baseline") and not reference_run:  # the early-stopped full-data run of at least this compute
        early_epochs = early_stopped_epochs(summary["compute_ratio"], int(cfg.max_epochs))
        early = _nested_run(baseline_config(cfg, epochs=early_epochs), "early-stopped full data", int(cfg.max_epochs))
        summary.update(compare_early_stopped(summary, early, int(cfg.max_epochs)))
    return summary, reference_run


def _nested_run(cfg: DictConfig, what: str, max_epochs: int) -> dict[str, Any]:
    """A comparison run of ``baseline=true`` (full data, or full data stopped early), announced in one line."""
    summary = run(cfg, announce=False)
    if pl.utilities.rank_zero.rank_zero_only.rank == 0:
        epochs = summary["train_epochs"]
        print(
            f"\n[datadiet] {what}: {epochs} epochs, test accuracy {summary['test_accuracy']:.4f}, "
            f"{epochs / max_epochs:.2f}× the compute of {max_epochs} epochs (in {summary['output_dir']})\n",
            flush=True,
        )
    pl.seed_everything(cfg.seed, workers=True)
    return summary


def _finish_wandb(loggers: list[Logger]) -> None:
    from lightning.pytorch.loggers import WandbLogger

    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        wandb.finish()
