"""Content fingerprints of datasets and configs, so cached probe scores are reused only when valid."""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

import numpy as np
import torch

#: How many evenly spaced examples are hashed for a dataset without array attributes.
_SAMPLED_EXAMPLES = 512


def _update_with(hasher: "hashlib._Hash", value: Any) -> None:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        hasher.update(str((value.dtype.str, value.shape)).encode())
        hasher.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (tuple, list)):
        hasher.update(b"(")
        for item in value:
            _update_with(hasher, item)
        hasher.update(b")")
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            hasher.update(str(key).encode())
            _update_with(hasher, value[key])
    elif hasattr(value, "tobytes"):  # PIL images and similar
        hasher.update(value.tobytes())
    else:
        hasher.update(repr(value).encode())


def dataset_fingerprint(dataset: Any) -> str:
    """A short hash of a map-style dataset's length and content.

    Tensor datasets and datasets with ``data``/``targets`` arrays are hashed whole; others through
    up to 512 evenly spaced examples, which catches a different dataset without reading it all. Those
    are read under fixed seeds of ``torch``, ``numpy`` and ``random`` (the callers' random states are
    left as they were), so a dataset with random augmentations has one fingerprint, not one per call.
    """
    hasher = hashlib.sha256()
    hasher.update(f"{type(dataset).__name__}:{len(dataset)}".encode())
    tensors = getattr(dataset, "tensors", None)
    arrays = [getattr(dataset, name, None) for name in ("data", "targets")]
    if tensors is not None:
        _update_with(hasher, list(tensors))
    elif all(isinstance(a, (np.ndarray, torch.Tensor, list)) for a in arrays):
        _update_with(hasher, [np.asarray(a) for a in arrays])
    else:
        count = min(len(dataset), _SAMPLED_EXAMPLES)
        python_state, numpy_state = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                random.seed(0)
                np.random.seed(0)
                for position in np.linspace(0, len(dataset) - 1, num=count, dtype=np.int64) if count else []:
                    _update_with(hasher, dataset[int(position)])
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)
    return hasher.hexdigest()[:16]


def config_fingerprint(config: Any) -> str:
    """A short hash of a JSON-serialisable config (dict keys sorted)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
