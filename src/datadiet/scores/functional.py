"""Pure per-example statistics over a batch of logits: the functional twins of the score classes.

Every function takes logits ``z`` of shape ``(B, K)`` and integer labels ``y`` of shape ``(B,)`` and
returns one float32 value per example, computed in float32 whatever the logits' dtype (AMP safe).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _as_float(logits: Tensor) -> Tensor:
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (batch, num_classes), got {tuple(logits.shape)}")
    return logits.detach().float()


def el2n(logits: Tensor, target: Tensor) -> Tensor:
    """Error L2-norm ``‖softmax(z) − onehot(y)‖₂`` (Paul et al. 2021)."""
    logits = _as_float(logits)
    error = torch.softmax(logits, dim=1)
    error[torch.arange(len(target), device=logits.device), target] -= 1.0
    return torch.linalg.vector_norm(error, dim=1)


def logit_margin(logits: Tensor, target: Tensor) -> Tensor:
    """Logit margin ``z_y − max_{k≠y} z_k``: positive when correct, larger = easier."""
    logits = _as_float(logits)
    rows = torch.arange(len(target), device=logits.device)
    assigned = logits[rows, target]
    others = logits.clone()
    others[rows, target] = float("-inf")
    return assigned - others.amax(dim=1)


def correct(logits: Tensor, target: Tensor) -> Tensor:
    """1.0 where ``argmax z = y`` (the prediction is correct), else 0.0."""
    return (_as_float(logits).argmax(dim=1) == target).float()


def forgetting_update(
    previous_correct: Tensor, forgetting_count: Tensor, ever_correct: Tensor, now_correct: Tensor, seen: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Folds one presentation into the forgetting state (Toneva et al. 2019).

    A forgetting event is a transition correct → incorrect between consecutive presentations of an
    example. The first presentation can never be one (the example starts "not yet learned").

    Args:
        previous_correct: bool, correctness at the previous presentation.
        forgetting_count: int, events so far.
        ever_correct: bool, whether the example was ever classified correctly.
        now_correct: bool, correctness at this presentation.
        seen: bool, whether the example was presented now (other entries are left unchanged).

    Returns:
        The new ``(previous_correct, forgetting_count, ever_correct)``.
    """
    forgotten = seen & previous_correct & ~now_correct
    return (
        torch.where(seen, now_correct, previous_correct),
        forgetting_count + forgotten.to(forgetting_count.dtype),
        ever_correct | (seen & now_correct),
    )


def forgetting_score(forgetting_count: Tensor, ever_correct: Tensor, presentations: Tensor) -> Tensor:
    """Forgetting events as a difficulty: never-learned examples are +inf, never-seen ones NaN."""
    score = forgetting_count.double()
    score = torch.where(ever_correct, score, torch.full_like(score, float("inf")))
    return torch.where(presentations > 0, score, torch.full_like(score, float("nan")))
