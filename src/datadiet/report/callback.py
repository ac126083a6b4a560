"""Builds a sweep's scaling curve when a Hydra multirun ends, and the ``datadiet-report DIR`` command.

A failed job does not stop the sweep: :func:`record_failures` writes its error to
``job_failure.json`` and the job returns NaN, so every other job still runs and the report lists it;
the multirun then exits with an error naming the failed jobs.
"""

from __future__ import annotations

import argparse
import logging
import math
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig
from typing_extensions import override

from datadiet._io import atomic_write_json
from datadiet.report.scaling import (
    FAILURE_FILE,
    MixedSweepError,
    SweepReport,
    build_report,
    collect_jobs,
    format_report,
)

log = logging.getLogger(__name__)


class SweepFailedError(SystemExit):
    """Ends a multirun in which some jobs failed, after the report is written: the message goes to stderr and
    the exit status is 1. (A ``SystemExit``, because Hydra turns a callback's ordinary exceptions into warnings.)"""


def record_failures(job: Callable[[DictConfig], Any], cfg: DictConfig, failed_value: Any = math.nan) -> Any:
    """Runs ``job(cfg)``; in a multirun job a raised exception is written to ``job_failure.json`` and
    ``failed_value`` returned, so that the sweep goes on. Outside a multirun the exception propagates.
    """
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return job(cfg)
    try:
        return job(cfg)
    except Exception as error:  # noqa: BLE001  (recorded and reported at the end of the sweep)
        text = traceback.format_exc()
        log.error("job %s failed:\n%s", HydraConfig.get().job.num, text)
        atomic_write_json(
            Path(HydraConfig.get().runtime.output_dir) / FAILURE_FILE,
            {"type": type(error).__name__, "message": str(error), "traceback": text},
        )
        return failed_value


def report_sweep(
    sweep_dir: str | Path, wandb: Optional[bool] = None, config: Optional[DictConfig] = None
) -> SweepReport:
    """Builds the report of ``sweep_dir``, prints it, and logs it to W&B when the sweep used W&B.

    Args:
        sweep_dir: the multirun directory.
        wandb: log the curve to W&B (default: when the sweep's config has a ``logger.wandb``).
        config: the sweep's config (default: ``sweep_dir/multirun.yaml`` when present).
    """
    from datadiet.report.wandb_logging import log_report, sweep_wandb_settings

    report = build_report(sweep_dir)
    print("\n" + format_report(report) + "\n", flush=True)
    settings = sweep_wandb_settings(sweep_dir, config)
    if wandb if wandb is not None else settings is not None:
        log_report(report, **(settings or {}))
    return report


class ScalingCurveCallback(Callback):
    """Hydra callback: at the end of a multirun, writes the sweep's scaling curve (CSV, PNG, W&B).

    Listed in ``conf/config.yaml`` under ``hydra.callbacks``; ``datadiet-report DIR`` does the same
    for an existing sweep directory.

    A multirun whose jobs differ in more than keep fraction, strategy and seed (``-m model=mlp,cnn1d``)
    is not one scaling curve: it gets none, and a warning saying why.

    Raises:
        SweepFailedError: after the report is written, when some jobs failed.
    """

    @override
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            report = report_sweep(Path(config.hydra.sweep.dir), config=config)
        except MixedSweepError as error:
            log.warning("no scaling curve for this multirun: %s", error)
            report = SweepReport(Path(config.hydra.sweep.dir), collect_jobs(config.hydra.sweep.dir), [])
        if report.failed:
            names = ", ".join(f"{job.directory.name} ({job.error})" for job in report.failed)
            raise SweepFailedError(f"{len(report.failed)} of {len(report.jobs)} jobs failed: {names}")


def main(argv: Optional[list[str]] = None) -> int:
    """``datadiet-report DIR``: the scaling curve of an existing sweep directory."""
    parser = argparse.ArgumentParser(
        prog="datadiet-report",
        description="Test error against examples kept, one line per strategy, from a datadiet multirun directory: "
        "writes scaling_curve.csv, scaling_fits.csv, scaling_curve.png and report.json into it.",
    )
    parser.add_argument("sweep_dir", type=Path, help="a multirun directory, e.g. multirun/2026-01-31/12-00-00")
    wandb_group = parser.add_mutually_exclusive_group()
    wandb_group.add_argument(
        "--wandb", dest="wandb", action="store_true", default=None, help="also log the curve to W&B"
    )
    wandb_group.add_argument("--no-wandb", dest="wandb", action="store_false", help="never log to W&B")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"{args.sweep_dir} is not a directory")
    try:
        report = report_sweep(args.sweep_dir, wandb=args.wandb)
    except (FileNotFoundError, MixedSweepError) as error:
        parser.error(str(error))
    return 1 if report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
