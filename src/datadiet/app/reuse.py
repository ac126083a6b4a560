"""What each phase's outputs depend on, from the plan: a rerun reuses them (or a sweep's job shares them)
only when these are equal.

- the probe: :func:`probe_provenance` (its ``probe_fingerprint`` keys the probe cache, its settings the
  reuse of ``scores.npz`` and the resume of ``probe/``);
- the kept subset: :func:`selection_settings` (``kept_indices.npz``);
- the main training: :func:`train_settings` (``train/``);
- the full-data reference: :func:`reference_key` (``<cache_dir>/references/``).

How outputs of other settings are moved aside is :mod:`datadiet.app.rundir`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from datadiet import __version__
from datadiet.app.rundir import array_digest
from datadiet.fingerprint import config_fingerprint

if TYPE_CHECKING:
    from datadiet.app.plan import RunPlan
    from datadiet.data import PruningDataModule
    from datadiet.store import ScoreTable

#: The entries of :func:`probe_provenance` that are the probe's settings (the rest is derived or informative).
PROBE_SETTINGS = ("dataset", "data_config", "probe", "seed", "trainer")
#: Trainer settings that change what is printed, not what is learned: left out of the reference key.
_DISPLAY_ONLY = ("enable_progress_bar", "enable_model_summary", "log_every_n_steps", "enable_checkpointing")


def trainer_settings(plan: "RunPlan") -> dict[str, Any]:
    """The trainer's settings without ``max_epochs``, which only sets the full training's epochs."""
    return {key: value for key, value in plan.trainer.items() if key != "max_epochs"}


def probe_provenance(plan: "RunPlan", datamodule: "PruningDataModule") -> dict[str, Any]:
    """What the probe's scores depend on, with its fingerprint (the score cache's key)."""
    dataset = {
        "name": datamodule.name,
        "fingerprint": datamodule.fingerprint(),
        "num_examples": datamodule.num_examples,
    }
    key = {
        "dataset": dataset,
        "data_config": plan.data,
        "probe": plan.probe.settings,
        "seed": plan.seed,
        "trainer": trainer_settings(plan),
    }
    return {**key, "probe_fingerprint": config_fingerprint(key), "datadiet_version": __version__}


def probe_settings(plan: "RunPlan", datamodule: "PruningDataModule") -> dict[str, Any]:
    """The probe's settings (:data:`PROBE_SETTINGS` of its provenance)."""
    return {key: value for key, value in probe_provenance(plan, datamodule).items() if key in PROBE_SETTINGS}


def irreducible_loss_settings(plan: "RunPlan", datamodule: "PruningDataModule") -> dict[str, Any]:
    """What ``rho_loss``'s irreducible-loss models depend on (their losses are cached by it)."""
    provenance = probe_provenance(plan, datamodule)
    return {key: provenance[key] for key in ("dataset", "data_config", "trainer")} | {"model": plan.probe.model}


def selection_settings(
    plan: "RunPlan", datamodule: "PruningDataModule", table: Optional["ScoreTable"]
) -> dict[str, Any]:
    """What a kept subset chosen by scores depends on."""
    return {
        "pruning": plan.pruning.settings,
        "probe_fingerprint": None if table is None else table.metadata.get("probe_fingerprint"),
        "scores": None if table is None else array_digest(table[plan.pruning.score]),
        "dataset_fingerprint": datamodule.fingerprint(),
    }


def train_settings(
    plan: "RunPlan", datamodule: "PruningDataModule", kept: Optional[np.ndarray], epochs: int
) -> dict[str, Any]:
    """What the main training depends on: its checkpoint is resumed only if an earlier run's settings are equal."""
    settings = {
        "model": plan.model,
        "trainer": trainer_settings(plan),
        "max_epochs": plan.max_epochs,
        "seed": plan.seed,
        "data_config": plan.data,
        "dataset_fingerprint": datamodule.fingerprint(),
        "kept_indices": (
            array_digest(np.sort(np.asarray(kept, dtype=np.int64)))
            if kept is not None
            else {"in_run": plan.pruning.settings, "after_epochs": plan.probe.epochs}
        ),
        "train_epochs": epochs,
    }
    # only modes that add settings add keys: static runs keep the settings they recorded before modes existed
    return {**settings, **plan.pruning.mode.train_settings(plan.pruning)}


def reference_key(plan: "RunPlan", datamodule: "PruningDataModule") -> str:
    """Fingerprint of what a full-data run's accuracy depends on: data, model, trainer, max_epochs, seed."""
    trainer = {key: value for key, value in trainer_settings(plan).items() if key not in _DISPLAY_ONLY}
    return config_fingerprint(
        {
            "dataset": {"fingerprint": datamodule.fingerprint(), "num_examples": datamodule.num_examples},
            "data_config": plan.data,
            "model": plan.model,
            "trainer": trainer,
            "max_epochs": plan.max_epochs,
            "seed": plan.seed,
        }
    )
