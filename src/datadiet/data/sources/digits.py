"""scikit-learn's 8×8 handwritten digits (1,797 real images, shipped with scikit-learn)."""

from __future__ import annotations

from typing import Any

import numpy as np

from datadiet.data.datamodule import PruningDataModule
from datadiet.data.sources._split import build_datamodule


def digits_datamodule(
    test_fraction: float = 0.2,
    val_fraction: float = 0.1,
    seed: int = 0,
    flatten: bool = True,
    label_noise: float = 0.0,
    label_noise_kind: str = "symmetric",
    label_noise_seed: int = 0,
    **loader_options: Any,
) -> PruningDataModule:
    """The digits as a :class:`PruningDataModule`: pixels scaled to [0, 1], 64 features or 1×8×8 images.

    Args:
        test_fraction: share held out as the test set (seeded split).
        val_fraction: share of the remaining training data held out for validation.
        seed: split seed.
        flatten: 64-vectors (True) or ``(1, 8, 8)`` images (False).
        label_noise: share of the training labels replaced by a wrong class, in [0, 1) (validation and
            test stay clean; the record is the data module's ``label_noise``).
        label_noise_kind: ``symmetric`` (a uniformly random other class) or ``pairwise`` (c → (c + 1) mod K).
        label_noise_seed: seeds which labels are replaced and by what.
        **loader_options: :class:`PruningDataModule` arguments.
    """
    from sklearn.datasets import load_digits

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"`test_fraction` must be in (0, 1), got {test_fraction}")
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    if not flatten:
        x = x.reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    num_test = int(round(test_fraction * len(y)))
    test, train = order[:num_test], order[num_test:]
    return build_datamodule(
        "digits",
        x[train],
        y[train],
        x[test],
        y[test],
        val_fraction,
        seed,
        label_noise=label_noise,
        label_noise_kind=label_noise_kind,
        label_noise_seed=label_noise_seed,
        **loader_options,
    )
