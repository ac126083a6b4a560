"""The registry of selection strategies and the `select` entry point used everywhere."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from datadiet.registry import Registry

#: A strategy maps (scores oriented larger = harder, number to keep, rng, **options) to kept positions.
Strategy = Callable[..., np.ndarray]

STRATEGIES: Registry[Strategy] = Registry("strategy")

#: Names of the registered strategies that ignore the scores (no probe is needed for them).
_SCORE_FREE: set[str] = set()


def register_strategy(name: str, needs_scores: bool = True) -> Callable[[Strategy], Strategy]:
    """Registers a selection strategy under ``name`` (see :func:`select` for the contract).

    Args:
        name: the strategy's name.
        needs_scores: ``False`` for a strategy that ignores the scores (``random``): the app then runs
            no probe for it and :func:`needs_scores` says so.
    """
    if not isinstance(needs_scores, bool):
        raise TypeError(f"`needs_scores` must be True or False, got {needs_scores!r}")
    register = STRATEGIES.register(name)

    def decorator(strategy: Strategy) -> Strategy:
        register(strategy)
        if not needs_scores:
            _SCORE_FREE.add(name)
        return strategy

    return decorator


def needs_scores(strategy: str) -> bool:
    """Whether the registered ``strategy`` reads the scores (``False``: it needs no probe).

    Raises:
        ValueError: an unknown strategy (the message lists the registered ones).
    """
    STRATEGIES.get(strategy)
    return strategy not in _SCORE_FREE


def list_strategies() -> list[str]:
    """Names of all registered selection strategies."""
    return STRATEGIES.names()


def num_to_keep(num_examples: int, keep_fraction: float) -> int:
    """``round(keep_fraction * num_examples)``, at least one example when there is any."""
    if num_examples == 0:
        return 0
    return max(1, min(num_examples, int(round(keep_fraction * num_examples))))


def validate_keep_fraction(keep_fraction: float) -> float:
    if isinstance(keep_fraction, bool) or not isinstance(keep_fraction, (int, float, np.floating, np.integer)):
        raise TypeError(f"`keep_fraction` must be a number in (0, 1], got {keep_fraction!r}")
    if not (0.0 < float(keep_fraction) <= 1.0) or np.isnan(keep_fraction):
        raise ValueError(f"`keep_fraction` must be in (0, 1], got {keep_fraction}")
    return float(keep_fraction)


def select(
    scores: np.ndarray,
    keep_fraction: float,
    strategy: str = "hard",
    *,
    labels: Optional[np.ndarray] = None,
    class_balanced: bool = False,
    seed: int = 0,
    exclude: Optional[np.ndarray] = None,
    **options,
) -> np.ndarray:
    """Chooses which examples to keep.

    Args:
        scores: 1-D per-example difficulty, oriented so that larger = harder. NaN (never seen by the
            probe) ranks as hardest, so ``hard`` keeps and ``easy`` drops unseen examples.
        keep_fraction: fraction of examples to keep, in (0, 1].
        strategy: a registered strategy name (``hard``, ``easy``, ``random``, ... see
            :func:`list_strategies`).
        labels: per-example class labels; required when ``class_balanced``.
        class_balanced: keep the same fraction of every class, so no class vanishes.
        seed: seeds tie-breaking and random choices; the same seed gives the same subset.
        exclude: a boolean mask of examples never kept (e.g. flagged as mislabelled). ``keep_fraction``
            stays a share of *all* examples (the compute budget), chosen among the others; when fewer
            remain, all of them are kept. With ``class_balanced`` each class keeps ``keep_fraction`` of
            its members, chosen among its non-excluded ones.
        **options: passed to the strategy.

    Returns:
        The sorted ``int64`` positions of the kept examples.

    Raises:
        ValueError: bad ``keep_fraction``, unknown ``strategy``, non 1-D scores, labels or ``exclude`` of
            the wrong length, or ``exclude`` covering every example.
    """
    keep_fraction = validate_keep_fraction(keep_fraction)
    strategy_fn = STRATEGIES.get(strategy)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"`scores` must be 1-D (one value per example), got shape {scores.shape}")
    scores = np.where(np.isnan(scores), np.inf, scores)
    rng = np.random.default_rng(seed)
    allowed = np.ones(len(scores), dtype=bool)
    if exclude is not None:
        exclude = np.asarray(exclude)
        if exclude.shape != scores.shape or exclude.dtype != np.bool_:
            raise ValueError(
                f"`exclude` must be a boolean mask with one entry per score {scores.shape}, got {exclude.dtype} "
                f"{exclude.shape}"
            )
        if exclude.all():
            raise ValueError(f"`exclude` covers all {len(scores)} examples: there is nothing left to select from")
        allowed = ~exclude
    if not class_balanced:
        return _select_among(strategy_fn, scores, np.flatnonzero(allowed), num_to_keep(len(scores), keep_fraction),
                             rng, options)
    if labels is None:
        raise ValueError("`class_balanced=True` needs per-example `labels`, got None")
    labels = np.asarray(labels)
    if labels.shape != scores.shape:
        raise ValueError(f"`labels` has shape {labels.shape}, expected {scores.shape} (one label per score)")
    kept_parts = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = num_to_keep(len(members), keep_fraction)
        kept_parts.append(_select_among(strategy_fn, scores, members[allowed[members]], count, rng, options))
    return np.sort(np.concatenate(kept_parts)).astype(np.int64)


def _select_among(
    strategy_fn: Strategy, scores: np.ndarray, candidates: np.ndarray, count: int, rng: np.random.Generator,
    options: dict,
) -> np.ndarray:
    """``count`` of ``candidates`` (positions) chosen by the strategy, all of them when there are fewer."""
    if count >= len(candidates):
        return np.sort(candidates).astype(np.int64)
    within = strategy_fn(scores[candidates], count, rng, **options)
    return np.sort(candidates[np.asarray(within, dtype=np.int64)]).astype(np.int64)
