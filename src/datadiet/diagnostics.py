"""Diagnostics of a score table: how the recorded scores rank the examples relative to each other."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from scipy.stats import spearmanr

from datadiet.files import atomic_write_text
from datadiet.store import ScoreTable


def rank_correlation(first: np.ndarray, second: np.ndarray) -> float:
    """Spearman's ρ over the examples where both values are not NaN (+inf ranks as the largest); NaN when
    fewer than two such examples, or one score is constant there."""
    both = ~(np.isnan(first) | np.isnan(second))
    if both.sum() < 2 or np.ptp(first[both]) == 0 or np.ptp(second[both]) == 0:
        return float("nan")  # undefined for a constant score (e.g. variability after one epoch)
    rho = spearmanr(first[both], second[both]).statistic
    return float(rho)


def score_correlations(table: ScoreTable, names: Optional[Sequence[str]] = None) -> tuple[list[str], np.ndarray]:
    """The Spearman rank correlation matrix between the table's (oriented) scores.

    Each pair uses the examples where neither score is NaN (``scipy.stats.spearmanr``); +inf ranks as
    the largest value. Scores are oriented larger = harder, so agreeing scores correlate positively.

    Returns:
        ``(names, matrix)`` with ``matrix[i, j]`` = ρ(names[i], names[j]).
    """
    names = list(names or table.names)
    matrix = np.eye(len(names))
    for i, first in enumerate(names):
        for j in range(i + 1, len(names)):
            matrix[i, j] = matrix[j, i] = rank_correlation(table[first], table[names[j]])
    return names, matrix


def format_correlations(names: Sequence[str], matrix: np.ndarray) -> str:
    """The matrix as an aligned text table (two decimals)."""
    width = max(8, *(len(name) for name in names)) + 1
    lines = [" " * width + "".join(f"{name:>{width}}" for name in names)]
    for name, row in zip(names, matrix):
        lines.append(f"{name:<{width}}" + "".join(f"{value:>{width}.2f}" for value in row))
    return "\n".join(lines)


def save_correlations(
    table: ScoreTable, path: str | os.PathLike, loggers: Sequence[Any] = (), names: Optional[Sequence[str]] = None
) -> tuple[list[str], np.ndarray]:
    """Computes :func:`score_correlations`, writes it as CSV (atomically) and logs each pair.

    Loggers get ``diagnostics/spearman/<a>__<b>`` for every pair ``a < b`` through ``log_metrics``.
    """
    names, matrix = score_correlations(table, names)
    rows = ["score," + ",".join(names)]
    rows += [name + "," + ",".join(f"{value:.6g}" for value in row) for name, row in zip(names, matrix)]
    atomic_write_text(Path(path), "\n".join(rows) + "\n")
    metrics = {
        f"diagnostics/spearman/{names[i]}__{names[j]}": float(matrix[i, j])
        for i in range(len(names))
        for j in range(i + 1, len(names))
        if np.isfinite(matrix[i, j])
    }
    for logger in loggers:
        if metrics:
            logger.log_metrics(metrics)
    return names, matrix


def load_correlations(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Reads a CSV written by :func:`save_correlations`."""
    lines = Path(path).read_text().strip().splitlines()
    names = lines[0].split(",")[1:]
    matrix = np.array([[float(v) for v in line.split(",")[1:]] for line in lines[1:]])
    return names, matrix
