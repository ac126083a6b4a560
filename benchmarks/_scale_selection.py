"""Scale, selection: ``datadiet.select`` against a numpy baseline doing the same job, at N examples.

Scores are float32 (as a probe's EL2N), half of them kept. Each strategy is timed with and without
``class_balanced`` (10 and 10,000 classes), alternating with its baseline (A B, B A, ...), the minimum of the
rounds kept. The baselines are the numpy core of each job, without NaN handling or random tie-breaking, and
return the kept positions sorted, as ``select`` does:

- hard / easy (and ``PruningDataModule.prune`` with hard): ``np.argpartition`` + ``np.sort`` of the kept positions;
- random: ``Generator.choice(N, k, replace=False)`` + ``np.sort``;
- ccs: ``np.argsort`` of the scores (the one sort stratified sampling over a ranking needs) + a random choice
  of k ranked positions + ``np.sort``;
- any strategy with ``class_balanced``: ``np.lexsort((scores, labels))``, the last (or first) k_c of each
  class's stretch by one vectorised mask, ``np.sort``.

Peak memory is the peak of numpy's traced allocations during one call (``tracemalloc``), in float64 copies
of the score array (8 bytes per example).
"""

from __future__ import annotations

import time
import tracemalloc
from typing import Any, Callable

import numpy as np

from benchmarks._scale_memory import datamodule_of

STRATEGIES = ("hard", "easy", "random", "ccs")
KEEP_FRACTION = 0.5


def _keep_counts(sizes: np.ndarray) -> np.ndarray:
    return np.maximum(1, np.minimum(sizes, np.rint(KEEP_FRACTION * sizes))).astype(np.int64)


def baseline(strategy: str, scores: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """The numpy core of ``select(scores, 0.5, strategy, labels=labels, class_balanced=labels is not None)``."""
    size = len(scores)
    keep = int(round(KEEP_FRACTION * size))
    rng = np.random.default_rng(0)
    if labels is not None:
        order = np.lexsort((scores, labels))
        sizes = np.bincount(labels)
        sizes = sizes[sizes > 0]
        kept = _keep_counts(sizes)
        dropped = sizes - kept
        pattern = np.stack([dropped, kept], axis=1).ravel()
        return np.sort(order[np.repeat(np.tile([False, True], len(sizes)), pattern)])
    if strategy in ("hard", "easy"):
        if strategy == "hard":
            return np.sort(np.argpartition(scores, size - keep)[size - keep :])
        return np.sort(np.argpartition(scores, keep - 1)[:keep])
    if strategy == "random":
        return np.sort(rng.choice(size, keep, replace=False))
    return np.sort(np.argsort(scores)[rng.choice(size, keep, replace=False)])


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _peak_copies(fn: Callable[[], Any], size: int) -> float:
    tracemalloc.start()
    try:
        fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak / (8 * size)


def measure(num_examples: int, class_counts: list[int], rounds: int) -> list[dict[str, Any]]:
    """One row per (strategy, classes): seconds of datadiet and the baseline (min of ``rounds``), peak copies."""
    from datadiet import select

    rng = np.random.default_rng(0)
    scores = rng.random(num_examples, dtype=np.float32)
    datamodule = datamodule_of(num_examples, labels=np.zeros(0, dtype=np.int64))
    rows = []
    for classes in [None, *class_counts]:
        labels = None if classes is None else rng.integers(0, classes, num_examples)
        for strategy in STRATEGIES + (("prune hard",) if classes is None else ()):
            if strategy == "prune hard":  # PruningDataModule.prune: its checks, then select
                ours = lambda: datamodule.prune(scores, keep_fraction=KEEP_FRACTION, strategy="hard")  # noqa: E731
            else:
                ours = lambda: select(scores, KEEP_FRACTION, strategy, labels=labels,  # noqa: E731
                                      class_balanced=labels is not None)  # fmt: skip
            theirs = lambda: baseline(strategy.split()[-1], scores, labels)  # noqa: E731
            times: dict[str, list[float]] = {"datadiet": [], "numpy": []}
            for round_index in range(rounds):  # alternating: A B, B A, ...
                pair = [("datadiet", ours), ("numpy", theirs)]
                for name, fn in pair if round_index % 2 == 0 else pair[::-1]:
                    times[name].append(_timed(fn))
            rows.append({
                "strategy": strategy,
                "classes": classes or 0,
                "num_examples": num_examples,
                "datadiet_s": min(times["datadiet"]),
                "numpy_s": min(times["numpy"]),
                "ratio": min(times["datadiet"]) / min(times["numpy"]),
                "datadiet_peak_copies": _peak_copies(ours, num_examples),
                "numpy_peak_copies": _peak_copies(theirs, num_examples),
                "rounds": rounds,
            })  # fmt: skip
            print(f"  selection {strategy} classes={classes}: {rows[-1]['ratio']:.2f}x", flush=True)
    return rows


def figures(rows: list[dict[str, Any]], ratio_target: float, memory_target: float) -> list[tuple[str, str, str]]:
    from benchmarks._timing import verdict

    out = []
    for row in rows:
        tag = f"{row['strategy']}" + (f" class_balanced ({row['classes']:,} classes)" if row["classes"] else "")
        out.append(
            (
                f"select {tag} / numpy",
                f"{row['ratio']:.2f}",
                f"{row['datadiet_s']:.3f} s vs {row['numpy_s']:.3f} s; " + verdict(row["ratio"], ratio_target),
            )
        )
        out.append(
            (
                f"select {tag} peak (float64 copies)",
                f"{row['datadiet_peak_copies']:.2f}",
                f"numpy {row['numpy_peak_copies']:.2f}; " + verdict(row["datadiet_peak_copies"], memory_target),
            )
        )
    return out
