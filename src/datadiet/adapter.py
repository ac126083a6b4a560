"""How datadiet reads inputs, labels and logits from a user's batches and module outputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from torch import Tensor


def _first(batch: Any) -> Any:
    return batch[0]


def _second(batch: Any) -> Any:
    return batch[1]


def _identity(output: Any) -> Any:
    return output


@dataclass(frozen=True)
class Adapter:
    """Reads model input, labels and logits when batches are not ``(x, y)`` or ``forward`` returns more.

    The defaults cover modules written the way Lightning's documentation writes them
    (``x, y = batch; logits = self(x)``). Anything else is one line, e.g. dict batches and a
    ``forward`` returning ``(logits, features)``::

        Adapter(input_fn=lambda b: b["image"], target_fn=lambda b: b["label"], logits_fn=lambda out: out[0])

    Args:
        input_fn: batch → what ``pl_module(...)`` takes (used by the eval-mode scoring pass).
        target_fn: batch → integer class labels of shape ``(B,)``; ``None`` for unlabelled data.
        logits_fn: output of ``pl_module(...)`` → logits of shape ``(B, K)``.
    """

    input_fn: Callable[[Any], Any] = _first
    target_fn: Optional[Callable[[Any], Optional[Tensor]]] = _second
    logits_fn: Callable[[Any], Tensor] = _identity
