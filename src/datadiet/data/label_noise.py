"""Synthetic label noise for robustness tests: a known share of training labels replaced, the flips recorded.

Real training sets carry label errors (a few per cent in curated benchmarks, 20 % and more in scraped data);
the built-in sources can inject them so a run or a benchmark can measure what pruning does to them and
score a mislabel detector against the truth (:attr:`LabelNoise.flipped_indices`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: ``symmetric``: a uniformly random *other* class; ``pairwise``: class c becomes (c + 1) mod K.
NOISE_KINDS = ("symmetric", "pairwise")
#: Salt of the noise's random stream (independent of every ``default_rng(seed)`` elsewhere).
_NOISE_STREAM = 0x1ABE1


@dataclass(frozen=True)
class LabelNoise:
    """The record of injected label noise: which training examples got which wrong label.

    Attributes:
        rate: the requested share of training labels replaced.
        kind: ``symmetric`` or ``pairwise``.
        seed: the seed that chose the examples and their new labels.
        flipped_indices: sorted original indices (positions in the training set) of the replaced labels.
        clean_labels: the training set's labels before the noise (all of them, indexed by original index).
    """

    rate: float
    kind: str
    seed: int
    flipped_indices: np.ndarray
    clean_labels: np.ndarray

    @property
    def num_flipped(self) -> int:
        return int(len(self.flipped_indices))

    def is_flipped(self) -> np.ndarray:
        """A boolean mask over the training set: True where the given label is wrong."""
        mask = np.zeros(len(self.clean_labels), dtype=bool)
        mask[self.flipped_indices] = True
        return mask

    def summary(self) -> dict[str, Any]:
        """JSON-ready provenance (without the index list, which is saved as an array)."""
        return {
            "rate": self.rate,
            "kind": self.kind,
            "seed": self.seed,
            "num_flipped": self.num_flipped,
            "num_examples": int(len(self.clean_labels)),
        }


def validate_label_noise(rate: float, kind: str, seed: int) -> None:
    """Raises ``ValueError`` naming the bad value (called by every source before it builds anything)."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating, np.integer)) or not 0.0 <= rate < 1.0:
        raise ValueError(f"`label_noise` must be a share of training labels in [0, 1), got {rate!r}")
    if kind not in NOISE_KINDS:
        raise ValueError(f"`label_noise_kind` can be {', '.join(NOISE_KINDS)}, got {kind!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"`label_noise_seed` must be an integer, got {seed!r}")


def corrupt_labels(
    labels: np.ndarray, rate: float, kind: str = "symmetric", num_classes: int | None = None, seed: int = 0
) -> tuple[np.ndarray, LabelNoise]:
    """Replaces exactly ``round(rate * N)`` labels, chosen uniformly without replacement, by a wrong class.

    Args:
        labels: 1-D integer labels in ``[0, num_classes)``.
        rate: share of labels replaced, in [0, 1).
        kind: ``symmetric`` (each replaced label becomes a uniformly random other class) or ``pairwise``
            (class c becomes (c + 1) mod K, the classic asymmetric noise).
        num_classes: K (default: ``labels.max() + 1``); at least 2.
        seed: seeds the choice of examples and of the new classes.

    Returns:
        ``(noisy_labels, record)``: the new labels (a copy) and the :class:`LabelNoise` record.
    """
    validate_label_noise(rate, kind, seed)
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"label noise needs 1-D integer class labels, got dtype {labels.dtype}, shape {labels.shape}")
    num_classes = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    if num_classes < 2:
        raise ValueError(f"label noise needs at least 2 classes, got {num_classes}")
    # A stream of its own: `default_rng(seed)` is what `select` seeds, and the random strategy's
    # `choice(N, k)` would then contain exactly these flips (same stream, a prefix of the same draw).
    rng = np.random.default_rng((_NOISE_STREAM, seed))
    flipped = np.sort(rng.choice(len(labels), size=int(round(rate * len(labels))), replace=False)).astype(np.int64)
    noisy = labels.astype(np.int64)  # a copy
    if kind == "pairwise":
        noisy[flipped] = (noisy[flipped] + 1) % num_classes
    else:  # a shift of 1..K-1 is a uniform draw among the K-1 other classes
        noisy[flipped] = (noisy[flipped] + rng.integers(1, num_classes, size=len(flipped))) % num_classes
    return noisy, LabelNoise(float(rate), kind, int(seed), flipped, labels.astype(np.int64))
