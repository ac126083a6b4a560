"""Scale, storage: ``ScoreTable.save`` and ``ScoreTable.load`` of a probe's table at N examples.

The table is what ``DifficultyCallback`` builds with its default scores: EL2N, margin (oriented = −raw) and
forgetting (a raw count beside the oriented score) from float32 statistics, and int64 labels. Save and load
alternate; each figure is the minimum of the rounds. MB/s counts the table's bytes in memory (what the user
holds: ``ScoreTable.nbytes``), megabytes of 10^6 bytes; the save includes the fsync.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import Any

import numpy as np


def probe_like_table(num_examples: int) -> Any:
    from datadiet import ScoreTable

    rng = np.random.default_rng(0)
    el2n = rng.random(num_examples, dtype=np.float32) * np.float32(1.4)
    margin = rng.normal(size=num_examples).astype(np.float32)
    count = rng.integers(0, 5, num_examples).astype(np.float32)
    forgetting = np.where(rng.random(num_examples) < 0.05, np.float32(np.inf), count)
    return ScoreTable(
        {"el2n": el2n, "margin": -margin, "forgetting": forgetting},
        raw={"el2n": el2n, "margin": margin, "forgetting": count},
        labels=rng.integers(0, 10, num_examples),
        metadata={"num_examples": num_examples},
    )


def table_bytes(table: Any) -> int:
    if hasattr(table, "nbytes"):
        return int(table.nbytes)
    # an older ScoreTable (float64 columns and a raw copy of each): what it holds
    arrays = [*table._scores.values(), *table._raw.values()]
    return sum(a.nbytes for a in arrays) + (0 if table.labels is None else table.labels.nbytes)


def measure(num_examples: int, rounds: int) -> dict[str, Any]:
    from datadiet import ScoreTable

    table = probe_like_table(num_examples)
    size = table_bytes(table)
    folder = tempfile.mkdtemp(prefix="datadiet-scale-")
    path = os.path.join(folder, "scores.npz")
    saves, loads = [], []
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            table.save(path)
            saves.append(time.perf_counter() - start)
            start = time.perf_counter()
            loaded = ScoreTable.load(path)
            loads.append(time.perf_counter() - start)
            del loaded
        file_bytes = os.path.getsize(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "num_examples": num_examples,
        "table_bytes": size,
        "file_bytes": file_bytes,
        "save_s": min(saves),
        "load_s": min(loads),
        "save_mb_per_s": size / 1e6 / min(saves),
        "load_mb_per_s": size / 1e6 / min(loads),
        "rounds": rounds,
    }


def figures(row: dict[str, Any], target: float) -> list[tuple[str, str, str]]:
    from benchmarks._timing import verdict

    tag = f"{row['table_bytes'] / row['num_examples']:.0f} B/example in memory, file {row['file_bytes'] / 1e6:.0f} MB"
    return [
        (
            "ScoreTable.save MB/s",
            f"{row['save_mb_per_s']:.0f}",
            f"{row['save_s']:.2f} s, {tag}; " + verdict(row["save_mb_per_s"], target, at_most=False),
        ),
        (
            "ScoreTable.load MB/s",
            f"{row['load_mb_per_s']:.0f}",
            f"{row['load_s']:.2f} s; " + verdict(row["load_mb_per_s"], target, at_most=False),
        ),
    ]
