"""The ``datadiet`` console script: Hydra's entry point — the composed config becomes a
:class:`~datadiet.app.plan.RunPlan`, which :func:`datadiet.app.pipeline.run` runs.

(Not to be confused with :mod:`datadiet.cli`, the ``LightningCLI`` for your own training script.)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from datadiet.app.config_checks import SettingsError
from datadiet.app.launch import multirun_ddp_job
from datadiet.app.pipeline import run
from datadiet.app.plan import RunPlan
from datadiet.report import record_failures


def config_dir() -> str:
    """The folder of the app's configs: inside the installed package, else the checkout's ``conf/``."""
    packaged = Path(__file__).resolve().parents[1] / "conf"
    if packaged.is_dir():
        return str(packaged)
    checkout = Path(__file__).resolve().parents[3] / "conf"
    if checkout.is_dir():
        return str(checkout)
    raise FileNotFoundError(f"datadiet's configs are missing: looked in {packaged} and {checkout}")


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def main(cfg: DictConfig) -> float:
    """Console entry point; returns the run's ``objective`` (the test error ``1 − test/acc`` by default; see
    ``test_metric``) so Hydra sweepers can minimise it.

    A setting that cannot work is printed as one line naming its key (``datadiet: error: ...``, exit status 2),
    before anything trains; ``HYDRA_FULL_ERROR=1`` shows the traceback instead. In a multirun a failed job
    writes ``job_failure.json`` and returns NaN; the sweep's report lists it.
    Under DDP each multirun job starts and ends its own ranks (see :mod:`datadiet.app.launch`).
    """

    def job(job_cfg: DictConfig) -> float:
        with one_line_errors(Exception):  # building the plan runs no user code: all it raises is about settings
            plan = RunPlan.from_config(job_cfg)  # every key and value checked before anything trains
        with one_line_errors(SettingsError), multirun_ddp_job(plan):  # the checks of your model and data
            return run(plan)["objective"]

    return record_failures(job, cfg)


@contextmanager
def one_line_errors(kind: type[BaseException]) -> Iterator[None]:
    """Prints an error of ``kind`` as ``datadiet: error: <message>`` and exits with status 2 — outside a multirun
    (whose jobs record their failures and go on) and unless ``HYDRA_FULL_ERROR=1`` asks for the traceback."""
    try:
        yield
    except kind as error:
        multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
        if multirun or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        message = " ".join(str(error).split("\n")) or type(error).__name__
        print(f"datadiet: error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
