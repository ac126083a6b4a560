"""The app's separate probe: trains a small model with :class:`DifficultyCallback` and returns its score table.

Its provenance (what the scores depend on) keys the score cache and decides whether a rerun in the same run
directory may reuse ``scores.npz`` or resume the probe's checkpoint.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

from datadiet import __version__
from datadiet.app.cache import cache_probe
from datadiet.app.checkpointing import LAST, AtomicCheckpointIO, PhaseClock, phase_checkpoint, resume_path
from datadiet.app.quiet import expected_warnings
from datadiet.app.rundir import may_reuse, record_settings, recorded_settings
from datadiet.callbacks import DifficultyCallback
from datadiet.callbacks.examples_seen import ExamplesSeen
from datadiet.compute import scoring_pass_examples
from datadiet.data import PruningDataModule
from datadiet.fingerprint import config_fingerprint
from datadiet.scores import get_score
from datadiet.scores.rho_loss import cached_irreducible_losses
from datadiet.store import ScoreTable


def provenance(cfg: DictConfig, datamodule: PruningDataModule) -> dict[str, Any]:
    """What the probe's scores depend on; its fingerprint keys the score cache."""
    probe_cfg = OmegaConf.to_container(cfg.probe, resolve=True)
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    dataset = {"name": datamodule.name, "fingerprint": datamodule.fingerprint(), "num_examples": datamodule.num_examples}
    key = {"dataset": dataset, "data_config": data_cfg, "probe": probe_cfg, "seed": cfg.seed,
           "trainer": trainer_settings(cfg)}
    return {**key, "probe_fingerprint": config_fingerprint(key), "datadiet_version": __version__}


#: The entries of :func:`provenance` that are the probe's settings (the rest is derived or informative).
_PROBE_SETTINGS = ("dataset", "data_config", "probe", "seed", "trainer")


def trainer_settings(cfg: DictConfig) -> dict[str, Any]:
    """``cfg.trainer`` without ``max_epochs``, which only sets the full training's epochs (as ``max_epochs``)."""
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer.pop("max_epochs", None)
    return trainer


def score_options(cfg: DictConfig) -> dict[str, Any]:
    """``probe.score_options`` as a plain dict (empty when unset)."""
    return OmegaConf.to_container(cfg.probe.score_options, resolve=True) if cfg.probe.get("score_options") else {}


def make_model(model_cfg: DictConfig, datamodule: PruningDataModule, **extra: Any) -> pl.LightningModule:
    """Instantiates ``model_cfg`` for ``datamodule``'s input shape and classes."""
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
    options = score_options(cfg)
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
        options.setdefault("rho_loss", {})["irreducible_losses"] = irreducible_losses
    difficulty = DifficultyCallback(
        scores=list(cfg.probe.scores), score_options=options, feature_module=cfg.probe.get("feature_module")
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
    scoring_examples = (  # global (all ranks, DDP padding included)
        scoring_pass_examples(datamodule.num_examples, trainer.world_size)
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
