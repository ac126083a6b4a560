"""The fast selection paths keep exactly what the plain lexsort-and-loop implementation keeps.

``reference_select`` below is the straightforward implementation (as datadiet had it before the fast
paths): NaN → +inf, ``lexsort((rng.random(n), scores))`` for the ranking, one ``labels == label`` scan and
one strategy call per class, one boolean scan per CCS stratum. The tests shrink the fast paths' thresholds
(``SMALL``, chunk sizes) so that small arrays with many ties, NaN, ±inf, -0.0 and many classes go through
every branch.
"""

import numpy as np
import pytest

from datadiet.selection import _ranking, ccs, select


def _reference_rank(scores, rng):
    return np.lexsort((rng.random(len(scores)), scores))


def _reference_strategy(name, scores, num_keep, rng, beta=0.0, num_strata=50):
    if name == "hard":
        return _reference_rank(scores, rng)[len(scores) - num_keep :]
    if name == "easy":
        return _reference_rank(scores, rng)[:num_keep]
    if name == "random":
        return rng.choice(len(scores), size=num_keep, replace=False)
    num_examples = len(scores)
    num_dropped = min(int(round(beta * num_examples)), num_examples - num_keep)
    candidates = _reference_rank(scores, rng)[: num_examples - num_dropped]
    values = scores[candidates]
    finite = np.isfinite(values)
    strata = np.zeros(len(values), dtype=np.int64)
    if finite.any():
        low, high = values[finite].min(), values[finite].max()
        width = (high - low) / num_strata
        if width != 0:
            position = np.floor((np.where(finite, values, high) - low) / width)
            strata = np.clip(position, 0, num_strata - 1).astype(np.int64)
    allocation = ccs.allocate_budget(np.bincount(strata, minlength=num_strata), num_keep)
    kept = [rng.choice(candidates[strata == s], size=c, replace=False) for s, c in enumerate(allocation) if c]
    return np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)


def _num_to_keep(n, fraction):
    return 0 if n == 0 else max(1, min(n, int(round(fraction * n))))


def reference_select(scores, keep_fraction, strategy, labels=None, class_balanced=False, seed=0, **options):
    scores = np.asarray(scores, dtype=np.float64)
    scores = np.where(np.isnan(scores), np.inf, scores)
    rng = np.random.default_rng(seed)
    if not class_balanced:
        kept = _reference_strategy(strategy, scores, _num_to_keep(len(scores), keep_fraction), rng, **options)
        return np.sort(np.asarray(kept, dtype=np.int64))
    parts = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        within = _reference_strategy(
            strategy, scores[members], _num_to_keep(len(members), keep_fraction), rng, **options
        )
        parts.append(members[np.asarray(within, dtype=np.int64)])
    return np.sort(np.concatenate(parts)).astype(np.int64)


@pytest.fixture
def small_thresholds(monkeypatch):
    """Fast paths from 16 examples on, tie-breaker draws 7 at a time, class blocks of 45 examples, strata bisected above 20."""
    monkeypatch.setattr(_ranking, "SMALL", 16)
    monkeypatch.setattr(_ranking, "_CHUNK", 7)
    monkeypatch.setattr(_ranking, "BLOCK", 45)
    monkeypatch.setattr(
        ccs, "_DIRECT", 20
    )  # strata bounds bisected from 20 candidates on  # classes ranked 45 examples at a time, larger ones alone


def _cases():
    rng = np.random.default_rng(0)
    size = 600
    few_values = rng.integers(0, 6, size).astype(np.float64)  # forgetting-like: huge runs of ties
    few_values[rng.choice(size, 40, replace=False)] = np.nan
    continuous = rng.random(size).astype(np.float32)  # float32: the packed stable sort
    continuous[::37] = continuous[1::37][: len(continuous[::37])]  # a few exact ties
    mixed = np.round(rng.normal(size=size), 1)  # float64, not float32 values: the argsort path
    mixed[rng.choice(size, 30, replace=False)] = np.inf
    mixed[rng.choice(size, 10, replace=False)] = -np.inf
    mixed[rng.choice(size, 10, replace=False)] = -0.0
    mixed[rng.choice(size, 10, replace=False)] = np.nan
    constant = np.full(size, 0.25)
    return {"few_values": few_values, "continuous32": continuous, "mixed": mixed, "constant": constant}


