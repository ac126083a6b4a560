"""Selection strategies against hand-worked cases."""

import numpy as np
import pytest

from datadiet.selection import list_strategies, num_to_keep, select

SCORES = np.array([0.5, 0.1, 0.9, 0.3, 0.7, 0.2])  # ranking easy -> hard: 1, 5, 3, 0, 4, 2


def test_hard_keeps_largest():
    assert select(SCORES, 0.5, "hard").tolist() == [0, 2, 4]


def test_easy_keeps_smallest():
    assert select(SCORES, 0.5, "easy").tolist() == [1, 3, 5]


def test_random_is_seeded_and_ignores_scores():
    a = select(SCORES, 0.5, "random", seed=3)
    assert len(a) == 3 and len(set(a)) == 3
    assert np.array_equal(a, select(SCORES[::-1].copy(), 0.5, "random", seed=3))
    assert np.array_equal(a, select(SCORES, 0.5, "random", seed=3))


def test_keep_all_and_rounding():
    assert select(SCORES, 1.0, "hard").tolist() == list(range(6))
    assert num_to_keep(10, 0.25) == 2  # round(2.5) -> 2 (banker's rounding)
    assert num_to_keep(10, 0.01) == 1  # never empty


def test_nan_ranks_hardest():
    scores = np.array([0.2, np.nan, 0.1])
    assert select(scores, 1 / 3, "hard").tolist() == [1]
    assert select(scores, 2 / 3, "easy").tolist() == [0, 2]


def test_ties_broken_at_random_but_reproducibly():
    ties = np.zeros(100)
    a, b = select(ties, 0.1, "hard", seed=0), select(ties, 0.1, "hard", seed=1)
    assert not np.array_equal(a, b)
    assert np.array_equal(a, select(ties, 0.1, "hard", seed=0))


def test_class_balanced_keeps_each_class_fraction():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([1, 2, 3, 4, 10, 20, 30, 40], dtype=float)
    # unbalanced "hard" at 0.5 would keep only class 1
    assert select(scores, 0.5, "hard").tolist() == [4, 5, 6, 7]
    assert select(scores, 0.5, "hard", labels=labels, class_balanced=True).tolist() == [2, 3, 6, 7]
    assert select(scores, 0.5, "easy", labels=labels, class_balanced=True).tolist() == [0, 1, 4, 5]


@pytest.mark.parametrize("strategy", ["hard", "easy", "random"])
@pytest.mark.parametrize("keep_fraction", [0.1, 0.5, 1.0])
def test_every_strategy_returns_sorted_unique_indices(strategy, keep_fraction):
    scores = np.random.default_rng(0).random(50)
    kept = select(scores, keep_fraction, strategy)
    assert kept.dtype == np.int64
    assert np.all(np.diff(kept) > 0)
    assert len(kept) == num_to_keep(50, keep_fraction)


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan")])
def test_bad_keep_fraction_names_value(bad):
    with pytest.raises(ValueError, match=r"keep_fraction.*\(0, 1\]"):
        select(SCORES, bad, "hard")


def test_unknown_strategy_lists_available():
    with pytest.raises(ValueError, match="unknown strategy 'hardest'; available: .*easy.*hard.*random"):
        select(SCORES, 0.5, "hardest")


def test_class_balanced_needs_labels():
    with pytest.raises(ValueError, match="labels"):
        select(SCORES, 0.5, "hard", class_balanced=True)


def test_registry_lists_builtins():
    assert {"hard", "easy", "random"} <= set(list_strategies())


def test_needs_scores_says_which_strategies_read_the_scores():
    from datadiet.selection import needs_scores, register_strategy
    from datadiet.selection.registry import _SCORE_FREE, STRATEGIES

    assert needs_scores("hard") and needs_scores("easy") and needs_scores("ccs")
    assert not needs_scores("random")
    # `random` keeps the same subset whatever the scores are, so the app may skip the probe
    np.testing.assert_array_equal(
        select(np.zeros(50), 0.3, "random", seed=4), select(np.arange(50.0), 0.3, "random", seed=4)
    )
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        needs_scores("nope")
    with pytest.raises(TypeError, match="needs_scores"):
        register_strategy("every_other", needs_scores="no")

    @register_strategy("first_few_for_test", needs_scores=False)
    def first_few(scores, num_keep, rng):
        return np.arange(num_keep)

    try:
        assert not needs_scores("first_few_for_test")
        np.testing.assert_array_equal(select(np.ones(10), 0.3, "first_few_for_test"), [0, 1, 2])
    finally:
        STRATEGIES._entries.pop("first_few_for_test")
        _SCORE_FREE.discard("first_few_for_test")
