"""The training phase: the main model trained for its budget's epochs on the kept subset (or pruning during
the fit, as the plan's selection and mode say), resuming an unfinished run of the same settings, then tested."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger

from datadiet.app.accounting import expected_kept, measure_flops_per_example
from datadiet.app.checkpointing import LAST, AtomicCheckpointIO, PhaseClock, phase_checkpoint, resume_path
from datadiet.app.kept_subset import KeptSubset, finish_in_run, in_run_pruning
from datadiet.app.probe import make_model, make_trainer
from datadiet.app.quiet import expected_warnings
from datadiet.app.reuse import train_settings
from datadiet.app.rundir import may_reuse, record_settings, recorded_settings
from datadiet.callbacks import PruneDuringFit
from datadiet.callbacks.examples_seen import ExamplesSeen
from datadiet.compute import run_flops
from datadiet.data import PruningDataModule

if TYPE_CHECKING:
    from datadiet.app.plan import RunPlan


@dataclass
class Fit:
    """The main training: its budget, what it cost and how it tested."""

    epochs: int
    flops_per_example: float
    probe_flops_per_example: float
    wall_time_s: float
    examples_seen: int
    test_metrics: dict[str, float]
    prune: Optional[PruneDuringFit]
    #: The pruning mode's callbacks (e.g. ``DynamicPruning``), for its summary entries.
    mode_callbacks: list[Callback] = field(default_factory=list)
    is_global_zero: bool = True


def train(plan: "RunPlan", datamodule: PruningDataModule, loggers: list[Logger], subset: KeptSubset) -> Fit:
    """Trains the main model for the budget's epochs (resuming an unfinished run of the same settings) and tests it."""
    # FLOPs per example of each model (fresh instances; the main model is re-made after seeding below)
    flops_per_example = measure_flops_per_example(make_model(plan.model, datamodule), datamodule)
    costs = subset.costs
    probe_forwards = int(costs.get("probe_presentations", 0)) + int(costs.get("probe_scored_examples", 0))
    probe_flops_per_example = (
        measure_flops_per_example(make_model(plan.probe.model, datamodule), datamodule) if probe_forwards else 0.0
    )
    probe_flops = run_flops(
        costs.get("probe_presentations", 0), costs.get("probe_scored_examples", 0), probe_flops_per_example
    )
    num_kept = (
        len(subset.kept)
        if subset.kept is not None
        else expected_kept(
            subset.keep_fraction, datamodule.num_examples, datamodule.labels, plan.pruning.class_balanced
        )
    )
    epochs = plan.budget.train_epochs(datamodule.num_examples, num_kept, flops_per_example, probe_flops)
    prune = None if subset.kept is not None else in_run_pruning(plan, datamodule)
    mode_callbacks = plan.pruning.mode.callbacks(plan.pruning)

    train_dir = plan.paths.output_dir / "train"
    settings = train_settings(plan, datamodule, subset.kept, epochs)
    # An explicit `ckpt_path` is the user's choice: resumed from as given, whatever it was made with.
    resume_training = bool(plan.ckpt_path) or may_reuse(
        "training checkpoint",
        plan.paths.output_dir,
        [train_dir, plan.paths.output_dir / "summary.json"],
        recorded_settings(train_dir),
        settings,
        plan.resume,
        sign=train_dir / "checkpoints" / LAST,
    )
    record_settings(train_dir, settings)

    pl.seed_everything(plan.seed, workers=True)
    model = make_model(plan.model, datamodule)
    trainer = make_trainer(
        plan,
        max_epochs=epochs,
        callbacks=[
            *([prune] if prune is not None else []),
            *mode_callbacks,
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
    ckpt_path = resume_path(train_dir, resume_training, plan.ckpt_path)
    # weights_only=False: the run's own checkpoints hold OmegaConf hyperparameters, which torch's safe loader refuses.
    with expected_warnings(datamodule):
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False)
    wall_time = clock.earlier_s + time.perf_counter() - start  # earlier sessions included
    if ckpt_path is not None:
        subset.resumed.append("training")
    if prune is not None:  # the subset and scores were chosen during the fit
        finish_in_run(plan, prune, datamodule, subset)
    test_metrics = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    return Fit(
        epochs=epochs,
        flops_per_example=flops_per_example,
        probe_flops_per_example=probe_flops_per_example,
        wall_time_s=wall_time,
        examples_seen=train_seen.count,  # summed over ranks, earlier sessions included
        test_metrics=test_metrics,
        prune=prune,
        mode_callbacks=mode_callbacks,
        is_global_zero=trainer.is_global_zero,
    )
