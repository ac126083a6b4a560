"""Coverage-centric selection (ccs) on small worked cases."""

import numpy as np
import pytest

from datadiet import select
from datadiet.selection.ccs import allocate_budget, stratify


def test_allocate_budget_worked_case():
    # budget 10 over strata of sizes 1, 8, 2, 30: visit 1 (share 10//4=2 -> 1), 2 (9//3=3 -> 2),
    # 8 (7//2=3 -> 3), 30 (4//1 -> 4)
    np.testing.assert_array_equal(allocate_budget(np.array([1, 8, 2, 30]), 10), [1, 3, 2, 4])
    np.testing.assert_array_equal(allocate_budget(np.array([0, 5, 5]), 6), [0, 3, 3])


def test_stratify_equal_width():
    scores = np.array([0.0, 0.1, 0.5, 0.74, 0.76, 1.0, np.inf])
    np.testing.assert_array_equal(stratify(scores, 4), [0, 0, 2, 2, 3, 3, 3])


def test_ccs_worked_case():
    # scores 0..99: beta=0.2 drops 80..99; 4 strata of width 19.75 over [0, 79] hold 20 each
    scores = np.arange(100, dtype=float)
    kept = select(scores, 0.2, "ccs", seed=0, beta=0.2, num_strata=4)
    assert len(kept) == 20 and kept.max() < 80
    np.testing.assert_array_equal(np.bincount(kept // 20, minlength=4), [5, 5, 5, 5])


def test_ccs_small_strata_are_taken_whole():
    # 90 easy examples near 0, 10 spread over (0.5, 1]: 10 strata over [0, 1]
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.uniform(0, 0.05, 90), np.linspace(0.55, 1.0, 10)])
    kept = select(scores, 0.3, "ccs", seed=1, num_strata=10)
    assert len(kept) == 30
    assert set(range(90, 100)) <= set(kept)  # every sparse hard stratum kept whole (coverage)


def test_ccs_is_seeded_and_validates():
    scores = np.random.default_rng(0).random(200)
    assert np.array_equal(select(scores, 0.1, "ccs", seed=3), select(scores, 0.1, "ccs", seed=3))
    with pytest.raises(ValueError, match="beta"):
        select(scores, 0.1, "ccs", beta=1.0)
    with pytest.raises(ValueError, match="num_strata"):
        select(scores, 0.1, "ccs", num_strata=0)


def test_ccs_beta_reduced_when_budget_needs_it():
    kept = select(np.arange(10, dtype=float), 0.9, "ccs", beta=0.5, num_strata=3)
    assert len(kept) == 9 and 9 not in kept  # only the single hardest could be dropped


@pytest.mark.parametrize("strategy", ["hard", "easy", "random", "ccs"])
def test_class_balanced_works_with_every_strategy(strategy):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [100, 50, 10])
    scores = rng.random(160) + labels  # class 2 is hardest overall
    kept = select(scores, 0.2, strategy, labels=labels, class_balanced=True, seed=0)
    np.testing.assert_array_equal(np.bincount(labels[kept]), [20, 10, 2])
