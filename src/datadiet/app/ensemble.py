"""Multi-seed probes: average the score tables of K probe seeds and record how stable each ranking is.

``probe.seeds=K`` in the app trains K probes one after the other (seeds ``seed, seed+1, …``), saves each
table under ``probe_seed{k}/`` and the average as ``scores.npz``. Tables from a Hydra multirun
(``datadiet -m seed=0,1,2 …``) can be averaged afterwards with :func:`average_table_files`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from datadiet.diagnostics import rank_correlation
from datadiet.store import ScoreTable


def seed_correlations(values: Sequence[np.ndarray]) -> np.ndarray:
    """K × K Spearman matrix between the seeds' values of one score."""
    count = len(values)
    matrix = np.eye(count)
    for i in range(count):
        for j in range(i + 1, count):
            matrix[i, j] = matrix[j, i] = rank_correlation(values[i], values[j])
    return matrix


def _mean(stack: np.ndarray) -> np.ndarray:
    # Mean over seeds that saw the example; +inf (never learned) stays +inf.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "mean of empty slice" where no seed saw it
        return np.nanmean(stack, axis=0, dtype=np.float64)  # float32 scores averaged in float64, as before


def average_tables(tables: Sequence[ScoreTable]) -> ScoreTable:
    """The per-example mean of every score (and raw value) over the tables of K probe seeds.

    NaN (a seed that did not see the example) is ignored; the mean is NaN only if no seed saw it.
    ``metadata["seed_spearman"][name]`` is the K × K Spearman matrix between seeds and
    ``metadata["seed_spearman_mean"][name]`` the mean off-diagonal value — how stable the ranking is.

    Raises:
        ValueError: no tables, or tables with different scores or lengths.
    """
    if not tables:
        raise ValueError("`average_tables` needs at least one table")
    names = tables[0].names
    for table in tables[1:]:
        if table.names != names or table.num_examples != tables[0].num_examples:
            raise ValueError(
                f"tables differ: {table.names} over {table.num_examples} examples vs {names} over {tables[0].num_examples}"
            )
    scores, raw, matrices, means = {}, {}, {}, {}
    for name in names:
        per_seed = [table[name] for table in tables]
        scores[name] = _mean(np.stack(per_seed))
        raw[name] = _mean(np.stack([table.raw(name) for table in tables]))
        matrix = seed_correlations(per_seed)
        matrices[name] = matrix.tolist()
        off_diagonal = matrix[~np.eye(len(tables), dtype=bool)]
        means[name] = (
            float(np.nanmean(off_diagonal)) if off_diagonal.size and not np.isnan(off_diagonal).all() else None
        )
    metadata = dict(tables[0].metadata)
    metadata.update(
        {
            "num_seeds": len(tables),
            "seed_spearman": matrices,
            "seed_spearman_mean": means,
            "seed_tables": [table.metadata.get("probe_fingerprint") for table in tables],
        }
    )
    return ScoreTable(scores, raw=raw, labels=tables[0].labels, metadata=metadata)


def average_table_files(paths: Sequence[str | os.PathLike]) -> ScoreTable:
    """:func:`average_tables` over saved tables (e.g. ``multirun/*/*/scores.npz``)."""
    return average_tables([ScoreTable.load(path) for path in paths])


def run_probe_seeds(
    run_probe: Callable[..., tuple[ScoreTable, dict[str, Any]]],
    plan: Any,
    datamodule: Any,
    loggers: list,
    output_dir: Path,
    provenance_fn: Optional[Callable[[Any], dict[str, Any]]] = None,
) -> tuple[ScoreTable, dict[str, Any]]:
    """The app's probe step with ``plan.probe.seeds`` (K) probes.

    Probe k runs ``run_probe`` with the plan of ``plan.probe_seed(k)`` (seed ``seed + k``, ``probe.seeds = 1``,
    so its cache key is that of a single-seed run with that seed) in ``output_dir/probe_seed{k}``; costs are
    summed, and the averaged table (provenance from ``provenance_fn(plan)``) is saved as
    ``output_dir/scores.npz`` on rank 0.
    """
    import lightning.pytorch as pl

    seeds = plan.probe.seeds
    if seeds == 1:
        return run_probe(plan, datamodule, loggers, output_dir)
    tables, total = [], {}
    for k in range(seeds):
        seed_plan = plan.probe_seed(k)
        pl.seed_everything(seed_plan.seed, workers=True)
        table, costs = run_probe(seed_plan, datamodule, loggers, Path(output_dir) / f"probe_seed{k}")
        tables.append(table)
        for key, value in costs.items():
            total[key] = total.get(key, 0) + value if isinstance(value, (int, float)) else value
    averaged = average_tables(tables)
    if provenance_fn is not None:
        averaged.metadata.update(provenance_fn(plan))
    averaged.metadata["seeds"] = [plan.seed + k for k in range(seeds)]
    if pl.utilities.rank_zero.rank_zero_only.rank == 0:
        averaged.save(Path(output_dir) / "scores.npz")
    return averaged, total