CASES = _cases()


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("strategy", ["hard", "easy", "random", "ccs"])
@pytest.mark.parametrize("class_balanced", [False, True])
def test_same_kept_sets_as_the_reference(small_thresholds, case, strategy, class_balanced):
    scores = CASES[case]
    labels = np.random.default_rng(1).integers(0, 40, len(scores)) * 3 - 7  # 40 classes, negative labels too
    labels[100:300] = 500  # one class larger than a block
    options = {"beta": 0.1, "num_strata": 7} if strategy == "ccs" else {}
    for keep_fraction in (0.013, 0.3, 0.5, 0.97, 1.0):
        for seed in (0, 5):
            expected = reference_select(scores, keep_fraction, strategy, labels, class_balanced, seed, **options)
            kept = select(
                scores, keep_fraction, strategy, labels=labels, class_balanced=class_balanced, seed=seed, **options
            )
            assert kept.dtype == np.int64
            np.testing.assert_array_equal(kept, expected, err_msg=f"{case} {strategy} {keep_fraction} {seed}")


@pytest.mark.parametrize("strategy", ["hard", "easy", "ccs"])
def test_same_kept_sets_at_default_thresholds(strategy):
    # above SMALL with the real chunk sizes, many classes of a few examples and a few large ones
    rng = np.random.default_rng(2)
    scores = np.round(rng.random(6000), 3)
    labels = np.concatenate([np.repeat(np.arange(1000), 3), rng.integers(5000, 5003, 3000)])
    for class_balanced in (False, True):
        expected = reference_select(scores, 0.4, strategy, labels, class_balanced, seed=3)
        kept = select(scores, 0.4, strategy, labels=labels, class_balanced=class_balanced, seed=3)
        np.testing.assert_array_equal(kept, expected)


def test_string_and_wide_integer_labels_group_like_unique():
    scores = np.random.default_rng(3).random(300)
    for labels in (np.array(["cat", "dog", "emu"])[np.arange(300) % 3], (np.arange(300) % 4) * 10**9):
        np.testing.assert_array_equal(
            select(scores, 0.3, "hard", labels=labels, class_balanced=True, seed=1),
            reference_select(scores, 0.3, "hard", labels, True, seed=1),
        )


def test_nan_labels_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        select(np.ones(4), 0.5, "hard", labels=np.array([0.0, 1.0, np.nan, 1.0]), class_balanced=True)


@pytest.mark.parametrize("make", [np.random.PCG64, np.random.MT19937])
def test_draws_at_and_skip_draws_follow_the_stream(monkeypatch, make):
    monkeypatch.setattr(_ranking, "_CHUNK", 10)
    reference, rng = np.random.Generator(make(4)), np.random.Generator(make(4))
    for generator in (reference, rng):
        generator.integers(0, 7, dtype=np.int32)  # leaves half of a 64-bit draw buffered for the next one
    full = reference.random(95)
    positions = np.array([0, 3, 41, 42, 90])
    np.testing.assert_array_equal(_ranking.draws_at(rng, positions, 95), full[positions])
    # the generator ends where 95 draws leave it, buffered 32 bits included
    assert rng.integers(0, 2**31, dtype=np.int32) == reference.integers(0, 2**31, dtype=np.int32)
    assert rng.random() == reference.random()


def test_a_strategy_returning_a_position_twice_is_refused():
    from datadiet.selection import register_strategy
    from datadiet.selection.registry import STRATEGIES

    @register_strategy("twice_for_test")
    def twice(scores, num_keep, rng):
        return np.zeros(num_keep, dtype=np.int64)

    try:
        with pytest.raises(ValueError, match="twice_for_test.*twice"):
            select(np.arange(10.0), 0.3, "twice_for_test")
        with pytest.raises(ValueError, match="twice_for_test.*twice"):
            select(np.arange(10.0), 0.5, "twice_for_test", labels=np.arange(10) % 2, class_balanced=True)
    finally:
        STRATEGIES._entries.pop("twice_for_test")
