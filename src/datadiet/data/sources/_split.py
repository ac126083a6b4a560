"""Shared helpers for the built-in sources: tensor datasets and a seeded train/validation split."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import TensorDataset

from datadiet.data.datamodule import PruningDataModule


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
    **loader_options: Any,
) -> PruningDataModule:
    """Splits ``val_fraction`` of the training arrays off as validation (seeded) and wraps the rest."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"`val_fraction` must be in [0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(len(y_train))
    num_val = int(round(val_fraction * len(y_train)))
    val, train = order[:num_val], np.sort(order[num_val:])
    if num_train is not None:
        if not 0 < num_train <= len(train):
            raise ValueError(f"`num_train` must be in [1, {len(train)}], got {num_train}")
        train = train[:num_train]
    dm = PruningDataModule(
        tensor_dataset(x_train[train], y_train[train]),
        tensor_dataset(x_train[val], y_train[val]) if num_val else None,
        tensor_dataset(x_test, y_test),
        name=name,
        **loader_options,
    )
    dm.input_shape = tuple(x_train.shape[1:])
    dm.num_classes = int(max(y_train.max(), y_test.max()) + 1)
    return dm
