"""The app's pipeline for one config: probe → score → select → train → test.

:func:`run` is what ``datadiet`` (:mod:`datadiet.app.cli`) calls for each job. The run directory gets
``scores.npz`` (+ ``scores.json`` provenance), ``kept_indices.npz`` (+ ``.json``) and ``summary.json``,
all written atomically; the function returns the test error for sweepers.
"""

from __future__ import annotations

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
from datadiet.app.cache import cache_probe
from datadiet.app.checkpointing import AtomicCheckpointIO, phase_checkpoint, resume_path
from datadiet.app.config import register_configs  # noqa: F401  (registers the config schemas and resolvers)
from datadiet.app.ensemble import run_probe_seeds
from datadiet.app.summary import format_summary
from datadiet.callbacks import DifficultyCallback
from datadiet.callbacks.examples_seen import ExamplesSeen
from datadiet.data import PruningDataModule
from datadiet.diagnostics import save_correlations
from datadiet.fingerprint import config_fingerprint
from datadiet.report.wandb_logging import log_job
from datadiet.scores import get_score
from datadiet.scores.rho_loss import cached_irreducible_losses
from datadiet.selection import STRATEGIES, validate_keep_fraction
from datadiet.store import ScoreTable
from datadiet.subset import export_foundation_subset, subset_for_datamodule, table_for_datamodule


def validate_config(cfg: DictConfig) -> None:
    """Fails before any training when the pruning settings cannot work."""
    validate_keep_fraction(cfg.pruning.keep_fraction)
    STRATEGIES.get(cfg.pruning.strategy)
    for name in cfg.probe.scores:
        get_score(name)
    if cfg.pruning.score not in cfg.probe.scores and not cfg.probe.get("scores_path"):
        raise ValueError(
            f"`pruning.score={cfg.pruning.score}` is not recorded by the probe; "
            f"`probe.scores` has {list(cfg.probe.scores)}"
        )


def make_loggers(cfg: DictConfig) -> list[Logger]:
    """Instantiates every logger of the ``logger`` group (none when the group is empty)."""
    loggers = []
    for name, logger_cfg in (cfg.get("logger") or {}).items():
        if isinstance(logger_cfg, DictConfig) and "_target_" in logger_cfg:
            loggers.append(instantiate(logger_cfg))
    return loggers


