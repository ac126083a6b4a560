"""A resumed fit continues what its checkpoint decided only with the arguments that decided it.

Lightning finds a callback's state by its ``state_key``, which holds some of its arguments: resumed with other
ones, the state is silently not found and the callback starts over on a half-trained model (or, for
``PruneDuringFit``, on a data module already pruned). The callbacks save their arguments with their state; at
``on_load_checkpoint`` they look for a state of their class under another key and refuse the resume, naming each
argument with its value in the checkpoint and now.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch


def states_of(checkpoint: Mapping[str, Any], class_name: str, own_key: str) -> dict[str, Any]:
    """The checkpoint's states of callbacks of ``class_name`` under another key than ``own_key``; none when it holds
    one under ``own_key`` (Lightning loads that one)."""
    callbacks = checkpoint.get("callbacks") or {}
    if own_key in callbacks:
        return {}
    return {
        key: state for key, state in callbacks.items() if isinstance(key, str) and key.split("{", 1)[0] == class_name
    }


def saved_arguments(key: str, state: Any) -> dict[str, Any]:
    """The arguments a state was saved with: its ``arguments`` entry, or those its key holds (older checkpoints)."""
    if isinstance(state, Mapping) and isinstance(state.get("arguments"), Mapping):
        return dict(state["arguments"])
    try:
        from_key = ast.literal_eval(key[key.index("{") :])
    except (ValueError, SyntaxError):
        return {}
    return dict(from_key) if isinstance(from_key, dict) else {}


def changed_arguments(saved: Mapping[str, Any], now: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{name: (in the checkpoint, now)}`` for each argument saved whose value differs now."""
    return {name: (saved[name], now[name]) for name in now if name in saved and not _same(saved[name], now[name])}


def _same(a: Any, b: Any) -> bool:
    """Equality that also holds for options holding arrays (``score_options`` with irreducible losses)."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[key], b[key]) for key in a)
    if isinstance(a, (np.ndarray, torch.Tensor)) or isinstance(b, (np.ndarray, torch.Tensor)):
        try:
            return bool(np.array_equal(np.asarray(a), np.asarray(b)))
        except (TypeError, ValueError):
            return False
    return bool(a == b)


def refusal(who: str, changed: Mapping[str, tuple[Any, Any]], decided: str) -> ValueError:
    """The error of a resume whose arguments differ from the checkpoint's."""
    listed = "; ".join(
        f"`{name}` was {_short(old)} in the checkpoint, {_short(new)} now" for name, (old, new) in changed.items()
    )
    return ValueError(
        f"{who} cannot resume this checkpoint with other arguments: {listed}. {decided} Resume with the "
        "checkpoint's arguments, or start a fresh fit (no `ckpt_path`) to use these"
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
