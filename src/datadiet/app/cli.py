"""The ``datadiet`` console script: Hydra's entry point — the composed config becomes a
:class:`~datadiet.app.plan.RunPlan`, which :func:`datadiet.app.pipeline.run` runs."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

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

    In a multirun a failed job writes ``job_failure.json`` and returns NaN; the sweep's report lists it.
    Under DDP each multirun job starts and ends its own ranks (see :mod:`datadiet.app.launch`).
    """

    def job(job_cfg: DictConfig) -> float:
        plan = RunPlan.from_config(job_cfg)  # every key and value checked before anything trains
        with multirun_ddp_job(plan):
            return run(plan)["objective"]

    return record_failures(job, cfg)


if __name__ == "__main__":
    main()
