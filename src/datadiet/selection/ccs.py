"""Coverage-centric coreset selection (CCS, Zheng et al. 2023): stratified sampling over the score range."""

from __future__ import annotations

import numpy as np

from datadiet.selection.registry import register_strategy


def allocate_budget(stratum_sizes: np.ndarray, budget: int) -> np.ndarray:
    """Shares ``budget`` among strata: visited in increasing size, each takes ``min(size, remaining // left)``.

    Small strata are taken whole and what they leave goes to the larger ones (Zheng et al., Alg. 1).
    """
    stratum_sizes = np.asarray(stratum_sizes, dtype=np.int64)
    allocation = np.zeros(len(stratum_sizes), dtype=np.int64)
    remaining = int(budget)
    order = np.argsort(stratum_sizes, kind="stable")
    for visited, stratum in enumerate(order):
        share = remaining // (len(order) - visited)
        allocation[stratum] = min(int(stratum_sizes[stratum]), share)
        remaining -= allocation[stratum]
    return allocation


def stratify(scores: np.ndarray, num_strata: int) -> np.ndarray:
    """Stratum of each score: ``num_strata`` equal-width bins over ``[min, max]`` of the finite scores
    (the maximum goes to the last bin; +inf, e.g. never-learned examples, too)."""
    finite = np.isfinite(scores)
    if not finite.any():
        return np.zeros(len(scores), dtype=np.int64)
    low, high = scores[finite].min(), scores[finite].max()
    width = (high - low) / num_strata
    if width == 0:
        return np.zeros(len(scores), dtype=np.int64)
    with np.errstate(invalid="ignore"):
        position = np.floor((np.where(finite, scores, high) - low) / width)
    return np.clip(position, 0, num_strata - 1).astype(np.int64)


@register_strategy("ccs")
def coverage_centric(
    scores: np.ndarray, num_keep: int, rng: np.random.Generator, beta: float = 0.0, num_strata: int = 50
) -> np.ndarray:
    """Coverage-centric selection: drop the ``beta`` hardest, stratify, sample evenly across strata.

    1. Drop the ``round(beta · N)`` hardest examples (largest scores; ties at random) — β is the
       "hard cutoff" of the paper. If fewer than ``num_keep`` would remain, fewer are dropped.
    2. Split the rest into ``num_strata`` equal-width strata of the score range.
    3. Give the budget to strata in increasing order of size, each an equal share of what is left
       (:func:`allocate_budget`), and sample uniformly without replacement inside each stratum.

    Args:
        scores: difficulty, larger = harder.
        num_keep: budget.
        rng: random generator.
        beta: fraction of the hardest examples dropped, in ``[0, 1)``.
        num_strata: number of strata ``k`` (the paper uses 50).

    Raises:
        ValueError: ``beta`` outside ``[0, 1)`` or ``num_strata`` < 1.
    """
    if not 0.0 <= float(beta) < 1.0:
        raise ValueError(f"`beta` (fraction of hardest examples dropped) must be in [0, 1), got {beta}")
    if isinstance(num_strata, bool) or not isinstance(num_strata, (int, np.integer)) or num_strata < 1:
        raise ValueError(f"`num_strata` must be a positive integer, got {num_strata!r}")
    num_examples = len(scores)
    num_dropped = min(int(round(beta * num_examples)), num_examples - num_keep)
    order = np.lexsort((rng.random(num_examples), scores))  # easy → hard, ties at random
    candidates = order[: num_examples - num_dropped]
    strata = stratify(scores[candidates], int(num_strata))
    sizes = np.bincount(strata, minlength=int(num_strata))
    allocation = allocate_budget(sizes, num_keep)
    kept = [
        rng.choice(candidates[strata == stratum], size=count, replace=False)
        for stratum, count in enumerate(allocation)
        if count
    ]
    return np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
