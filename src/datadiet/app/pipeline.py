"""The app's pipeline for one config: probe → score → select → train → test.

:func:`run` is what ``datadiet`` (:mod:`datadiet.app.cli`) calls for each job. The run directory gets
``scores.npz`` (+ ``scores.json`` provenance), ``kept_indices.npz`` (+ ``.json``) and ``summary.json``,
all written atomically; the function returns the test error for sweepers.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Optional

import lightning.pytorch as pl
import numpy as np
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

from datadiet import __version__
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
    readable_compute,
    reference_key,
    save_reference,
    train_epochs,
    validate_accounting,
    will_be_reference,
)
from datadiet.app.cache import cache_probe
from datadiet.app.checkpointing import LAST, AtomicCheckpointIO, PhaseClock, phase_checkpoint, resume_path
from datadiet.app.config import check_epochs, check_known_keys
from datadiet.app.ensemble import run_probe_seeds
from datadiet.app.quiet import expected_warnings
from datadiet.app.rundir import array_digest, may_reuse, record_settings, recorded_settings
from datadiet.app.summary import format_summary
from datadiet.callbacks import DifficultyCallback, DynamicPruning, PruneDuringFit
from datadiet.callbacks.examples_seen import ExamplesSeen
from datadiet.data import PruningDataModule
from datadiet.diagnostics import save_correlations
from datadiet.fingerprint import config_fingerprint
from datadiet.report.wandb_logging import log_job
from datadiet.scores import get_score
from datadiet.scores.rho_loss import cached_irreducible_losses
from datadiet.compute import ComputeAccount, run_flops
from datadiet.selection import STRATEGIES, needs_scores, validate_keep_fraction
from datadiet.store import ScoreTable
from datadiet.subset import export_foundation_subset, subset_for_datamodule, table_for_datamodule


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
    if mode == "both" and cfg.probe.get("mode", "separate") == "in_run":
        raise ValueError(
            "`pruning.mode=both` prunes dynamically inside a subset fixed before training, but `probe.mode=in_run` "
            "chooses it during training; use probe.mode=separate"
        )


def dynamic_pruning(cfg: DictConfig) -> DynamicPruning:
    """The ``DynamicPruning`` callback of ``pruning.mode=dynamic|both``."""
    return DynamicPruning(
        prune_ratio=cfg.pruning.prune_ratio, anneal_fraction=cfg.pruning.anneal_fraction, seed=int(cfg.pruning.seed)
    )


def make_loggers(cfg: DictConfig) -> list[Logger]:
    """Instantiates every logger of the ``logger`` group (none when the group is empty)."""
    loggers = []
    for name, logger_cfg in (cfg.get("logger") or {}).items():
        if isinstance(logger_cfg, DictConfig) and "_target_" in logger_cfg:
            loggers.append(instantiate(logger_cfg))
        elif logger_cfg is not None:
            raise ValueError(f"`logger.{name}` has no `_target_`: it is not a logger (`logger=csv|wandb|none`)")
    return loggers


def provenance(cfg: DictConfig, datamodule: PruningDataModule) -> dict[str, Any]:
    """What the probe's scores depend on; its fingerprint keys the score cache."""
    probe_cfg = OmegaConf.to_container(cfg.probe, resolve=True)
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    dataset = {"name": datamodule.name, "fingerprint": datamodule.fingerprint(), "num_examples": datamodule.num_examples}
    key = {"dataset": dataset, "data_config": data_cfg, "probe": probe_cfg, "seed": cfg.seed,
           "trainer": _trainer_settings(cfg)}
    return {**key, "probe_fingerprint": config_fingerprint(key), "datadiet_version": __version__}


#: The entries of :func:`provenance` that are the probe's settings (the rest is derived or informative).
_PROBE_SETTINGS = ("dataset", "data_config", "probe", "seed", "trainer")


def _trainer_settings(cfg: DictConfig) -> dict[str, Any]:
    """``cfg.trainer`` without ``max_epochs``, which only sets the full training's epochs (as ``max_epochs``)."""
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer.pop("max_epochs", None)
    return trainer


