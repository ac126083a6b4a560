"""The basic strategies: keep the hardest, the easiest, or a uniform random subset."""

from __future__ import annotations

import numpy as np

from datadiet.selection.registry import register_strategy


def rank_easy_to_hard(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Positions sorted from easiest to hardest; ties (e.g. equal forgetting counts) broken at random."""
    tie_breaker = rng.random(len(scores))
    return np.lexsort((tie_breaker, scores))


@register_strategy("hard")
def keep_hard(scores: np.ndarray, num_keep: int, rng: np.random.Generator) -> np.ndarray:
    """Keeps the ``num_keep`` hardest examples (largest scores) — the large-data regime."""
    return rank_easy_to_hard(scores, rng)[len(scores) - num_keep :]


@register_strategy("easy")
def keep_easy(scores: np.ndarray, num_keep: int, rng: np.random.Generator) -> np.ndarray:
    """Keeps the ``num_keep`` easiest examples (smallest scores) — the small-data regime."""
    return rank_easy_to_hard(scores, rng)[:num_keep]


@register_strategy("random", needs_scores=False)
def keep_random(scores: np.ndarray, num_keep: int, rng: np.random.Generator) -> np.ndarray:
    """Keeps a uniform random subset, ignoring the scores — the baseline every metric must beat."""
    return rng.choice(len(scores), size=num_keep, replace=False)
