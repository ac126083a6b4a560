"""Synthetic Gaussian class clusters with optional label noise: structure known by construction."""

from __future__ import annotations

from typing import Any

import numpy as np

from datadiet.data.datamodule import PruningDataModule
from datadiet.data.sources._split import build_datamodule


def make_clusters(
    num_samples: int, num_features: int, num_classes: int, separation: float, label_noise: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs around random class means; a ``label_noise`` share of labels is flipped at random."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(num_classes, num_features)) * separation / np.sqrt(num_features)
    y = rng.integers(num_classes, size=num_samples)
    x = (means[y] + rng.normal(size=(num_samples, num_features))).astype(np.float32)
    flip = rng.random(num_samples) < label_noise
    y = np.where(flip, rng.integers(num_classes, size=num_samples), y)
    return x, y.astype(np.int64)


def synthetic_datamodule(
    num_samples: int = 2000,
    num_features: int = 20,
    num_classes: int = 4,
    separation: float = 3.0,
    label_noise: float = 0.0,
    test_fraction: float = 0.2,
    val_fraction: float = 0.1,
    seed: int = 0,
    **loader_options: Any,
) -> PruningDataModule:
    """Synthetic clusters as a :class:`PruningDataModule` (fast; used by tests and examples)."""
    if num_classes < 2:
        raise ValueError(f"`num_classes` must be at least 2, got {num_classes}")
    x, y = make_clusters(num_samples, num_features, num_classes, separation, label_noise, seed)
    num_test = int(round(test_fraction * num_samples))
    return build_datamodule(
        "synthetic", x[num_test:], y[num_test:], x[:num_test], y[:num_test], val_fraction, seed, **loader_options
    )
