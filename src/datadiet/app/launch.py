"""DDP inside a Hydra multirun: each job relaunches its own ranks, and leaves nothing behind for the next job.

Lightning's subprocess launcher starts ranks > 0 by re-running ``sys.argv`` in ``HydraConfig.get().run.dir``.
Inside a multirun that is the whole sweep (``-m`` and every value), in the run directory of a single run,
and once the first job has set ``MASTER_PORT``, ``WORLD_SIZE``, ``LOCAL_RANK``, … and the process group,
later jobs start no ranks at all. :func:`multirun_ddp_job`, around each job, fixes the three.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import torch.distributed
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import open_dict, read_write

from datadiet.app.cache import single_process

log = logging.getLogger(__name__)

#: How long a finished job waits for its ranks > 0 to exit before it kills them.
CHILD_EXIT_TIMEOUT_S = 120.0


def needs_job_launch(plan: Any) -> bool:
    """Whether ``plan`` is a multirun job whose trainer runs several processes (DDP, FSDP, several nodes)."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return False
    return not single_process(plan.trainer)


def rank_argv(plan: Any, argv0: str) -> list[str]:
    """The command line that makes ranks > 0 run this job alone, as a single run.

    It is the job's own task overrides; the probe cache folder (``plan.paths.cache_dir``), which a multirun
    resolves to the sweep directory and a single run to its run directory, is passed resolved so every rank
    uses rank 0's.
    """
    overrides = [str(item) for item in HydraConfig.get().overrides.task]
    cache_dir = getattr(getattr(plan, "paths", None), "cache_dir", None)
    if cache_dir and not any(item.lstrip("+~").startswith("paths.cache_dir=") for item in overrides):
        quoted = str(cache_dir).replace("\\", "\\\\").replace("'", "\\'")
        overrides.append(f"paths.cache_dir='{quoted}'")
    return [argv0, *overrides]


@contextlib.contextmanager
def multirun_ddp_job(plan: Any) -> Iterator[None]:
    """Runs one multirun job whose trainer uses several processes; a no-op for any other run.

    During the job, ``sys.argv`` is the job's own overrides (see :func:`rank_argv`) and ``hydra.run.dir``
    is the job's output directory, so Lightning starts ranks > 0 for this job only, in its directory.
    Afterwards the ranks > 0 are waited for (killed when the job raised), the process group is destroyed,
    and ``os.environ``, ``sys.argv`` and ``hydra.run.dir`` are restored, so the next job starts afresh.

    Args:
        plan: the job's :class:`~datadiet.app.plan.RunPlan`.

    Example::

        with multirun_ddp_job(plan):
            run(plan)
    """
    if not needs_job_launch(plan):
        yield
        return
    hydra_cfg = HydraConfig.get()
    saved_argv, saved_env, saved_run_dir = list(sys.argv), dict(os.environ), hydra_cfg.run.dir
    observers_before = set(_observers())
    sys.argv = rank_argv(plan, saved_argv[0])
    with read_write(hydra_cfg), open_dict(hydra_cfg):
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir
    failed = True
    try:
        yield
        failed = False
    finally:
        try:
            _end_ranks([o for o in _observers() if o not in observers_before], kill=failed)
        finally:
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()
            os.environ.clear()
            os.environ.update(saved_env)
            sys.argv = saved_argv
            with read_write(hydra_cfg), open_dict(hydra_cfg):
                hydra_cfg.run.dir = saved_run_dir


def _observers() -> list[threading.Thread]:
    """Lightning's child-process observer threads (one per launch): they hold the launched ranks."""
    return [t for t in threading.enumerate() if isinstance(getattr(t, "_child_processes", None), list)]


def _end_ranks(observers: list[Any], kill: bool) -> None:
    """Waits for the ranks > 0 this job launched to exit, or kills them when rank 0 failed.

    Each observer is detached from its ranks first. Left attached, it goes on polling after the job, and a
    rank that exits non-zero (when its job has failed, or in its interpreter's teardown after the job has
    finished) makes it SIGKILL this process: the whole sweep, in the middle of a later job, whose ranks > 0
    would then wait for rank 0 for ever. A rank > 0 that exits non-zero after its job finished is logged
    with its exit code; the job's results, written by rank 0 after the last collective, stand.
    """
    for observer in observers:
        children: list[subprocess.Popen] = list(observer._child_processes)
        observer._child_processes = []  # the observer ends at its next poll, acting on nothing
        if kill:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGKILL)
        for child in children:
            try:
                child.wait(timeout=CHILD_EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.error("rank process %d runs %.0f s after its job; killing it", child.pid, CHILD_EXIT_TIMEOUT_S)
                child.kill()
                child.wait()
            else:
                if child.returncode and not kill:
                    log.warning(
                        "rank process %d exited with code %d after its job finished (rank 0 wrote the results)",
                        child.pid,
                        child.returncode,
                    )
