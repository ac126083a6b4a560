"""Coverage-centric coreset selection (CCS, Zheng et al. 2023): stratified sampling over the score range."""

from __future__ import annotations

import numpy as np

from datadiet.selection._ranking import rank_easy_to_hard
from datadiet.selection.registry import register_strategy, takes_raw_scores

def allocate_budget(stratum_sizes: np.ndarray, budget: int) -> np.ndarray:
    """Shares ``budget`` among strata: visited in increasing size, each takes ``min(size, remaining // left)``.

    Small strata are taken whole and what they leave goes to the larger ones (Zheng et al., Alg. 1).
    """
    stratum_sizes = np.asarray(stratum_sizes, dtype=np.int64)
    sizes = stratum_sizes.tolist()  # Python ints: this runs once per class and stratum in class-balanced CCS
    allocation = [0] * len(sizes)
    remaining = int(budget)
    order = np.argsort(stratum_sizes, kind="stable").tolist()
    for visited, stratum in enumerate(order):
        share = remaining // (len(order) - visited)
        allocation[stratum] = min(sizes[stratum], share)
        remaining -= allocation[stratum]
    return np.array(allocation, dtype=np.int64)


def _strata_of(scores: np.ndarray, low: float, high: float, width: float, num_strata: int) -> np.ndarray:
    finite = np.isfinite(scores)
    with np.errstate(invalid="ignore"):
        position = np.floor((np.where(finite, scores, high) - low) / width)
    return np.clip(position, 0, num_strata - 1).astype(np.int64)


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
    return _strata_of(scores, low, high, width, num_strata)


#: Up to this many candidates the strata are computed for all of them; beyond, their bounds are bisected.
_DIRECT = 4096


def stratum_members(scores: np.ndarray, candidates: np.ndarray, num_strata: int) -> list[np.ndarray]:
    """``[candidates[stratify(scores[candidates]) == s] for s in range(num_strata)]`` without one scan per
    stratum, for ``candidates`` ordered easy → hard (NaN as +inf).

    Sorted by score, the candidates run -inf, finite, +inf/NaN. A stratum is a monotone function of a finite
    score (IEEE subtraction, division and floor are monotone), so each stratum is a slice of the finite run,
    whose ends are bisected; -inf, +inf and NaN belong to the last stratum, as in :func:`stratify`.

    Raises:
        ValueError: finite scores spanning more than float64's range (the bin width overflows).
    """
    size = len(candidates)
    if size <= _DIRECT:
        values = scores[candidates].astype(np.float64)
        strata = stratify(np.where(np.isnan(values), np.inf, values), num_strata)
        grouping = np.argsort(strata, kind="stable")
        bounds = np.searchsorted(strata[grouping], np.arange(num_strata + 1))
        return [candidates[grouping[bounds[s] : bounds[s + 1]]] for s in range(num_strata)]

    def values(positions: np.ndarray) -> np.ndarray:
        found = scores[candidates[positions]].astype(np.float64)
        return np.where(np.isnan(found), np.inf, found)

    def first(holds, targets: int = 1) -> np.ndarray:
        """Per target, the first position in [0, size) where ``holds(positions)`` (monotone) is true, else size."""
        low, high = np.zeros(targets, dtype=np.int64), np.full(targets, size, dtype=np.int64)
        while (open_ := low < high).any():
            middle = (low + high) // 2
            true = holds(np.minimum(middle, size - 1)) & open_
            high = np.where(true, middle, high)
            low = np.where(open_ & ~true, middle + 1, low)
        return low

    negative = int(first(lambda p: values(p) > -np.inf)[0])
    finite_end = int(first(lambda p: values(p) == np.inf)[0])
    if finite_end == negative:  # no finite score: one stratum, as `stratify` has it
        return [candidates] + [candidates[:0]] * (num_strata - 1)
    low, high = values(np.array([negative, finite_end - 1]))
    width = (high - low) / num_strata
    if width == 0:
        return [candidates] + [candidates[:0]] * (num_strata - 1)
    if not np.isfinite(width):
        raise ValueError(f"ccs: the finite scores span [{low}, {high}], wider than float64 can divide into strata")
    targets = np.arange(1, num_strata)
    bounds = first(
        lambda p: (p >= negative) & (_strata_of(values(p), low, high, width, num_strata) >= targets), num_strata - 1
    )
    bounds = [negative, *bounds.tolist(), size]
    members = [candidates[bounds[s] : bounds[s + 1]] for s in range(num_strata)]
    if negative:
        members[-1] = np.concatenate([candidates[:negative], members[-1]])
    return members


@takes_raw_scores
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
    order = rank_easy_to_hard(scores, rng)  # easy → hard, ties at random
    members = stratum_members(scores, order[: num_examples - num_dropped], int(num_strata))
    allocation = allocate_budget(np.array([len(group) for group in members]), num_keep)
    # `choice(len(a))` then `a[...]` draws exactly what `choice(a)` draws, with less checking per call
    kept = [
        members[stratum][rng.choice(len(members[stratum]), size=count, replace=False)]
        for stratum, count in enumerate(allocation.tolist())
        if count
    ]
    return np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