def provenance(cfg: DictConfig, datamodule: PruningDataModule) -> dict[str, Any]:
    """What the probe's scores depend on; its fingerprint keys the score cache."""
    probe_cfg = OmegaConf.to_container(cfg.probe, resolve=True)
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    dataset = {"name": datamodule.name, "fingerprint": datamodule.fingerprint(), "num_examples": datamodule.num_examples}
    key = {"dataset": dataset, "data_config": data_cfg, "probe": probe_cfg, "seed": cfg.seed,
           "trainer": OmegaConf.to_container(cfg.trainer, resolve=True)}
    return {**key, "probe_fingerprint": config_fingerprint(key), "datadiet_version": __version__}


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
    recomputed, and an unfinished one resumes from ``output_dir/probe/checkpoints/last.ckpt``.
    """
    finished = output_dir / "scores.npz"
    if cfg.get("resume", True) and finished.is_file():
        table = ScoreTable.load(finished)
        return table, dict(table.metadata.get("probe_costs", {"probe_wall_time_s": 0.0, "probe_examples_seen": 0}))
    probe_model = make_model(cfg.probe.model, datamodule, log_prefix="probe/")
    score_options = OmegaConf.to_container(cfg.probe.score_options, resolve=True) if cfg.probe.get("score_options") else {}
    if "rho_loss" in cfg.probe.scores:  # the irreducible-loss model(s), trained on a holdout split, cached
        score_options.setdefault("rho_loss", {})["irreducible_losses"] = cached_irreducible_losses(
            datamodule,
            lambda: make_model(cfg.probe.model, datamodule, log_prefix="irreducible/"),
            lambda **kw: instantiate(cfg.trainer, default_root_dir=str(output_dir / "irreducible"), **kw),
            OmegaConf.to_container(cfg.probe.rho_loss, resolve=True),
            int(cfg.seed),
            {k: v for k, v in provenance(cfg, datamodule).items() if k in ("dataset", "data_config", "trainer")}
            | {"model": OmegaConf.to_container(cfg.probe.model, resolve=True)},
        )
    difficulty = DifficultyCallback(
        scores=list(cfg.probe.scores), score_options=score_options, feature_module=cfg.probe.get("feature_module")
    )
    trainer: pl.Trainer = instantiate(
        cfg.trainer,
        max_epochs=cfg.probe.epochs,
        callbacks=[difficulty, probe_seen := ExamplesSeen(), phase_checkpoint(output_dir / "probe")],
        plugins=[AtomicCheckpointIO()],
        logger=loggers or False,
        default_root_dir=str(output_dir / "probe"),
    )
    start = time.perf_counter()
    ckpt_path = resume_path(output_dir / "probe", cfg.get("resume", True))
    # weights_only=False: the run's own checkpoints hold OmegaConf hyperparameters, which torch's safe loader refuses.
    trainer.fit(probe_model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False)
    wall_time = time.perf_counter() - start
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
    }
    table.metadata["probe_costs"] = costs
    if trainer.is_global_zero:
        table.save(finished)
    return table, costs


def save_kept(path: Path, kept: np.ndarray, table: Optional[ScoreTable], cfg: DictConfig) -> None:
    """Writes the kept subset as a reusable foundation subset (see :mod:`datadiet.subset`)."""
    export_foundation_subset(
        path,
        kept,
        table,
        score=cfg.pruning.score if table is not None else None,
        provenance={
            "pruning": OmegaConf.to_container(cfg.pruning, resolve=True),
            "probe_fingerprint": None if table is None else table.metadata.get("probe_fingerprint"),
        },
    )


def run(cfg: DictConfig) -> dict[str, Any]:
    """Runs the whole pipeline for one config and returns the summary (also written to ``summary.json``)."""
    validate_config(cfg)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule: PruningDataModule = instantiate(cfg.data)
    loggers = make_loggers(cfg)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    keep_fraction = float(cfg.pruning.keep_fraction)
    table: Optional[ScoreTable] = None
    costs: dict[str, Any] = {"probe_wall_time_s": 0.0, "probe_examples_seen": 0}
    if cfg.pruning.get("subset_path"):  # a foundation subset from an earlier run: no probe
        kept = datamodule.kept_indices = subset_for_datamodule(cfg.pruning.subset_path, datamodule)
    elif keep_fraction < 1.0 or not cfg.probe.skip_when_keeping_all:
        if cfg.probe.get("scores_path"):  # imported or earlier scores instead of a probe
            table = table_for_datamodule(cfg.probe.scores_path, datamodule, cfg.pruning.score)
        else:
            table, costs = run_probe_seeds(
                run_probe, cfg, datamodule, loggers, output_dir, lambda seed_cfg: provenance(seed_cfg, datamodule)
            )
        if pl.utilities.rank_zero.rank_zero_only.rank == 0 and len(table) > 1:
            save_correlations(table, output_dir / "score_correlations.csv", loggers)
        if cfg.get("resume", True) and (output_dir / "kept_indices.npz").is_file():  # decided before a restart
            kept = datamodule.kept_indices = subset_for_datamodule(output_dir / "kept_indices.npz", datamodule)
        else:
            options = dict(cfg.pruning.get("options", {}))
            if cfg.pruning.strategy == "auto":  # the data regime is the whole training set's, also per class
                options.setdefault("num_examples", datamodule.num_examples)
            kept = datamodule.prune(
                table,
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
    if pl.utilities.rank_zero.rank_zero_only.rank == 0:
        save_kept(output_dir / "kept_indices.npz", kept, table, cfg)

    pl.seed_everything(cfg.seed, workers=True)
    model = make_model(cfg.model, datamodule)
    trainer: pl.Trainer = instantiate(
        cfg.trainer,
        max_epochs=cfg.max_epochs,
        callbacks=[train_seen := ExamplesSeen(), phase_checkpoint(output_dir / "train")],
        plugins=[AtomicCheckpointIO()],
        logger=loggers or False,
        default_root_dir=str(output_dir / "train"),
    )
    start = time.perf_counter()
    # A resumed run's data module state carries the kept subset; `load_state_dict` checks it equals `kept`.
    ckpt_path = resume_path(output_dir / "train", cfg.get("resume", True), cfg.get("ckpt_path"))
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False)
    train_wall_time = time.perf_counter() - start
    train_examples = train_seen.count  # summed over ranks
    test_metrics = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    test_accuracy = float(test_metrics["test/acc"])

    summary = {
        "dataset": datamodule.name,
        "train_examples": datamodule.num_examples,
        "examples_kept": int(len(kept)),
        "keep_fraction": keep_fraction,
        "score": cfg.pruning.score if table is not None else None,
        "strategy": cfg.pruning.strategy if table is not None else "all (no probe)",
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
    }
    if trainer.is_global_zero:
        atomic_write_json(output_dir / "summary.json", summary)
        print("\n" + format_summary(_readable(summary)) + "\n", flush=True)
    log_job(loggers, summary, output_dir / "kept_indices.npz")
    for logger in loggers:
        logger.finalize("success")
    _finish_wandb(loggers)
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
        "test accuracy": f"{summary['test_accuracy']:.4f}",
        "probe wall time": f"{summary['probe_wall_time_s']:.1f} s",
        "probe examples seen": summary["probe_examples_seen"],
        "train wall time": f"{summary['train_wall_time_s']:.1f} s",
        "train examples seen": summary["train_examples_seen"],
        "total examples seen": summary["total_examples_seen"],
        "run directory": summary["output_dir"],
    }


def _finish_wandb(loggers: list[Logger]) -> None:
    from lightning.pytorch.loggers import WandbLogger

    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        wandb.finish()
