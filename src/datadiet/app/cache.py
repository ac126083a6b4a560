"""The probe score cache: one probe per (dataset, probe config, seed), shared by every job of a sweep.

Scores are stored as ``<cache_dir>/<probe_fingerprint>.npz`` (+ ``.json`` provenance). The fingerprint
is computed from the config and the dataset *before* the probe runs, so a job that finds it reuses the
scores. Jobs running in parallel (joblib, SLURM) serialise on a per-fingerprint file lock: the first
computes and writes atomically, the others wait and read. Every computation is appended to
``<cache_dir>/probe_runs.jsonl``, so a sweep's probe count can be checked.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable, Optional

from filelock import FileLock

from datadiet._io import UnreadableFileError
from datadiet.app.rundir import supersede
from datadiet.store import ScoreTable

log = logging.getLogger(__name__)

#: Name of the append-only log of probe computations in the cache folder.
RUN_LOG = "probe_runs.jsonl"


class ProbeCache:
    """Score tables keyed by probe fingerprint in one folder, safe to share between processes.

    Args:
        directory: the cache folder (created on first use).

    Example::

        cache = ProbeCache("multirun/2026-01-31/12-00-00/probe_cache")
        table, hit = cache.get_or_compute(fingerprint, lambda: run_the_probe())
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise NotADirectoryError(
                f"the probe cache `paths.cache_dir={self.directory}` is a file, not a folder: point it at a folder "
                "(or delete the file)"
            )

    def path(self, fingerprint: str) -> Path:
        return self.directory / f"{fingerprint}.npz"

    def load(self, fingerprint: str, may_move: bool = True) -> Optional[ScoreTable]:
        """The cached table, or ``None``; a table whose fingerprint differs is ignored.

        An unreadable entry (truncated, corrupt) is moved to ``<cache>/superseded/`` with a warning naming it
        (by rank 0, or with ``may_move`` alone) and ``None`` returned, so the probe runs again and replaces
        it: one bad entry never breaks the later jobs of a sweep sharing the cache.
        """
        path = self.path(fingerprint)
        if not path.exists():
            return None
        try:
            table = ScoreTable.load(path)
        except UnreadableFileError as error:
            moved_to = supersede(self.directory, [path, path.with_suffix(".json")]) if may_move else "(left to rank 0)"
            log.warning("probe cache entry %s cannot be read (%s): moved to %s; the probe runs again and replaces it",
                        path, error.reason, moved_to)  # fmt: skip
            return None
        if table.metadata.get("probe_fingerprint") != fingerprint:
            log.warning("ignoring %s: its provenance does not carry fingerprint %s", path, fingerprint)
            return None
        return table

    def store(self, fingerprint: str, table: ScoreTable) -> Path:
        """Writes ``table`` (atomically) and records the computation in ``probe_runs.jsonl``.

        Raises:
            ValueError: the table records another probe fingerprint (scores of other settings).
        """
        recorded = table.metadata.get("probe_fingerprint")
        if recorded is not None and recorded != fingerprint:
            raise ValueError(
                f"refusing to cache scores of probe {recorded} under fingerprint {fingerprint}: "
                "they were made with other settings"
            )
        table.metadata["probe_fingerprint"] = fingerprint
        path = table.save(self.path(fingerprint))
        record = {
            "probe_fingerprint": fingerprint,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "time": time.time(),
        }
        with FileLock(str(self.directory / f"{RUN_LOG}.lock")), open(self.directory / RUN_LOG, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        return path

    def get_or_compute(
        self, fingerprint: str, compute: Callable[[], ScoreTable], lock: bool = True
    ) -> tuple[ScoreTable, bool]:
        """The cached table for ``fingerprint``, computing and storing it first if it is missing.

        Args:
            fingerprint: the probe fingerprint.
            compute: runs the probe and returns its table.
            lock: hold the fingerprint's file lock while computing, so parallel jobs wait for one
                probe instead of each running it. Off for multi-process (DDP) runs, whose ranks
                must all enter the probe together.

        Returns:
            The table and whether it came from the cache.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        if not lock:
            table = self.load(fingerprint, may_move=_is_rank_zero())
            if table is not None:
                return table, True
            table = compute()
            if _is_rank_zero():
                self.store(fingerprint, table)
            return table, False
        file_lock = FileLock(str(self.directory / f"{fingerprint}.lock"))
        with file_lock.acquire(poll_interval=0.5):
            table = self.load(fingerprint)
            if table is not None:
                return table, True
            table = compute()
            self.store(fingerprint, table)
            return table, False

    def num_computed(self) -> int:
        """How many probes were computed into this folder (lines of ``probe_runs.jsonl``)."""
        path = self.directory / RUN_LOG
        return len(path.read_text().splitlines()) if path.exists() else 0


def _is_rank_zero() -> bool:
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def single_process(trainer_cfg: Any) -> bool:
    """Whether a trainer config runs in one process (so the probe may run under a file lock)."""
    strategy = str(trainer_cfg.get("strategy", "auto")).lower()
    if any(name in strategy for name in ("ddp", "fsdp", "deepspeed")) or int(trainer_cfg.get("num_nodes", 1)) > 1:
        return False
    devices = trainer_cfg.get("devices", "auto")
    if isinstance(devices, int):
        return devices == 1
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        return int(devices) == 1
    if isinstance(devices, str) and "," in devices:
        return len([d for d in devices.split(",") if d.strip()]) == 1
    if not isinstance(devices, str):  # a list of device ids
        return len(list(devices)) == 1
    if str(trainer_cfg.get("accelerator", "auto")) == "cpu":
        return True
    import torch

    return torch.cuda.device_count() <= 1


def cache_probe(fingerprint_fn: Callable[[Any, Any], str]) -> Callable:
    """Decorates the app's ``run_probe(plan, datamodule, loggers, output_dir)`` with the score cache
    (``plan.paths.cache_dir``; none when it is unset).

    The probe's costs are kept in the cached table's metadata (``probe_costs``), so a job that reuses
    the scores still reports what they cost, with ``probe_cache`` = ``"hit"`` (or ``"miss"``). The job's
    ``scores.npz`` is written either way. W&B: the job that runs the probe logs its histograms and
    example grids (see :mod:`datadiet.report.wandb_logging`).
    """

    def decorator(run_probe: Callable[..., tuple[ScoreTable, dict[str, Any]]]) -> Callable:
        @functools.wraps(run_probe)
        def cached(plan: Any, datamodule: Any, loggers: list, output_dir: Path, *args: Any, **kwargs: Any):
            cache_dir = plan.paths.cache_dir
            if not cache_dir:
                return run_probe(plan, datamodule, loggers, output_dir, *args, **kwargs)
            fingerprint = fingerprint_fn(plan, datamodule)
            computed: dict[str, Any] = {}

            def compute() -> ScoreTable:
                table, costs = run_probe(plan, datamodule, loggers, output_dir, *args, **kwargs)
                table.metadata["probe_costs"] = {key: value for key, value in costs.items() if key != "probe_resumed"}
                computed["costs"] = costs
                return table

            cache = ProbeCache(cache_dir)
            table, hit = cache.get_or_compute(fingerprint, compute, lock=single_process(plan.trainer))
            if hit:
                log.info("probe %s: reusing the cached scores in %s", fingerprint, cache.path(fingerprint))
                if _is_rank_zero():
                    table.save(Path(output_dir) / "scores.npz")
            else:
                from datadiet.report.wandb_logging import log_probe

                log_probe(loggers, table, datamodule)
            costs = dict(computed.get("costs") or table.metadata.get("probe_costs") or {})
            if hit:
                costs.pop("probe_resumed", None)  # another job's probe, not this run's
            costs["probe_cache"] = "hit" if hit else "miss"
            return table, costs

        return cached

    return decorator
