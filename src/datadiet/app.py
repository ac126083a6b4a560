"""The ``datadiet`` Hydra app: probe → score → select → train → test in one process.

``datadiet pruning.keep_fraction=0.3 pruning.strategy=random`` runs it; configs live in the top-level
``conf/`` folder of a checkout (shipped as ``datadiet/conf`` inside the wheel). The run directory gets
``scores.npz`` (+ ``scores.json`` provenance), ``kept_indices.npz`` (+ ``.json``) and ``summary.json``,
all written atomically; the function returns the test error for sweepers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import hydra
import lightning.pytorch as pl
import numpy as np
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

from datadiet import __version__
from datadiet._io import atomic_save_npz, atomic_write_json
from datadiet.callbacks import DifficultyCallback
from datadiet.data import PruningDataModule
from datadiet.fingerprint import config_fingerprint
from datadiet.scores import get_score
from datadiet.selection import STRATEGIES, validate_keep_fraction
from datadiet.store import ScoreTable
from datadiet.summary import format_summary
from datadiet.wandb_mode import wandb_offline


def config_dir() -> str:
    """The folder of the app's configs: inside the installed package, else the checkout's ``conf/``."""
    packaged = Path(__file__).resolve().parent / "conf"
    if packaged.is_dir():
        return str(packaged)
    checkout = Path(__file__).resolve().parents[2] / "conf"
    if checkout.is_dir():
        return str(checkout)
    raise FileNotFoundError(f"datadiet's configs are missing: looked in {packaged} and {checkout}")


OmegaConf.register_new_resolver("datadiet.wandb_offline", wandb_offline, replace=True)


def validate_config(cfg: DictConfig) -> None:
    """Fails before any training when the pruning settings cannot work."""
    validate_keep_fraction(cfg.pruning.keep_fraction)
    STRATEGIES.get(cfg.pruning.strategy)
    for name in cfg.probe.scores:
        get_score(name)
    if cfg.pruning.score not in cfg.probe.scores:
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


def run_probe(
    cfg: DictConfig, datamodule: PruningDataModule, loggers: list[Logger], output_dir: Path
) -> tuple[ScoreTable, dict[str, Any]]:
    """Trains the probe model with :class:`DifficultyCallback` and returns its score table and costs."""
    probe_model = make_model(cfg.probe.model, datamodule, log_prefix="probe/")
    difficulty = DifficultyCallback(scores=list(cfg.probe.scores))
    trainer: pl.Trainer = instantiate(
        cfg.trainer,
        max_epochs=cfg.probe.epochs,
        callbacks=[difficulty],
        logger=loggers or False,
        enable_checkpointing=False,
        default_root_dir=str(output_dir / "probe"),
    )
    served_before = datamodule.train_examples_served
    start = time.perf_counter()
    trainer.fit(probe_model, datamodule=datamodule)
    wall_time = time.perf_counter() - start
    table = difficulty.score_table
    table.metadata.update(provenance(cfg, datamodule))
    scoring_examples = datamodule.num_examples if any(get_score(s).phase == "eval" for s in cfg.probe.scores) else 0
    costs = {
        "probe_wall_time_s": wall_time,
        "probe_examples_seen": datamodule.train_examples_served - served_before + scoring_examples,
    }
    if trainer.is_global_zero:
        table.save(output_dir / "scores.npz")
    return table, costs


def save_kept(path: Path, kept: np.ndarray, table: Optional[ScoreTable], cfg: DictConfig) -> None:
    arrays: dict[str, np.ndarray] = {"kept_indices": kept}
    if table is not None:
        arrays["kept_scores"] = table[cfg.pruning.score][kept]
    atomic_save_npz(path, arrays)
    atomic_write_json(
        path.with_suffix(".json"),
        {
            "num_kept": int(len(kept)),
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
    if keep_fraction < 1.0 or not cfg.probe.skip_when_keeping_all:
        table, costs = run_probe(cfg, datamodule, loggers, output_dir)
        kept = datamodule.prune(
            table,
            score=cfg.pruning.score,
            keep_fraction=keep_fraction,
            strategy=cfg.pruning.strategy,
            class_balanced=cfg.pruning.class_balanced,
            seed=cfg.pruning.seed,
            **cfg.pruning.get("options", {}),
        )
    else:
        datamodule.reset_pruning()
        kept = np.arange(datamodule.num_examples)
    if pl.utilities.rank_zero.rank_zero_only.rank == 0:
        save_kept(output_dir / "kept_indices.npz", kept, table, cfg)

    pl.seed_everything(cfg.seed, workers=True)
    model = make_model(cfg.model, datamodule)
    trainer: pl.Trainer = instantiate(
        cfg.trainer, max_epochs=cfg.max_epochs, logger=loggers or False, default_root_dir=str(output_dir / "train")
    )
    served_before = datamodule.train_examples_served
    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    train_wall_time = time.perf_counter() - start
    train_examples = datamodule.train_examples_served - served_before
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
    for logger in loggers:
        logger.log_metrics({f"summary/{k}": v for k, v in summary.items() if isinstance(v, (int, float))})
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


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def main(cfg: DictConfig) -> float:
    """Console entry point; returns the test error so Hydra sweepers can minimise it."""
    return run(cfg)["test_error"]


if __name__ == "__main__":
    main()
