"""Confident learning (Northcutt, Jiang & Chuang 2021): label errors from per-class probability thresholds.

The definitions are cleanlab's (``cleanlab.count.compute_confident_joint`` and ``cleanlab.filter.find_label_issues``
with its default ``frac_noise=1`` and ``min_examples_per_class=1``), re-implemented in numpy:

- threshold of class j: ``t_j`` = mean of ``p_j`` over the examples labelled j;
- an example is *confidently* of class j when ``p_j >= t_j`` (of the largest ``p`` when several are);
  the confident joint ``C[i, j]`` counts examples labelled i confidently of class j, then is calibrated so
  its rows sum to the label counts and its total to N;
- ``confident_learning`` flags the off-diagonal of the (uncalibrated) confident joint;
- ``prune_by_noise_rate`` flags, for every given class i and other class j, the ``C[i, j]`` examples labelled i
  with the largest margin ``p_j − p_i``;
- ``prune_by_class`` flags, in every given class i, the ``N_i − C[i, i]`` examples with the smallest ``p_i``;
- ``both`` flags what ``prune_by_noise_rate`` and ``prune_by_class`` both flag (the most precise, our default);
- none flags an example whose most probable class is its given label.
"""

from __future__ import annotations

import numpy as np

from datadiet.detection.registry import register_detector

#: cleanlab's fuzz for float comparisons, and its lower bound on a threshold.
_EPSILON = 1e-6


def confident_thresholds(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """``t_j`` = mean of ``p_j`` over the examples labelled j; 2 (never reached) for a class with none."""
    k = probabilities.shape[1]
    counts = np.bincount(labels, minlength=k)
    sums = np.zeros(k)
    np.add.at(sums, labels, probabilities[np.arange(len(labels)), labels])
    thresholds = np.where(counts > 0, sums / np.maximum(counts, 1), 2.0)
    return np.maximum(thresholds, 2 * _EPSILON)


def confident_joint(
    labels: np.ndarray, probabilities: np.ndarray, calibrate: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The confident joint ``C[given, true]`` (K, K) and the mask of the examples in its off-diagonal."""
    k = probabilities.shape[1]
    confident = probabilities >= confident_thresholds(labels, probabilities) - _EPSILON
    num_confident = confident.sum(axis=1)
    guess = np.where(num_confident > 1, probabilities.argmax(axis=1), confident.argmax(axis=1))
    counted = num_confident > 0
    joint = np.zeros((k, k), dtype=np.int64)
    np.add.at(joint, (labels[counted], guess[counted]), 1)
    np.fill_diagonal(joint, np.maximum(joint.diagonal(), 1))  # every class keeps one correctly labelled example
    off_diagonal = counted & (guess != labels)
    if calibrate:
        joint = calibrate_joint(joint, np.bincount(labels, minlength=k))
    return joint, off_diagonal


def calibrate_joint(joint: np.ndarray, label_counts: np.ndarray) -> np.ndarray:
    """Rescales each row to its class's label count and the whole to N, rounding with row totals kept."""
    rows = joint.sum(axis=1, keepdims=True)
    scaled = joint / np.maximum(rows, 1e-100) * label_counts[:, None]
    scaled = scaled / max(scaled.sum(), 1e-100) * label_counts.sum()
    return np.stack([_round_preserving_sum(row) for row in scaled])


def _round_preserving_sum(values: np.ndarray) -> np.ndarray:
    """Integers closest to ``values`` with the same (rounded) total: the largest remainders go up."""
    ints = np.round(values)
    missing = int(np.round(values.sum() - ints.sum()))
    if missing:
        step = 1 if missing > 0 else -1
        order = np.argsort(values - ints)[::-step][: abs(missing)]
        ints[order] += step
    return ints.astype(np.int64)


def _prune_counts(joint: np.ndarray, minimum: int = 1) -> np.ndarray:
    """``C`` transposed (``[true, given]``) with every diagonal at least ``minimum``, taken from its column."""
    counts = joint.T.astype(np.float64)
    diagonal = counts.diagonal()
    raised = np.maximum(diagonal, minimum)
    per_column = np.maximum(np.count_nonzero(counts, axis=0) - 1.0, 1.0)
    counts = np.maximum(counts - (raised - diagonal) / per_column, 0)
    np.fill_diagonal(counts, raised)
    return np.stack([_round_preserving_sum(row) for row in counts])


def _predicted_is_given(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    bumped = probabilities.copy()
    bumped[np.arange(len(labels)), labels] += _EPSILON
    return bumped.argmax(axis=1) == labels


def _by_noise_rate(labels: np.ndarray, probabilities: np.ndarray, counts: np.ndarray) -> np.ndarray:
    flagged = np.zeros(len(labels), dtype=bool)
    for given in range(probabilities.shape[1]):
        members = np.flatnonzero(labels == given)
        if len(members) <= 1:  # cleanlab's `min_examples_per_class`
            continue
        for true in range(probabilities.shape[1]):
            count = counts[true, given]
            if true != given and count > 0:
                margin = probabilities[members, true] - probabilities[members, given]
                flagged[members[np.argsort(-margin, kind="stable")[:count]]] = True
    return flagged


def _by_class(labels: np.ndarray, probabilities: np.ndarray, counts: np.ndarray) -> np.ndarray:
    flagged = np.zeros(len(labels), dtype=bool)
    for given in range(probabilities.shape[1]):
        members = np.flatnonzero(labels == given)
        count = len(members) - counts[given, given]
        if len(members) > 1 and count >= 1:
            flagged[members[np.argsort(probabilities[members, given], kind="stable")[:count]]] = True
    return flagged


def _prune_count_matrix(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """``counts[j, i]``: how many examples labelled i are estimated to be truly of class j."""
    return _prune_counts(confident_joint(labels, probabilities)[0])


@register_detector("confident_learning")
def off_diagonal(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """The examples in the off-diagonal of the confident joint: confidently of a class other than their label."""
    _, flagged = confident_joint(labels, probabilities, calibrate=False)
    return flagged & ~_predicted_is_given(labels, probabilities)


@register_detector("prune_by_noise_rate")
def prune_by_noise_rate(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """For each (given i, true j) cell of the calibrated confident joint, that many labelled i with the
    largest ``p_j − p_i`` (cleanlab's default; higher recall)."""
    counts = _prune_count_matrix(labels, probabilities)
    return _by_noise_rate(labels, probabilities, counts) & ~_predicted_is_given(labels, probabilities)


@register_detector("prune_by_class")
def prune_by_class(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """In each given class i, the estimated number of its errors with the smallest ``p_i``."""
    counts = _prune_count_matrix(labels, probabilities)
    return _by_class(labels, probabilities, counts) & ~_predicted_is_given(labels, probabilities)


@register_detector("both")
def both(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Flagged by both ``prune_by_noise_rate`` and ``prune_by_class`` (the most precise)."""
    counts = _prune_count_matrix(labels, probabilities)
    flagged = _by_noise_rate(labels, probabilities, counts) & _by_class(labels, probabilities, counts)
    return flagged & ~_predicted_is_given(labels, probabilities)
