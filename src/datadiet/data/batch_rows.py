"""Cutting a user's batch to some of its rows, keeping its structure (tensors, tuples, lists, mappings, namedtuples)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, MutableMapping
from typing import Any, Optional

from torch import Tensor


def take_rows(batch: Any, rows: Tensor, size: Optional[int] = None) -> Any:
    """``batch`` restricted to ``rows`` (positions along the batch dimension), in that order.

    ``size`` is the batch's number of examples (default: its first tensor's first dimension). Every tensor
    with that first dimension is indexed; so is every list or tuple of that length that holds no tensor and no container
    (per-example
    Python values, e.g. file names as ``default_collate`` leaves them). Mappings, namedtuples, tuples and
    lists are rebuilt as the same type; everything else is passed through unchanged.

    Raises:
        ValueError: the batch holds no tensor, so its size is unknown.
    """
    size = _batch_size(batch) if size is None else size
    if size is None:
        raise ValueError(
            f"cannot tell the size of a {type(batch).__name__} batch (it holds no tensor); pass "
            "`batch_subset_fn=lambda batch, rows: ...` to cut it"
        )
    positions = None

    def cut(value: Any) -> Any:
        nonlocal positions
        if isinstance(value, Tensor):
            return value.index_select(0, rows.to(value.device)) if value.ndim and len(value) == size else value
        if isinstance(value, Mapping):
            if isinstance(value, MutableMapping):
                out = copy.copy(value)
                for key in value:
                    out[key] = cut(value[key])
                return out
            return {key: cut(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            if len(value) == size and not any(isinstance(item, (Tensor, Mapping, list, tuple)) for item in value):
                if positions is None:
                    positions = rows.tolist()
                items = [value[i] for i in positions]
            else:
                items = [cut(item) for item in value]
            if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple
                return type(value)(*items)
            return type(value)(items) if isinstance(value, tuple) else items
        return value

    return cut(batch)


def _batch_size(batch: Any) -> Any:
    if isinstance(batch, Tensor):
        return len(batch) if batch.ndim else None
    values = batch.values() if isinstance(batch, Mapping) else batch if isinstance(batch, (list, tuple)) else ()
    for value in values:
        size = _batch_size(value)
        if size is not None:
            return size
    return None
