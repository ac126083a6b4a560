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
#: Strategies (the built-ins) that take the scores as given, any float dtype, NaN ranking as +inf.
_RAW_SCORES: set[Strategy] = set()
#: Strategies that also select every class at once: ``(scores, grouping, bounds, num_keep, rng) -> mask``,
#: the same as one call per class (see :func:`select`), without a Python step per class.
_PER_CLASS: dict[Strategy, Callable[..., np.ndarray]] = {}


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


def takes_raw_scores(strategy: Strategy) -> Strategy:
    """Marks a strategy that handles NaN (as +inf) and any float dtype itself, so :func:`select` hands it the
    scores without its float64 copy (the built-ins: the copy is a third of their memory at 10 M examples)."""
    _RAW_SCORES.add(strategy)
    return strategy


def selects_every_class(per_class: Callable[..., np.ndarray]) -> Callable[[Strategy], Strategy]:
    """Gives a strategy a vectorised class-balanced twin (it must keep what one call per class keeps)."""

    def decorator(strategy: Strategy) -> Strategy:
        _PER_CLASS[strategy] = per_class
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
    """``round(keep_fraction * num_examples)`` (half to even), at least one example when there is any."""
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

    A strategy is called with float64 scores in which NaN is +inf, the number to keep and a generator; with
    ``class_balanced`` once per class, in increasing label order, on the class's scores in index order, all
    calls drawing from one generator. The classes are grouped by one stable sort of the labels, so the cost
    does not grow with their number.

    Returns:
        The sorted ``int64`` positions of the kept examples.

    Raises:
        ValueError: bad ``keep_fraction``, unknown ``strategy``, non 1-D scores, labels (or ``exclude``) of the
            wrong length, NaN labels, ``exclude`` covering every example, or a strategy that returned a
            position twice or out of range.
    """
    keep_fraction = validate_keep_fraction(keep_fraction)
    strategy_fn = STRATEGIES.get(strategy)
    scores = np.asarray(scores)
    if scores.ndim != 1:
        raise ValueError(f"`scores` must be 1-D (one value per example), got shape {scores.shape}")
    if strategy_fn in _RAW_SCORES:
        values = scores if scores.dtype.kind == "f" else scores.astype(np.float64)
    else:
        values = np.asarray(scores, dtype=np.float64)
        values = np.where(np.isnan(values), np.inf, values)
    rng = np.random.default_rng(seed)
    allowed = None  # with `exclude`: the examples that may be kept
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
        count = num_to_keep(len(values), keep_fraction)
        if exclude is not None:
            return _select_among(strategy_fn, values, np.flatnonzero(allowed), count, rng, options, strategy)
        kept = np.asarray(strategy_fn(values, count, rng, **options))
        return _sorted_positions(kept, len(values), strategy)
    if labels is None:
        raise ValueError("`class_balanced=True` needs per-example `labels`, got None")
    labels = np.asarray(labels)
    if labels.shape != scores.shape:
        raise ValueError(f"`labels` has shape {labels.shape}, expected {scores.shape} (one label per score)")
    grouping, bounds = class_groups(labels)
    sizes = np.diff(bounds)
    num_keep = np.where(sizes == 0, 0, np.maximum(1, np.minimum(sizes, np.rint(keep_fraction * sizes)))).astype(
        np.int64
    )
    if strategy_fn in _PER_CLASS and not options and exclude is None:
        return np.flatnonzero(_PER_CLASS[strategy_fn](values, grouping, bounds, num_keep, rng))
    chosen = np.zeros(len(values), dtype=bool)
    total = 0
    for start, stop, count in zip(bounds[:-1].tolist(), bounds[1:].tolist(), num_keep.tolist()):
        members = grouping[start:stop]
        if exclude is not None:  # the class keeps `count` of its members, chosen among its allowed ones
            within = _select_among(strategy_fn, values, members[allowed[members]], count, rng, options, strategy)
            chosen[within] = True
            total += len(within)
            continue
        within = np.asarray(strategy_fn(values[members], count, rng, **options))
        _check_positions(within, stop - start, strategy)
        chosen[members[within]] = True
        total += len(within)
    del grouping
    if int(np.count_nonzero(chosen)) != total:
        raise ValueError(f"strategy {strategy!r} returned some position twice")
    return np.flatnonzero(chosen)


def class_groups(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions grouped by class (increasing label, index order inside a class) and the groups' bounds.

    ``grouping[bounds[c]:bounds[c + 1]]`` are the positions of the ``c``-th smallest label. One stable sort;
    integer labels spanning fewer than 65,536 values are sorted as uint16 (a radix sort).

    Raises:
        ValueError: a NaN label (it belongs to no class).
    """
    if labels.dtype.kind == "f" and np.isnan(labels).any():
        raise ValueError(
            f"`labels` has {int(np.isnan(labels).sum())} NaN value(s); class-balanced selection needs a class for "
            "every example"
        )
    if len(labels) and labels.dtype.kind in "iub" and int(labels.max()) - int(labels.min()) < 2**16:
        codes = np.subtract(labels, labels.min(), dtype=np.int64).astype(np.uint16)
        grouping = np.argsort(codes, kind="stable")
        counts = np.bincount(codes)
        counts = counts[counts > 0]
    else:
        grouping = np.argsort(labels, kind="stable")
        ordered = labels[grouping]
        counts = np.diff(np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1], [True]])))
    if len(grouping) < 2**31:
        grouping = grouping.astype(np.int32)  # half of numpy's int64 positions, held through the whole selection
    return grouping, np.concatenate([[0], np.cumsum(counts)])


def _check_positions(kept: np.ndarray, size: int, strategy: str) -> None:
    if kept.size and (kept.dtype.kind not in "iu" or kept.min() < 0 or kept.max() >= size):
        raise ValueError(f"strategy {strategy!r} returned positions outside [0, {size}) or not integers")


def _sorted_positions(kept: np.ndarray, size: int, strategy: str) -> np.ndarray:
    """The strategy's positions as sorted int64, checked: in range, none twice."""
    _check_positions(kept, size, strategy)
    kept = kept.astype(np.int64, copy=False)
    if kept.size > 1 and not np.all(kept[1:] > kept[:-1]):
        kept = np.sort(kept)
        if np.any(kept[1:] == kept[:-1]):
            raise ValueError(f"strategy {strategy!r} returned some position twice")
    return kept


def _select_among(
    strategy_fn: Strategy,
    values: np.ndarray,
    candidates: np.ndarray,
    count: int,
    rng: np.random.Generator,
    options: dict,
    strategy: str,
) -> np.ndarray:
    """``count`` of ``candidates`` (sorted positions) chosen by the strategy, all of them when there are fewer."""
    if count >= len(candidates):
        return candidates.astype(np.int64)
    within = _sorted_positions(
        np.asarray(strategy_fn(values[candidates], count, rng, **options)), len(candidates), strategy
    )
    return candidates[within].astype(np.int64)
