"""Dynamic pruning's per-epoch choices as pure functions of the scores (the rules of ``DynamicPruning``).

Each rule returns ``(keep, weights)`` over the candidate examples: a boolean mask of the examples the
epoch presents and each one's gradient weight. Scores are each example's loss at its last presentation,
NaN for one never presented. Random draws come from the generator passed in, never NumPy's global one.
"""

from __future__ import annotations

import math
import warnings

import numpy as np


def _count(fraction: float, total: int) -> int:
    """``⌊fraction · total⌋``, free of float drift (``0.3 * 10`` is ``2.9999999999999996``... or 3)."""
    return math.floor(round(fraction * total, 6))


def infobatch_subset(scores: np.ndarray, prune_ratio: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """InfoBatch (Qin et al., ICLR 2024): skip a random share of the below-mean examples, re-weight the rest.

    Args:
        scores: each example's loss at its last presentation; NaN for an example never presented.
        prune_ratio: share ``r`` of the below-mean examples to skip, in [0, 1).
        rng: draws the skipped examples.

    Returns:
        ``(keep, weights)``: a boolean mask, and ``1 / (1 - r)`` for the kept below-mean examples, 1 elsewhere.
        Of the ``n`` examples whose score is below the mean of the presented ones, ``⌊(1 - r)·n⌋`` are kept
        (InfoBatch's count); examples never presented are always kept.
    """
    seen = np.isnan(scores)
    np.logical_not(seen, out=seen)
    if prune_ratio == 0 or not seen.any():
        return np.ones(len(scores), dtype=bool), np.ones(len(scores), dtype=np.float32)
    # every example seen (all epochs after the first): the mean of the array itself, no copy of it
    mean = (scores if seen.all() else scores[seen]).mean()
    del seen
    below = np.flatnonzero(scores < mean)  # NaN (never presented) is never below
    if len(scores) < 2**31:
        below = below.astype(np.int32)  # `choice` draws the same positions whatever the array holds
    skipped = rng.choice(below, size=len(below) - _count(1.0 - prune_ratio, len(below)), replace=False)
    # the masks only now: the draw above holds an int64 copy of `below`'s positions at its peak
    keep = np.ones(len(scores), dtype=bool)
    keep[skipped] = False
    del skipped
    weights = np.ones(len(scores), dtype=np.float32)
    weights[below[keep[below]]] = 1.0 / (1.0 - prune_ratio)
    return keep, weights


def seta_subset(
    scores: np.ndarray,
    prune_ratio: float,
    rng: np.random.Generator,
    step: int,
    num_groups: int = 5,
    window_scale: float = 0.9,
) -> tuple[np.ndarray, np.ndarray]:
    """SeTa (Zhou et al., CVPR 2025): a random sample, grouped by loss, of which a sliding window is kept.

    1. A uniform random ``⌊(1 - r)·N⌋`` of the ``N`` examples (``rng.choice(N, size, replace=False)``).
    2. Their scores are split into ``num_groups`` groups by 1-D k-means, ordered by centre (easy → hard).
    3. At pruning epoch ``step`` the window of ``w = round(num_groups · window_scale)`` consecutive groups
       starting at group ``step mod (num_groups - w + 1)`` is kept (step 0: every group): the window slides
       from easy to hard, cyclically. Sampled examples never presented are always kept.

    No re-weighting (every weight is 1), as in SeTa. SeTa's "partial annealing" epochs present the random
    sample alone: call with ``step=None``.

    Args:
        scores: each example's loss at its last presentation; NaN for an example never presented.
        prune_ratio: share ``r`` of the examples left out of the random sample, in [0, 1).
        rng: draws the sample.
        step: which pruning epoch this is (0 first); ``None`` for an annealing epoch (sample only).
        num_groups: k-means groups.
        window_scale: share of the groups in the window, in (0, 1].
    """
    num_examples = len(scores)
    keep = np.zeros(num_examples, dtype=bool)
    weights = np.ones(num_examples, dtype=np.float32)
    sample = np.sort(rng.choice(num_examples, size=_count(1.0 - prune_ratio, num_examples), replace=False))
    seen = sample[~np.isnan(scores[sample])]
    keep[sample[np.isnan(scores[sample])]] = True
    values = scores[seen]
    if step is None or step == 0 or len(np.unique(values)) < num_groups:  # too few distinct losses to group
        keep[seen] = True
        return keep, weights
    from sklearn.cluster import KMeans

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's notes on threads and n_init
        fitted = KMeans(n_clusters=num_groups, n_init=1, random_state=0).fit(values[:, None].astype(np.float64))
    rank = np.empty(num_groups, dtype=np.int64)
    rank[np.argsort(fitted.cluster_centers_[:, 0], kind="stable")] = np.arange(num_groups)
    window = max(1, round(num_groups * window_scale))
    start = step % (num_groups - window + 1)
    group = rank[fitted.labels_]
    keep[seen[(group >= start) & (group < start + window)]] = True
    return keep, weights
