"""Mislabel signals beyond one in-sample snapshot: class-conditional confidence, several snapshots, AUM thresholds.

- ``below_chance`` (registered): predicted as another class, the given class below chance (``p_y < 1/K``).
- ``confident_other_class`` (registered): confident learning's off-diagonal, kept only where the given class is as
  improbable as it is for the examples *labelled* with the predicted class — "confidently another class", not
  "ambiguous between neighbours" (a shirt predicted as a T-shirt still gives "shirt" more than T-shirts do).
- :func:`average_probabilities`: the mean of several epochs' predicted probabilities (Northcutt et al. advise
  out-of-sample ones; averaging snapshots is the in-run, no-extra-training substitute).
- :func:`agreement`: flagged by a detector on *every* snapshot (early and late predictions agree).
- :func:`threshold_samples` and :func:`aum_flags`: Pleiss et al. (2020)'s AUM with threshold samples — a random
  ``N/(K+1)`` relabelled to a fake class K; the 99th percentile of their AUM is the bar below which a real example
  is flagged.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from datadiet.detection.confident_learning import confident_joint
from datadiet.detection.registry import DETECTORS, register_detector


@register_detector("confident_other_class")
def confident_other_class(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Labelled i, confidently of class j ≠ i (confident joint), and ``p_i`` no larger than the mean ``p_i`` of the
    examples labelled j: class j's own examples give class i as much, so nothing in this one says "i"."""
    k = probabilities.shape[1]
    _, off_diagonal = confident_joint(labels, probabilities, calibrate=False)
    counts = np.bincount(labels, minlength=k)
    given_to = np.zeros((k, k))  # given_to[j, i] = mean over examples labelled j of p_i
    np.add.at(given_to, labels, probabilities)
    given_to /= np.maximum(counts, 1)[:, None]
    predicted = probabilities.argmax(axis=1)
    own = probabilities[np.arange(len(labels)), labels]
    return off_diagonal & (predicted != labels) & (own <= given_to[predicted, labels])


@register_detector("below_chance")
def below_chance(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Predicted as another class, with the given class below chance (``p_y < 1/K``): confidently another class.
    An ambiguous neighbour (a shirt predicted as a T-shirt) keeps its own class above chance and is not flagged."""
    k = probabilities.shape[1]
    own = probabilities[np.arange(len(labels)), labels]
    return (probabilities.argmax(axis=1) != labels) & (own < 1.0 / k)


def average_probabilities(snapshots: Sequence[np.ndarray]) -> np.ndarray:
    """The element-wise mean of several (N, K) probability snapshots (rows still sum to 1).

    Raises:
        ValueError: no snapshot, or snapshots of different shapes.
    """
    if not snapshots:
        raise ValueError("`snapshots` must hold at least one (N, K) probability array")
    shapes = {np.shape(s) for s in snapshots}
    if len(shapes) != 1:
        raise ValueError(f"probability snapshots must share one (N, K) shape, got {sorted(shapes)}")
    return np.mean(np.stack([np.asarray(s, dtype=np.float64) for s in snapshots]), axis=0)


def agreement(labels: np.ndarray, snapshots: Sequence[np.ndarray], detector: str = "below_chance") -> np.ndarray:
    """Flagged by ``detector`` on every snapshot (e.g. after epoch 1 and after epoch 3)."""
    if not snapshots:
        raise ValueError("`snapshots` must hold at least one (N, K) probability array")
    find = DETECTORS.get(detector)
    flagged = np.ones(len(labels), dtype=bool)
    for probabilities in snapshots:
        flagged &= find(np.asarray(labels), np.asarray(probabilities, dtype=np.float64))
    return flagged


def threshold_samples(
    labels: np.ndarray, num_classes: int, seed: int = 0, share: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Pleiss et al.'s threshold samples: ``round(share · N)`` examples (default ``share = 1/(K+1)``), chosen at
    random, relabelled to the fake class ``K``; train a model with K+1 outputs on the result.

    Returns:
        ``(labels_with_fake_class, is_threshold_sample)``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    share = 1.0 / (num_classes + 1) if share is None else share
    if not 0.0 < share < 1.0:
        raise ValueError(f"`share` of threshold samples must be in (0, 1), got {share}")
    chosen = np.random.default_rng(seed).choice(len(labels), size=int(round(share * len(labels))), replace=False)
    mask = np.zeros(len(labels), dtype=bool)
    mask[chosen] = True
    relabelled = labels.copy()
    relabelled[mask] = num_classes
    return relabelled, mask


def aum_flags(aum: np.ndarray, is_threshold_sample: np.ndarray, percentile: float = 99.0) -> tuple[np.ndarray, float]:
    """Flags the real (non-threshold) examples whose AUM is below the ``percentile``-th percentile of the threshold
    samples' AUM (numpy's linear interpolation).

    Returns:
        ``(flagged, threshold)``; threshold samples are never flagged.
    """
    aum, mask = np.asarray(aum, dtype=np.float64), np.asarray(is_threshold_sample, dtype=bool)
    if aum.shape != mask.shape or not mask.any():
        raise ValueError("`aum` and `is_threshold_sample` must have one shape, with at least one threshold sample")
    threshold = float(np.percentile(aum[mask], percentile))
    return (aum < threshold) & ~mask, threshold
