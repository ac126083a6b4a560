"""Shared benchmark helpers: interleaved repetitions with medians, epoch timers, the machine line.

Every ratio a benchmark prints is measured by running both sides in the same process, interleaved
(A B A B ..., the order rotated each round) and taking medians, so a machine that slows down half-way
through slows both sides alike instead of faking a ratio.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import lightning.pytorch as pl
import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def interleave(candidates: Mapping[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, list[Any]]:
    """Runs every candidate ``warmup + repeats`` times, interleaved, and returns what each run measured.

    Each candidate returns the seconds it measured itself (so setup it does not want counted stays out),
    or a tuple of such measurements.
    Round ``r`` runs the candidates in an order rotated by ``r``, so none always runs first.
    Warm-up rounds are run and thrown away.
    """
    names = list(candidates)
    times: dict[str, list[Any]] = {name: [] for name in names}
    for round_index in range(warmup + repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            seconds = candidates[name]()
            if round_index >= warmup:
                times[name].append(seconds)
    return times


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def timed(fn: Callable[[], Any]) -> float:
    """Seconds one call of ``fn`` takes (CUDA work included: the device is synchronised on both ends)."""
    synchronize()
    start = time.perf_counter()
    fn()
    synchronize()
    return time.perf_counter() - start


def synchronize() -> None:
    """Waits for queued CUDA work (a no-op without CUDA), so a stopwatch sees the work it times."""
    # `is_initialized` first: it is a flag read, `is_available` can cost tens of µs on a machine without a GPU
    if torch.cuda.is_initialized() and torch.cuda.is_available():
        torch.cuda.synchronize()


class EpochTimer(pl.Callback):
    """Records the wall time (and the process's CPU time) between consecutive ``on_train_epoch_end`` calls.

    Put it *last* in the callback list so every other callback's epoch-end work is inside the interval.
    The interval from one epoch end to the next covers the whole epoch (loader start, every step, every
    callback hook); the first epoch, which also pays for start-up, is measured from ``on_train_start``
    and reported apart in :attr:`first_epoch`.

    CPU time (``time.process_time``, all threads of the process) does not count the time the process
    waited for a core, so on a shared CPU machine it is the steadier measure of what the work costs;
    with a GPU doing the work it says little, and wall time is the figure.
    """

    def __init__(self) -> None:
        super().__init__()
        self.epoch_seconds: list[float] = []
        self.epoch_cpu_seconds: list[float] = []
        self.first_epoch: Optional[float] = None
        self._last: Optional[tuple[float, float]] = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epoch_seconds, self.epoch_cpu_seconds, self.first_epoch = [], [], None
        synchronize()
        self._last = (time.perf_counter(), time.process_time())

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        synchronize()
        now = (time.perf_counter(), time.process_time())
        if self.first_epoch is None:
            self.first_epoch = now[0] - self._last[0]
        else:
            self.epoch_seconds.append(now[0] - self._last[0])
            self.epoch_cpu_seconds.append(now[1] - self._last[1])
        self._last = now

    @property
    def median_epoch(self) -> float:
        """Median steady-state epoch wall time (every epoch but the first)."""
        return _steady_median(self.epoch_seconds)

    @property
    def median_epoch_cpu(self) -> float:
        """Median steady-state epoch CPU time of the process."""
        return _steady_median(self.epoch_cpu_seconds)


def _steady_median(seconds: list[float]) -> float:
    if not seconds:
        raise RuntimeError("run at least two epochs: the first one is not a steady-state measurement")
    return median(seconds)


def quiet_trainer(
    device: str, max_epochs: int, callbacks: Sequence[pl.Callback] = (), precision: str = "32-true", **options: Any
) -> pl.Trainer:
    """A Trainer with no logger, checkpoint, progress bar, model summary or validation: just training."""
    accelerator = "gpu" if device == "cuda" else "cpu"
    settings: dict[str, Any] = dict(
        accelerator=accelerator,
        devices=1,
        max_epochs=max_epochs,
        precision=precision,
        callbacks=list(callbacks),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    settings.update(options)
    return pl.Trainer(**settings)


def machine() -> str:
    """One line naming the machine the figures were measured on."""
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parts = [f"{cpu}, {cores} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"]
    if torch.cuda.is_available():
        parts.append(f"GPU {torch.cuda.get_device_name(0)}")
    return "; ".join(parts)


def base_parser(description: str) -> argparse.ArgumentParser:
    """Arguments every benchmark takes: ``--quick`` (tiny sizes, for the smoke test) and ``--results``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs, measures nothing")
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="folder for the CSV of figures (default: benchmarks/results; none with --quick)",
    )
    return parser


def results_dir(args: argparse.Namespace) -> Optional[Path]:
    """Where to write CSVs: ``--results``, else ``benchmarks/results`` for full runs, else nowhere."""
    if args.results is not None:
        return args.results
    return None if args.quick else RESULTS_DIR


def write_csv(path: Optional[Path], rows: Sequence[Mapping[str, Any]]) -> None:
    """Writes ``rows`` (dicts with the same keys) to ``path`` when it is set."""
    if path is None or not rows:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path}")


def print_figures(title: str, rows: Sequence[tuple[str, str, str]]) -> None:
    """Prints the figures last, as ``figure | measured | target`` lines under a title and the machine."""
    width = max(len(name) for name, _, _ in rows)
    print(f"\n== {title}")
    print(f"machine: {machine()}")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>14}  {target}")


def verdict(value: float, limit: float, at_most: bool = True) -> str:
    ok = value <= limit if at_most else value >= limit
    return f"target {'<=' if at_most else '>='} {limit:g}: {'met' if ok else 'MISSED'}"
