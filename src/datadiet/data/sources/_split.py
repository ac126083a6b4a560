"""Shared helpers for the built-in sources: tensor datasets, a seeded train/validation split, label noise."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import TensorDataset

from datadiet.data.datamodule import PruningDataModule
from datadiet.data.label_noise import corrupt_labels, validate_label_noise


def tensor_dataset(x: np.ndarray, y: np.ndarray) -> TensorDataset:
    return TensorDataset(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long))


def build_datamodule(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    val_fraction: float,
    seed: int,
    num_train: Optional[int] = None,
    label_noise: float = 0.0,
    label_noise_kind: str = "symmetric",
    label_noise_seed: int = 0,
    **loader_options: Any,
) -> PruningDataModule:
    """Splits ``val_fraction`` of the training arrays off as validation (seeded) and wraps the rest.

    With ``label_noise > 0`` a share of the *training* labels (after the split and ``num_train``) is replaced
    (:func:`~datadiet.data.label_noise.corrupt_labels`); validation and test stay clean, and the record is
    the data module's ``label_noise`` attribute.
    """
    validate_label_noise(label_noise, label_noise_kind, label_noise_seed)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"`val_fraction` must be in [0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(len(y_train))
    num_val = int(round(val_fraction * len(y_train)))
    val, train = order[:num_val], np.sort(order[num_val:])
    if num_train is not None:
        if not 0 < num_train <= len(train):
            raise ValueError(f"`num_train` must be in [1, {len(train)}], got {num_train}")
        train = train[:num_train]
    num_classes = int(max(y_train.max(), y_test.max()) + 1)
    labels, noise = y_train[train], None
    if label_noise > 0:
        labels, noise = corrupt_labels(labels, label_noise, label_noise_kind, num_classes, label_noise_seed)
    dm = PruningDataModule(
        tensor_dataset(x_train[train], labels),
        tensor_dataset(x_train[val], y_train[val]) if num_val else None,
        tensor_dataset(x_test, y_test),
        name=name,
        **loader_options,
    )
    dm.input_shape = tuple(x_train.shape[1:])
    dm.num_classes = num_classes
    dm.label_noise = noise
    return dm