def make_model(model_cfg: DictConfig, datamodule: PruningDataModule, **extra: Any) -> pl.LightningModule:
    if datamodule.input_shape is None or datamodule.num_classes is None:
        raise ValueError(
            f"the data module {datamodule.name!r} must set `input_shape` and `num_classes` for the app's models"
        )
    return instantiate(model_cfg, input_shape=list(datamodule.input_shape), num_classes=datamodule.num_classes, **extra)


@cache_probe(lambda cfg, datamodule: provenance(cfg, datamodule)["probe_fingerprint"])
def run_probe(
    cfg: DictConfig, datamodule: PruningDataModule, loggers: list[Logger], output_dir: Path
) -> tuple[ScoreTable, dict[str, Any]]:
    """Trains the probe model with :class:`DifficultyCallback` and returns its score table and costs.

    With ``resume`` (the default), a finished probe in ``output_dir`` (its ``scores.npz``) is reused, never
    recomputed, and an unfinished one resumes from ``output_dir/probe/checkpoints/last.ckpt`` — each only if
    made with this probe's settings; otherwise it is moved aside (see :mod:`datadiet.app.rundir`).
    """
    finished = output_dir / "scores.npz"
    resume = cfg.get("resume", True)
    settings = {key: value for key, value in provenance(cfg, datamodule).items() if key in _PROBE_SETTINGS}
    table = ScoreTable.load(finished) if resume and finished.is_file() else None
    recorded = None if table is None else {key: table.metadata.get(key) for key in _PROBE_SETTINGS}
    outputs = [finished, finished.with_suffix(".json"), output_dir / "score_correlations.csv"]
    if may_reuse("probe scores", output_dir, outputs, recorded, settings, resume):
        costs = table.metadata.get("probe_costs", {"probe_wall_time_s": 0.0, "probe_examples_seen": 0})
        return table, {**costs, "probe_resumed": True}
    probe_dir = output_dir / "probe"
    resumed = may_reuse(
        "probe checkpoint", output_dir, [probe_dir], recorded_settings(probe_dir), settings, resume,
        sign=probe_dir / "checkpoints" / LAST,
    )
    record_settings(probe_dir, settings)
    probe_model = make_model(cfg.probe.model, datamodule, log_prefix="probe/")
    score_options = OmegaConf.to_container(cfg.probe.score_options, resolve=True) if cfg.probe.get("score_options") else {}
    if "rho_loss" in cfg.probe.scores:  # the irreducible-loss model(s), trained on a holdout split, cached
        with expected_warnings():
            irreducible_losses = cached_irreducible_losses(
                datamodule,
                lambda: make_model(cfg.probe.model, datamodule, log_prefix="irreducible/"),
                lambda **kw: instantiate(cfg.trainer, default_root_dir=str(output_dir / "irreducible"), **kw),
                OmegaConf.to_container(cfg.probe.rho_loss, resolve=True),
                int(cfg.seed),
                {k: v for k, v in provenance(cfg, datamodule).items() if k in ("dataset", "data_config", "trainer")}
                | {"model": OmegaConf.to_container(cfg.probe.model, resolve=True)},
            )
        score_options.setdefault("rho_loss", {})["irreducible_losses"] = irreducible_losses
    difficulty = DifficultyCallback(
        scores=list(cfg.probe.scores), score_options=score_options, feature_module=cfg.probe.get("feature_module")
    )
    trainer: pl.Trainer = instantiate(
        cfg.trainer,
        max_epochs=cfg.probe.epochs,
        callbacks=[difficulty, probe_seen := ExamplesSeen(), clock := PhaseClock(), phase_checkpoint(probe_dir)],
        plugins=[AtomicCheckpointIO()],
        logger=loggers or False,
        default_root_dir=str(output_dir / "probe"),
    )
    start = time.perf_counter()
    ckpt_path = resume_path(probe_dir, resumed)
    # weights_only=False: the run's own checkpoints hold OmegaConf hyperparameters, which torch's safe loader refuses.
    with expected_warnings(datamodule):
        trainer.fit(probe_model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False)
    wall_time = clock.earlier_s + time.perf_counter() - start  # earlier sessions included
    table = difficulty.score_table
    table.metadata.update(provenance(cfg, datamodule))
    # Global counts (all ranks); a DistributedSampler pads each rank to ceil(N / world_size) examples.
    scoring_examples = (
        trainer.world_size * math.ceil(datamodule.num_examples / trainer.world_size)
        if any(get_score(s).phase == "eval" for s in cfg.probe.scores)
        else 0
    )
    costs = {
        "probe_wall_time_s": wall_time,
        "probe_examples_seen": probe_seen.count + scoring_examples,
        "probe_presentations": probe_seen.count,
        "probe_scored_examples": scoring_examples,
    }
    table.metadata["probe_costs"] = dict(costs)
    costs["probe_resumed"] = ckpt_path is not None
    if trainer.is_global_zero:
        table.save(finished)
    return table, costs


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


