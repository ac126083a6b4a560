"""Reading per-example class labels from common dataset shapes without loading inputs when possible."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset


def dataset_labels(dataset: Dataset) -> Optional[np.ndarray]:
    """Integer labels of every example, or ``None`` when the dataset has none.

    Fast paths: ``TensorDataset`` (second tensor), ``targets``/``labels`` attributes (torchvision),
    ``Subset`` of those. Otherwise items are read and the second element of each ``(x, y)`` is used.
    """
    if isinstance(dataset, Subset):
        parent = dataset_labels(dataset.dataset)
        return None if parent is None else parent[np.asarray(dataset.indices)]
    if isinstance(dataset, TensorDataset):
        return _integer_labels(dataset.tensors[1]) if len(dataset.tensors) > 1 else None
    for name in ("targets", "labels"):
        values = getattr(dataset, name, None)
        if values is not None:
            labels = _integer_labels(values)
            if labels is not None and len(labels) == len(dataset):  # type: ignore[arg-type]
                return labels
    collected = []
    for position in range(len(dataset)):  # type: ignore[arg-type]
        item = dataset[position]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            return None
        collected.append(item[1])
    return _integer_labels(collected)


def _integer_labels(values: Any) -> Optional[np.ndarray]:
    if isinstance(values, torch.Tensor):
        values = values.cpu().numpy()
    try:
        array = np.asarray(values)
    except (TypeError, ValueError):
        return None
    if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.bool_)):
        return None
    return array.astype(np.int64)
