"""The registry of mislabel detectors and :func:`find_label_issues`, the entry point every caller uses."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from datadiet.files import atomic_write_text
from datadiet.registry import Registry

#: A detector maps (labels (N,), probabilities (N, K)) to a boolean mask of likely label errors.
Detector = Callable[[np.ndarray, np.ndarray], np.ndarray]

DETECTORS: Registry[Detector] = Registry("mislabel detector")
#: The detector used when none is named (library, app, the ``label_issue`` score). On Fashion-MNIST with 20 % of
#: the labels wrong, after 3 of 10 epochs (3 seeds): precision 0.924 / recall 0.911, where cleanlab's ``both``
#: gives 0.845 / 0.885; on MNIST-1D after 2 of 15 epochs (2 seeds) 0.955 / 0.873 against 0.837 / 0.898; on clean
#: labels it flags 2.2 % (MNIST-1D) and 2.0-2.7 % (Fashion-MNIST), under ``auto``'s 7 % (benchmarks/label_issues.py;
#: docs/fashion_mnist.md).
DEFAULT_DETECTOR = "below_chance"


def register_detector(name: str) -> Callable[[Detector], Detector]:
    """Registers a mislabel detector under ``name`` (see :func:`find_label_issues` for the contract)."""
    return DETECTORS.register(name)


def list_detectors() -> list[str]:
    """Names of the registered mislabel detectors."""
    return DETECTORS.names()


@dataclass(frozen=True)
class LabelIssues:
    """Which examples' given labels look wrong, from predicted class probabilities.

    Attributes:
        flagged: boolean mask over the examples (False where there was no prediction).
        predicted_label: the most probable class of each example (-1 where there was no prediction).
        score: ``max_{j≠y} p_j − p_y`` in [−1, 1]: positive when another class is more probable than the
            given one; larger = more likely mislabelled (NaN where there was no prediction).
        noise_rate_estimate: the share of the scored examples flagged.
        detector: the registered detector that flagged them.
    """

    flagged: np.ndarray
    predicted_label: np.ndarray
    score: np.ndarray
    noise_rate_estimate: float
    detector: str

    @property
    def num_flagged(self) -> int:
        return int(self.flagged.sum())

    @property
    def flagged_indices(self) -> np.ndarray:
        """Indices of the flagged examples, most likely mislabelled first (by :attr:`score`)."""
        indices = np.flatnonzero(self.flagged)
        return indices[np.argsort(-self.score[indices], kind="stable")]

    def save_flagged(self, path: str | os.PathLike, labels: np.ndarray, paths: Optional[Sequence[str]] = None) -> Path:
        """Writes the flagged examples as CSV (atomically), most likely wrong first, so labels can be fixed.

        Columns: ``original_index``, ``given_label``, ``predicted_label``, ``score`` (:attr:`score`), and
        ``path`` (the example's file) when ``paths`` (one per original index) are given.
        """
        indices = self.flagged_indices
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")  # quotes a path with a comma in it
        writer.writerow(["original_index", "given_label", "predicted_label", "score", *(["path"] if paths else [])])
        for i in indices:
            row = [i, int(labels[i]), int(self.predicted_label[i]), f"{self.score[i]:.6f}"]
            writer.writerow(row + ([paths[i]] if paths else []))
        return atomic_write_text(path, text.getvalue())


def find_label_issues(
    labels: np.ndarray, probabilities: np.ndarray, detector: str = DEFAULT_DETECTOR, num_classes: Optional[int] = None
) -> LabelIssues:
    """Flags the examples whose given label is likely wrong, from (near) out-of-sample predicted probabilities.

    The probabilities should come from a model that has not memorised the training labels: held-out
    predictions, or those of a model early in training (the in-run probe's scoring pass a few epochs in),
    when mislabelled examples are still predicted as their true class. Rows that are all NaN (examples
    never scored) are neither flagged nor counted.

    Args:
        labels: given integer labels, shape (N,).
        probabilities: predicted class probabilities, shape (N, K), rows summing to 1.
        detector: a registered detector (see :func:`list_detectors`); ``below_chance`` (default: predicted as
            another class, the given one below 1/K); ``both``, ``prune_by_noise_rate`` and ``confident_learning``
            are cleanlab's ``filter_by`` methods (Northcutt et al. 2021).
        num_classes: K, when the probabilities' width is not it (checked against it when given).

    Returns:
        :class:`LabelIssues`.

    Raises:
        ValueError: shapes that do not match, labels outside [0, K), probabilities outside [0, 1] or rows not
            summing to 1, an unknown detector.
    """
    find = DETECTORS.get(detector)
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or labels.shape != probabilities.shape[:1]:
        raise ValueError(
            f"`probabilities` must be (N, K) and `labels` (N,), got {probabilities.shape} and {labels.shape}"
        )
    k = probabilities.shape[1]
    if num_classes is not None and num_classes != k:
        raise ValueError(f"`probabilities` has {k} columns, but `num_classes={num_classes}`")
    if k < 2:
        raise ValueError(f"finding label issues needs at least 2 classes, got {k}")
    scored = ~np.isnan(probabilities).any(axis=1)
    flagged = np.zeros(len(labels), dtype=bool)
    predicted = np.full(len(labels), -1, dtype=np.int64)
    score = np.full(len(labels), np.nan)
    if scored.any():
        y, p = labels[scored], probabilities[scored]
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= k:
            raise ValueError(f"`labels` must be integers in [0, {k}), got values in [{y.min()}, {y.max()}]")
        if p.min() < 0 or p.max() > 1 or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
            raise ValueError("`probabilities` must be in [0, 1] with rows summing to 1 (softmax outputs, not logits)")
        flagged[scored] = find(y.astype(np.int64), p)
        predicted[scored] = p.argmax(axis=1)
        given = p[np.arange(len(y)), y]
        others = p.copy()
        others[np.arange(len(y)), y] = -np.inf
        score[scored] = others.max(axis=1) - given
    estimate = float(flagged.sum() / scored.sum()) if scored.any() else 0.0
    return LabelIssues(flagged, predicted, score, estimate, detector)