def _in_run_pruning(cfg: DictConfig, datamodule: PruningDataModule) -> PruneDuringFit:
    """``probe.mode=in_run``: the callback that scores with the main model after ``probe.epochs`` and prunes."""
    options = dict(cfg.pruning.get("options", {}))
    if cfg.pruning.strategy == "auto":
        options.setdefault("num_examples", datamodule.num_examples)
    score_options = OmegaConf.to_container(cfg.probe.score_options, resolve=True) if cfg.probe.get("score_options") else {}
    return PruneDuringFit(
        after_epochs=int(cfg.probe.epochs),
        score=cfg.pruning.score,
        keep_fraction=float(cfg.pruning.keep_fraction),
        strategy=cfg.pruning.strategy,
        class_balanced=bool(cfg.pruning.class_balanced),
        seed=int(cfg.pruning.seed),
        strategy_options=options,
        score_options=score_options.get(cfg.pruning.score),
    )


def _finish_in_run(
    prune: PruneDuringFit, cfg: DictConfig, datamodule: PruningDataModule, output_dir: Path, kept_path: Path
) -> tuple[np.ndarray, Optional[ScoreTable], dict[str, Any]]:
    """After an in-run fit: the kept subset, the scores it came from (saved like a probe's) and the scoring cost."""
    kept = prune.kept_indices if prune.pruned else np.arange(datamodule.num_examples)
    table = prune.score_table if prune.pruned and prune._score_table is not None else None
    costs = {"probe_wall_time_s": prune.scoring_wall_time_s, "probe_examples_seen": prune.scored_examples}
    if pl.utilities.rank_zero.rank_zero_only.rank == 0:
        if table is not None:
            table.metadata.update(provenance(cfg, datamodule))
            table.metadata["probe_costs"] = dict(costs)
            table.save(output_dir / "scores.npz")
        save_kept(kept_path, kept, table, cfg)
    return kept, table, costs


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

    keep_fraction = float(cfg.pruning.keep_fraction)
    resume = cfg.get("resume", True)
    kept_path = output_dir / "kept_indices.npz"
    kept_settings: Optional[dict[str, Any]] = None
    resumed: list[str] = []  # phases whose earlier outputs this run reuses
    table: Optional[ScoreTable] = None
    costs: dict[str, Any] = {"probe_wall_time_s": 0.0, "probe_examples_seen": 0}
    pruning_mode = cfg.pruning.get("mode", "static")
    if pruning_mode == "dynamic":  # all data, pruned epoch by epoch during the fit: no probe
        keep_fraction = 1.0
        datamodule.reset_pruning()
        kept = np.arange(datamodule.num_examples)
    elif cfg.pruning.get("subset_path"):  # a foundation subset from an earlier run: no probe
        kept = datamodule.kept_indices = subset_for_datamodule(cfg.pruning.subset_path, datamodule)
    elif cfg.probe.get("mode", "separate") == "in_run" and (keep_fraction < 1 or not cfg.probe.skip_when_keeping_all):
        kept = None  # chosen by PruneDuringFit after probe.epochs epochs of the training below
    elif keep_fraction < 1.0 or not cfg.probe.skip_when_keeping_all:
        if not needs_scores(cfg.pruning.strategy):  # e.g. random: the selection reads no scores, so no probe
            table = None
        elif cfg.probe.get("scores_path"):  # imported or earlier scores instead of a probe
            table = table_for_datamodule(cfg.probe.scores_path, datamodule, cfg.pruning.score)
        else:
            table, costs = run_probe_seeds(
                run_probe, cfg, datamodule, loggers, output_dir, lambda seed_cfg: provenance(seed_cfg, datamodule)
            )
        if table is not None and pl.utilities.rank_zero.rank_zero_only.rank == 0 and len(table) > 1:
            save_correlations(table, output_dir / "score_correlations.csv", loggers)
        if costs.pop("probe_resumed", False):
            resumed.append("probe")
        elif costs.get("probe_cache") == "hit":
            resumed.append("probe from the cache")
        kept_settings = {  # what the selection depends on: a rerun reuses the subset only if all are equal
            "pruning": OmegaConf.to_container(cfg.pruning, resolve=True),
            "probe_fingerprint": None if table is None else table.metadata.get("probe_fingerprint"),
            "scores": None if table is None else array_digest(table[cfg.pruning.score]),
            "dataset_fingerprint": datamodule.fingerprint(),
        }
        outputs = [kept_path, kept_path.with_suffix(".json")]
        if may_reuse("kept subset", output_dir, outputs, _kept_settings(kept_path), kept_settings, resume):
            kept = datamodule.kept_indices = subset_for_datamodule(kept_path, datamodule)  # decided before a restart
            resumed.append("kept subset")
        else:
            options = dict(cfg.pruning.get("options", {}))
            if cfg.pruning.strategy == "auto":  # the data regime is the whole training set's, also per class
                options.setdefault("num_examples", datamodule.num_examples)
            kept = datamodule.prune(
                table if table is not None else np.zeros(datamodule.num_examples),
                score=cfg.pruning.score,
                keep_fraction=keep_fraction,
                strategy=cfg.pruning.strategy,
                class_balanced=cfg.pruning.class_balanced,
                seed=cfg.pruning.seed,
                **options,
            )
    else:
        datamodule.reset_pruning()
        kept = np.arange(datamodule.num_examples)
    if kept is not None and pl.utilities.rank_zero.rank_zero_only.rank == 0:
        save_kept(kept_path, kept, table, cfg, kept_settings)

    # FLOPs per example of each model (fresh instances; the main model is re-made after seeding below)
    flops_per_example = measure_flops_per_example(make_model(cfg.model, datamodule), datamodule)
    probe_forwards = int(costs.get("probe_presentations", 0)) + int(costs.get("probe_scored_examples", 0))
    probe_flops_per_example = (
        measure_flops_per_example(make_model(cfg.probe.model, datamodule), datamodule) if probe_forwards else 0.0
    )
    probe_flops = run_flops(
        costs.get("probe_presentations", 0), costs.get("probe_scored_examples", 0), probe_flops_per_example
    )
    num_kept = (
        len(kept)
        if kept is not None
        else expected_kept(keep_fraction, datamodule.num_examples, datamodule.labels, cfg.pruning.class_balanced)
    )
    epochs = train_epochs(cfg, datamodule.num_examples, num_kept, flops_per_example, probe_flops)
    prune = None if kept is not None else _in_run_pruning(cfg, datamodule)

    train_dir = output_dir / "train"
    train_settings = {
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "trainer": _trainer_settings(cfg),
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
    dynamic = dynamic_pruning(cfg) if pruning_mode != "static" else None
    if dynamic is not None:  # only then: static runs keep the settings they recorded before this key existed
        train_settings["dynamic_pruning"] = {
            key: cfg.pruning[key] for key in ("mode", "prune_ratio", "anneal_fraction", "seed")
        }
    # An explicit `ckpt_path` is the user's choice: resumed from as given, whatever it was made with.
    resume_training = bool(cfg.get("ckpt_path")) or may_reuse(
        "training checkpoint", output_dir, [train_dir, output_dir / "summary.json"], recorded_settings(train_dir),
        train_settings, resume, sign=train_dir / "checkpoints" / LAST,
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
        default_root_dir=str(output_dir / "train"),
    )
    start = time.perf_counter()
    # A resumed run's data module state carries the kept subset; `load_state_dict` checks it equals `kept`.
    ckpt_path = resume_path(train_dir, resume_training, cfg.get("ckpt_path"))
    with expected_warnings(datamodule):
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False)
    train_wall_time = clock.earlier_s + time.perf_counter() - start  # earlier sessions included
    train_examples = train_seen.count  # summed over ranks, earlier sessions included
    if ckpt_path is not None:
        resumed.append("training")
    if prune is not None:  # the subset and scores were chosen during the fit
        kept, table, costs = _finish_in_run(prune, cfg, datamodule, output_dir, kept_path)
    test_metrics = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    test_accuracy = float(test_metrics["test/acc"])

    summary = {
        "dataset": datamodule.name,
        "train_examples": datamodule.num_examples,
        "examples_kept": int(len(kept)),
        "keep_fraction": keep_fraction,
        "score": cfg.pruning.score if table is not None else None,
        "strategy": (
            cfg.pruning.strategy
            if table is not None or (len(kept) < datamodule.num_examples and not cfg.pruning.get("subset_path"))
            else "all (no probe)"
        ),
        "class_balanced": bool(cfg.pruning.class_balanced),
        "test_accuracy": test_accuracy,
        "test_error": 1.0 - test_accuracy,
        "test_loss": float(test_metrics["test/loss"]),
        **costs,
        "train_wall_time_s": train_wall_time,
        "train_examples_seen": train_examples,
        "total_examples_seen": costs["probe_examples_seen"] + train_examples,
        "seed": int(cfg.seed),
        "output_dir": str(output_dir),
        "resumed": resumed,
        "pruning_mode": pruning_mode,
    }
    if dynamic is not None:  # examples presented per epoch: the skipped ones are in `train_examples_seen` already
        summary.update(
            prune_ratio=dynamic.prune_ratio,
            anneal_fraction=dynamic.anneal_fraction,
            presentations_per_epoch=list(dynamic.presentations_per_epoch),
        )
        if pruning_mode == "dynamic":
            summary["strategy"] = "dynamic"
    account = ComputeAccount(
        flops_per_example=flops_per_example,
        train_presentations=train_examples,
        probe_flops_per_example=probe_flops_per_example,
        probe_presentations=int(costs.get("probe_presentations", 0)),
        probe_scored=int(costs.get("probe_scored_examples", 0)),
        in_run_scored=prune.scored_examples if prune is not None else 0,
    )
    reference_run = is_reference_run(cfg, epochs, account.probe_flops)
    reference = None if reference_run else load_reference(cfg, reference_id)
    summary.update(
        compute_summary(account, cfg, datamodule.num_examples, epochs, test_accuracy, reference, reference_run)
    )
    if cfg.get("baseline") and not reference_run:  # the early-stopped full-data run of at least this compute
        early_epochs = early_stopped_epochs(summary["compute_ratio"], int(cfg.max_epochs))
        early = _nested_run(baseline_config(cfg, epochs=early_epochs), "early-stopped full data", int(cfg.max_epochs))
        summary.update(compare_early_stopped(summary, early, int(cfg.max_epochs)))
    if trainer.is_global_zero:
        if reference_run:
            save_reference(cfg, reference_id, summary)
        atomic_write_json(output_dir / "summary.json", summary)
    log_job(loggers, summary, output_dir / "kept_indices.npz")
    for logger in loggers:
        logger.finalize("success")
    _finish_wandb(loggers)
    if trainer.is_global_zero and announce:  # last, after W&B's closing lines: the summary is what stays on screen
        print("\n" + format_summary(_readable(summary)) + "\n", flush=True)
    return summary


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


def _readable(summary: dict[str, Any]) -> dict[str, Any]:
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


def _finish_wandb(loggers: list[Logger]) -> None:
    from lightning.pytorch.loggers import WandbLogger

    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        wandb.finish()
