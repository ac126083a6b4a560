"""The app's pipeline for one run: plan → data → (full-data reference) → select → train → test → summary.

:func:`run` is what ``datadiet`` (:mod:`datadiet.app.cli`) calls for each job. The run directory gets
``scores.npz`` (+ ``scores.json`` provenance), ``kept_indices.npz`` (+ ``.json``) and ``summary.json``,
all written atomically; the summary's ``test_error`` is what sweepers minimise.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger

from datadiet.app.accounting import early_stopped_epochs
from datadiet.app.kept_subset import KEPT_FILE, choose_subset, save_label_records
from datadiet.app.plan import RunPlan
from datadiet.app.reference import compare_early_stopped, load_reference, save_reference
from datadiet.app.reuse import reference_key
from datadiet.app.select_task import readable_selection, select_only
from datadiet.app.summary import format_summary, metric_text, readable, run_summary
from datadiet.app.training import train
from datadiet.app.user_code import check_before_training, make_datamodule
from datadiet.files import atomic_write_json
from datadiet.report.wandb_logging import log_job


def run(config: Any, announce: bool = True) -> dict[str, Any]:
    """Runs one config (a composed Hydra config, or its :class:`~datadiet.app.plan.RunPlan`) and returns the
    summary (also written to ``summary.json``).

    With ``baseline=true`` it also trains the same model on all data for ``max_epochs`` (first; unless the
    reference cache has that run) and, after this run, on all data for the fewest epochs that cost at least
    what this run cost (the early-stopped full-data run: the line a pruned run must beat); the summary says
    whether pruning paid. ``announce=False`` prints one line instead of the summary table (those nested runs).
    """
    plan = config if isinstance(config, RunPlan) else RunPlan.from_config(config)  # every check, before anything
    plan.paths.output_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(plan.seed, workers=True)
    if plan.task == "select":  # only choose: subset.npz and its card, no training
        return _select_only(plan, announce)
    datamodule = make_datamodule(plan.data)
    check_before_training(plan, datamodule)  # your model and data give what the run needs (one test batch)
    reference_id = reference_key(plan, datamodule)
    if plan.baseline and not plan.is_full_data_reference and load_reference(plan, reference_id) is None:
        _comparison_run(plan.full_data(), "full data", plan)  # the same model on all data for max_epochs
    loggers = make_loggers(plan)

    subset = choose_subset(plan, datamodule, loggers)
    fit = train(plan, datamodule, loggers, subset)
    summary, is_reference = run_summary(plan, datamodule, subset, fit, load_reference(plan, reference_id))
    summary.update(save_label_records(plan, datamodule, subset))
    if plan.baseline and not is_reference:  # the early-stopped full-data run of at least this compute
        early_plan = plan.full_data(epochs=early_stopped_epochs(summary["compute_ratio"], plan.max_epochs))
        early = _comparison_run(early_plan, "early-stopped full data", plan)
        summary.update(compare_early_stopped(summary, early, plan.max_epochs, plan))

    if fit.is_global_zero:
        if is_reference:
            save_reference(plan, reference_id, summary)
        atomic_write_json(plan.paths.output_dir / "summary.json", summary)
    log_job(loggers, summary, plan.paths.output_dir / KEPT_FILE)
    for logger in loggers:
        logger.finalize("success")
    _finish_wandb(loggers)
    if fit.is_global_zero and announce:  # last, after W&B's closing lines: the summary is what stays on screen
        print("\n" + format_summary(readable(summary)) + "\n", flush=True)
    return summary


def _select_only(plan: RunPlan, announce: bool) -> dict[str, Any]:
    loggers = make_loggers(plan)
    summary = select_only(plan, loggers)
    for logger in loggers:
        logger.finalize("success")
    _finish_wandb(loggers)
    if announce and pl.utilities.rank_zero.rank_zero_only.rank == 0:
        print("\n" + readable_selection(summary) + "\n", flush=True)
    return summary


def make_loggers(plan: RunPlan) -> list[Logger]:
    """Instantiates every logger of the ``logger`` group (none when the group is empty), with the run's config
    as hyperparameters."""
    loggers = [instantiate(logger_cfg) for logger_cfg in plan.loggers.values()]
    for logger in loggers:
        logger.log_hyperparams(plan.config)
    return loggers


def _comparison_run(plan: RunPlan, what: str, parent: RunPlan) -> dict[str, Any]:
    """A comparison run of ``baseline=true`` (full data, or full data stopped early), announced in one line."""
    summary = run(plan, announce=False)
    if pl.utilities.rank_zero.rank_zero_only.rank == 0:
        epochs, max_epochs = summary["train_epochs"], parent.max_epochs
        print(
            f"\n[datadiet] {what}: {epochs} epochs, {metric_text(summary)}, "
            f"{epochs / max_epochs:.2f}× the compute of {max_epochs} epochs (in {summary['output_dir']})\n",
            flush=True,
        )
    pl.seed_everything(parent.seed, workers=True)
    return summary


def _finish_wandb(loggers: list[Logger]) -> None:
    from lightning.pytorch.loggers import WandbLogger

    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        wandb.finish()
