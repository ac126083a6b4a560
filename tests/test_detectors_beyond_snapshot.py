"""The detectors beyond one snapshot, each against a case worked out by hand."""

import numpy as np
import pytest

from datadiet.detection import (
    agreement,
    aum_flags,
    average_probabilities,
    find_label_issues,
    list_detectors,
    threshold_samples,
)


def _probabilities():
    # label 0: rows 0-3 -> p_0 = .9, .9, .1, .35 -> t_0 = .5625 ; label 1: rows 4-7 -> p_1 = .9, .9, .9, .3 -> t_1 = .75
    p1 = np.array([0.1, 0.1, 0.9, 0.65, 0.9, 0.9, 0.9, 0.3])
    return np.array([0, 0, 0, 0, 1, 1, 1, 1]), np.stack([1 - p1, p1], axis=1)


def test_confident_other_class_flags_the_confidently_other():
    labels, p = _probabilities()
    # off-diagonal of the confident joint: row 2 (label 0, p_1 .9 >= .75), row 7 (label 1, p_0 .7 >= .5625); row 3
    # (p_1 .65 < .75, p_0 .35 < .5625) is confident of nothing.
    # examples labelled 1 give class 0 (.1+.1+.1+.7)/4 = .25; row 2's own p_0 = .1 <= .25: flagged
    # examples labelled 0 give class 1 (.1+.1+.9+.65)/4 = .4375; row 7's own p_1 = .3 <= .4375: flagged
    assert "confident_other_class" in list_detectors()
    issues = find_label_issues(labels, p, "confident_other_class")
    assert issues.flagged.tolist() == [False, False, True, False, False, False, False, True]


def test_confident_other_class_keeps_an_ambiguous_neighbour():
    # 0 shirt, 1 T-shirt, 2 bag. Row 2: a shirt predicted T-shirt but still "shirt" at .22; row 8: a T-shirt
    # labelled bag, "bag" at .04.
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    p = np.array(
        [
            [0.8, 0.15, 0.05],
            [0.8, 0.15, 0.05],
            [0.22, 0.76, 0.02],
            [0.25, 0.7, 0.05],
            [0.25, 0.7, 0.05],
            [0.1, 0.85, 0.05],
            [0.02, 0.03, 0.95],
            [0.02, 0.03, 0.95],
            [0.06, 0.9, 0.04],
        ]
    )
    # t_1 = (.7 + .7 + .85)/3 = .75: rows 2 (.76) and 8 (.9) are confidently T-shirts: both in the off-diagonal
    assert find_label_issues(labels, p, "confident_learning").flagged.tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 1]
    # T-shirts give "shirt" (.25 + .25 + .1)/3 = .2 < row 2's .22: ambiguous, kept;
    # they give "bag" (.05 * 3)/3 = .05 >= row 8's .04: confidently another class, flagged
    assert find_label_issues(labels, p, "confident_other_class").flagged.tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 1]


def test_average_and_agreement_by_hand():
    a = np.array([[0.8, 0.2], [0.4, 0.6]])
    b = np.array([[0.6, 0.4], [0.2, 0.8]])
    np.testing.assert_allclose(average_probabilities([a, b]), [[0.7, 0.3], [0.3, 0.7]])
    with pytest.raises(ValueError, match="share one"):
        average_probabilities([a, np.ones((3, 2)) / 2])
    labels, p = _probabilities()
    late = p.copy()
    late[7] = [0.2, 0.8]  # by the later snapshot row 7 is predicted as its label: the snapshots disagree
    early_flags = find_label_issues(labels, p, "confident_other_class").flagged
    both = agreement(labels, [p, late], "confident_other_class")
    assert early_flags[7] and not both[7] and both[2]


def test_threshold_samples_and_the_aum_bar():
    labels = np.arange(12) % 3
    relabelled, mask = threshold_samples(labels, 3, seed=1)
    assert mask.sum() == 3 and (relabelled[mask] == 3).all() and (relabelled[~mask] == labels[~mask]).all()
    aum = np.array([2.0, -1.0, 0.5, -3.0, -2.0, 1.0])
    is_threshold = np.array([False, False, False, True, True, False])
    flagged, bar = aum_flags(aum, is_threshold, percentile=50)  # median of (-3, -2) = -2.5
    assert bar == -2.5 and not flagged.any()
    flagged, bar = aum_flags(aum, is_threshold, percentile=100)  # the largest, -2: no real example below it
    assert bar == -2.0 and not flagged.any()
    aum[1] = -2.2
    flagged, _ = aum_flags(aum, is_threshold, percentile=100)
    assert flagged.tolist() == [False, True, False, False, False, False]


def test_below_chance_by_hand():
    labels = np.array([0, 0, 1, 2])
    p = np.array(
        [
            [0.2, 0.7, 0.1],  # predicted 1, own .2 < 1/3: flagged
            [0.34, 0.6, 0.06],  # predicted 1, own .34 >= 1/3: an ambiguous neighbour, kept
            [0.1, 0.8, 0.1],  # predicted as labelled
            [0.5, 0.3, 0.2],
        ]
    )  # predicted 0, own .2 < 1/3: flagged
    assert find_label_issues(labels, p, "below_chance").flagged.tolist() == [True, False, False, True]
