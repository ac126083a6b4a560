"""Synthetic Gaussian class clusters, optionally with label noise: structure known by construction."""

from __future__ import annotations

from typing import Any

import numpy as np

from datadiet.data.datamodule import PruningDataModule
from datadiet.data.sources._split import build_datamodule


def make_clusters(
    num_samples: int, num_features: int, num_classes: int, separation: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs around random class means; every label is its blob's (clean)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(num_classes, num_features)) * separation / np.sqrt(num_features)
    y = rng.integers(num_classes, size=num_samples)
    x = (means[y] + rng.normal(size=(num_samples, num_features))).astype(np.float32)
    return x, y.astype(np.int64)


def synthetic_datamodule(
    num_samples: int = 2000,
    num_features: int = 20,
    num_classes: int = 4,
    separation: float = 3.0,
    label_noise: float = 0.0,
    label_noise_kind: str = "symmetric",
    label_noise_seed: int = 0,
    test_fraction: float = 0.2,
    val_fraction: float = 0.1,
    seed: int = 0,
    **loader_options: Any,
) -> PruningDataModule:
    """Synthetic clusters as a :class:`PruningDataModule` (fast; used by tests and examples).

    Args:
        num_samples: examples in all (test, validation and training).
        num_features: input dimension.
        num_classes: clusters, one per class.
        separation: distance scale of the class means (larger = easier).
        label_noise: share of the training labels replaced by a wrong class, in [0, 1) (validation and
            test stay clean; the record is the data module's ``label_noise``), as for every built-in source.
        label_noise_kind: ``symmetric`` (a uniformly random other class) or ``pairwise`` (c → (c + 1) mod K).
        label_noise_seed: seeds which labels are replaced and by what.
        test_fraction: share held out as the test set.
        val_fraction: share of the rest held out for validation.
        seed: generation and split seed.
        **loader_options: :class:`PruningDataModule` arguments.
    """
    if num_classes < 2:
        raise ValueError(f"`num_classes` must be at least 2, got {num_classes}")
    x, y = make_clusters(num_samples, num_features, num_classes, separation, seed)
    num_test = int(round(test_fraction * num_samples))
    return build_datamodule(
        "synthetic",
        x[num_test:],
        y[num_test:],
        x[:num_test],
        y[:num_test],
        val_fraction,
        seed,
        label_noise=label_noise,
        label_noise_kind=label_noise_kind,
        label_noise_seed=label_noise_seed,
        **loader_options,
    )
