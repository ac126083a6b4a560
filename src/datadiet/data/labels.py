"""Reading per-example class labels (and file paths, where a dataset knows them) from common dataset shapes
without loading inputs."""

from __future__ import annotations

import os
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


def dataset_paths(dataset: Dataset) -> Optional[list[str]]:
    """The file each example was read from, or ``None`` when the dataset does not say.

    Read from a ``paths`` attribute (one path per example), torchvision's ``ImageFolder`` / ``DatasetFolder``
    ``samples`` (``(path, class)`` pairs), and a ``Subset`` of those; no item is loaded.
    """
    if isinstance(dataset, Subset):
        parent = dataset_paths(dataset.dataset)
        return None if parent is None else [parent[int(i)] for i in dataset.indices]
    paths = getattr(dataset, "paths", None)
    if paths is None:
        samples = getattr(dataset, "samples", None)
        if isinstance(samples, (list, tuple)) and all(isinstance(s, (tuple, list)) and s for s in samples):
            paths = [sample[0] for sample in samples]
    if paths is None or isinstance(paths, (str, bytes)):
        return None
    try:
        paths = [os.fspath(path) for path in paths]
    except TypeError:  # not paths after all
        return None
    return paths if len(paths) == len(dataset) else None  # type: ignore[arg-type]


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
