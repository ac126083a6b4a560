"""The app's separate probe: trains a small model with :class:`DifficultyCallback` and returns its score table.

Its provenance (:func:`datadiet.app.reuse.probe_provenance`) keys the score cache and decides whether a rerun
in the same run directory may reuse ``scores.npz`` or resume the probe's checkpoint.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import lightning.pytorch as pl
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger

from datadiet._io import UnreadableFileError
from datadiet.app.cache import cache_probe
from datadiet.app.checkpointing import LAST, AtomicCheckpointIO, PhaseClock, phase_checkpoint, resume_path
from datadiet.app.quiet import expected_warnings
from datadiet.app.reuse import PROBE_SETTINGS, irreducible_loss_settings, probe_provenance, probe_settings
from datadiet.app.rundir import may_reuse, record_settings, recorded_settings
from datadiet.app.user_code import make_model  # noqa: F401  (the phases import it from here)
from datadiet.callbacks import DifficultyCallback
from datadiet.callbacks.examples_seen import ExamplesSeen
from datadiet.compute import scoring_pass_examples
from datadiet.data import PruningDataModule
from datadiet.scores import get_score
from datadiet.scores.rho_loss import cached_irreducible_losses
from datadiet.store import ScoreTable

if TYPE_CHECKING:
    from datadiet.app.plan import RunPlan

log = logging.getLogger(__name__)


def make_trainer(plan: "RunPlan", **arguments: Any) -> pl.Trainer:
    """The run's ``trainer`` config with the phase's own arguments (epochs, callbacks, logger, folder)."""
    return instantiate(plan.trainer, **arguments)


@cache_probe(lambda plan, datamodule: probe_provenance(plan, datamodule)["probe_fingerprint"])
def run_probe(
    plan: "RunPlan", datamodule: PruningDataModule, loggers: list[Logger], output_dir: Path
) -> tuple[ScoreTable, dict[str, Any]]:
    """Trains the probe model with :class:`DifficultyCallback` and returns its score table and costs.

    With ``resume`` (the default), a finished probe in ``output_dir`` (its ``scores.npz``) is reused, never
    recomputed, and an unfinished one resumes from ``output_dir/probe/checkpoints/last.ckpt`` — each only if
    made with this probe's settings; otherwise it is moved aside (see :mod:`datadiet.app.rundir`).
    """
    finished = output_dir / "scores.npz"
    settings = probe_settings(plan, datamodule)
    table = _finished_table(finished) if plan.resume and finished.is_file() else None
    recorded = None if table is None else {key: table.metadata.get(key) for key in PROBE_SETTINGS}
    outputs = [finished, finished.with_suffix(".json"), output_dir / "score_correlations.csv"]
    if may_reuse("probe scores", output_dir, outputs, recorded, settings, plan.resume):
        costs = table.metadata.get("probe_costs", {"probe_wall_time_s": 0.0, "probe_examples_seen": 0})
        return table, {**costs, "probe_resumed": True}
    probe_dir = output_dir / "probe"
    resumed = may_reuse(
        "probe checkpoint",
        output_dir,
        [probe_dir],
        recorded_settings(probe_dir),
        settings,
        plan.resume,
        sign=probe_dir / "checkpoints" / LAST,
    )
    record_settings(probe_dir, settings)
    probe_model = make_model(plan.probe.model, datamodule, log_prefix="probe/")
    difficulty = DifficultyCallback(
        scores=list(plan.probe.scores),
        score_options=_score_options(plan, datamodule, output_dir),
        feature_module=plan.probe.feature_module,
    )
    trainer = make_trainer(
        plan,
        max_epochs=plan.probe.epochs,
        callbacks=[difficulty, probe_seen := ExamplesSeen(), clock := PhaseClock(), phase_checkpoint(probe_dir)],
        plugins=[AtomicCheckpointIO()],
        logger=loggers or False,
        default_root_dir=str(probe_dir),
    )
    start = time.perf_counter()
    ckpt_path = resume_path(probe_dir, resumed)
    # weights_only=False: the run's own checkpoints hold OmegaConf hyperparameters, which torch's safe loader refuses.
    with expected_warnings(datamodule):
        trainer.fit(probe_model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False)
    wall_time = clock.earlier_s + time.perf_counter() - start  # earlier sessions included
    table = difficulty.score_table
    table.metadata.update(probe_provenance(plan, datamodule))
    scoring_examples = (  # global (all ranks, DDP padding included)
        scoring_pass_examples(datamodule.num_examples, trainer.world_size)
        if any(get_score(name).phase == "eval" for name in plan.probe.scores)
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


def _score_options(plan: "RunPlan", datamodule: PruningDataModule, output_dir: Path) -> dict[str, Any]:
    """``probe.score_options``; with ``rho_loss``, its irreducible-loss model(s), trained on a holdout split, cached."""
    options = copy.deepcopy(plan.probe.score_options)  # the plan's own stays as configured
    if "rho_loss" in plan.probe.scores:
        with expected_warnings():
            irreducible_losses = cached_irreducible_losses(
                datamodule,
                lambda: make_model(plan.probe.model, datamodule, log_prefix="irreducible/"),
                lambda **kw: make_trainer(plan, default_root_dir=str(output_dir / "irreducible"), **kw),
                plan.probe.rho_loss,
                plan.seed,
                irreducible_loss_settings(plan, datamodule),
            )
        options.setdefault("rho_loss", {})["irreducible_losses"] = irreducible_losses
    return options


def _finished_table(path: Path) -> Optional[ScoreTable]:
    """An earlier probe's ``scores.npz``, or ``None`` when it cannot be read (a warning names it; recording no
    settings then, it is moved aside and the probe runs again)."""
    try:
        return ScoreTable.load(path)
    except UnreadableFileError as error:
        log.warning("%s cannot be read (%s): the probe runs again", path, error.reason)
        return None
