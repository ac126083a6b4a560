"""The basic strategies: keep the hardest, the easiest, or a uniform random subset."""

from __future__ import annotations

import numpy as np

from functools import partial

from datadiet.selection._ranking import keep_extreme, keep_extreme_per_class, rank_easy_to_hard  # noqa: F401
from datadiet.selection.registry import register_strategy, selects_every_class, takes_raw_scores


@selects_every_class(partial(keep_extreme_per_class, hardest=True))
@takes_raw_scores
@register_strategy("hard")
def keep_hard(scores: np.ndarray, num_keep: int, rng: np.random.Generator) -> np.ndarray:
    """Keeps the ``num_keep`` hardest examples (largest scores) — the large-data regime."""
    return keep_extreme(scores, num_keep, rng, hardest=True)


@selects_every_class(partial(keep_extreme_per_class, hardest=False))
@takes_raw_scores
@register_strategy("easy")
def keep_easy(scores: np.ndarray, num_keep: int, rng: np.random.Generator) -> np.ndarray:
    """Keeps the ``num_keep`` easiest examples (smallest scores) — the small-data regime."""
    return keep_extreme(scores, num_keep, rng, hardest=False)


@takes_raw_scores
@register_strategy("random", needs_scores=False)
def keep_random(scores: np.ndarray, num_keep: int, rng: np.random.Generator) -> np.ndarray:
    """Keeps a uniform random subset, ignoring the scores — the baseline every metric must beat."""
    return rng.choice(len(scores), size=num_keep, replace=False)
