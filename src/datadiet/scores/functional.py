"""Pure per-example statistics over a batch of logits: the functional twins of the score classes.

Every function takes logits ``z`` of shape ``(B, K)`` and integer labels ``y`` of shape ``(B,)`` and
returns one float32 value per example, computed in float32 whatever the logits' dtype (AMP safe).
Sequences (logits ``(B, T, K)``, labels ``(B, T)``) are scored per token and averaged over each
example's real tokens with :func:`token_mean` (see :mod:`datadiet.losses`).
"""

from __future__ import annotations

import weakref
from typing import Any, NamedTuple, Optional

import torch
from torch import Tensor

# the per-example losses are functional twins too (``F.cross_entropy``: 2-D, soft-label and sequence forms)
from datadiet.losses import cross_entropy, loss_logit_gradient, nan_mean, token_mean, token_values  # noqa: F401


def _as_float(logits: Tensor) -> Tensor:
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (batch, num_classes), got {tuple(logits.shape)}")
    return logits.detach().float()


class _BatchView(NamedTuple):
    """Per-batch quantities shared by several scores, computed once per batch (see :func:`_batch_view`).

    On CPU, reductions over a short class axis and fresh ``(K, B)`` temporaries are each several times
    slower than row-wise operations over the batch axis in a reused workspace; so large batches are
    transposed once into a class-major workspace and every score of the batch reuses the ``(B,)`` results.
    """

    logits: Tensor  # float32, (K, B) class-major workspace for large batches, else (B, K)
    class_dim: int  # 0 (class-major) or 1
    target: Tensor  # (B,) labels
    target_logit: Tensor  # (B,) z_y
    at_target: Tensor  # (B,) flat positions of z_y in ``logits.view(-1)``
    others: Tensor  # like ``logits`` with z_y replaced by -inf (a workspace: valid until the next batch)
    best_other: Tensor  # (B,) max_{k≠y} z_k


#: From this many examples per batch on, the class-major layout is faster on CPU (3.6x at 16k, 0.3x at 128).
CLASS_MAJOR_MIN_BATCH = 1024
#: Up to this many classes, one strided copy per class transposes faster than one ``copy_`` (2x at K=10).
_TRANSPOSE_BY_CLASS_MAX = 32

_memo: dict[str, Any] = {}
_workspaces: dict[tuple, Tensor] = {}


def _workspace(name: str, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype = torch.float32) -> Tensor:
    """A buffer reused across batches (one per name, so memory stays bounded)."""
    key = (name, shape, device, dtype)
    buffer = _workspaces.get(key)
    if buffer is None:
        for stale in [k for k in _workspaces if k[0] == name]:
            del _workspaces[stale]
        buffer = _workspaces[key] = torch.empty(shape, dtype=dtype, device=device)
    return buffer


def _class_major(values: Tensor) -> Tensor:
    """``values.t()`` copied into a contiguous ``(K, B)`` workspace."""
    out = _workspace("logits", (values.shape[1], values.shape[0]), values.device)
    if values.shape[1] <= _TRANSPOSE_BY_CLASS_MAX:
        return torch.stack(values.unbind(1), out=out)
    return out.copy_(values.t())


def _batch_view(logits: Tensor, target: Tensor) -> _BatchView:
    """The shared view of a batch, memoised for the batch last seen.

    The memo holds weak references, so it never keeps a batch alive, and a hit requires the very same,
    unmodified logits and target tensors: the scores updating from one batch share one pass over it.
    """
    values = _as_float(logits)  # checks the shape; no copy for float32 logits
    try:
        versions = (logits._version, target._version)
    except RuntimeError:  # inference-mode tensors keep no version counter: never memoised
        versions = None
    cached = _memo.get("batch")
    if versions is not None and cached is not None and cached[0]() is logits and cached[1]() is target:
        if cached[2] == versions:
            return cached[3]
    _memo.pop("batch", None)
    batch_size, num_classes = values.shape
    if batch_size >= CLASS_MAJOR_MIN_BATCH:
        # flat positions of z_y in the (K, B) layout: gather and mask with one 1-D index each
        values, class_dim = _class_major(values), 0
        at_target = torch.add(torch.arange(batch_size, device=values.device), target, alpha=batch_size)
        others = _workspace("others", tuple(values.shape), values.device).copy_(values)
    else:  # small batches: per-operation overhead dominates, the plain (B, K) layout is faster
        class_dim = 1
        at_target = torch.add(target, torch.arange(batch_size, device=values.device), alpha=num_classes)
        others = values.clone()
    target_logit = values.view(-1).index_select(0, at_target)
    others.view(-1).index_fill_(0, at_target, float("-inf"))
    view = _BatchView(values, class_dim, target, target_logit, at_target, others, others.amax(dim=class_dim))
    if versions is not None:
        _memo["batch"] = (weakref.ref(logits), weakref.ref(target), versions, view)
    return view


def el2n(logits: Tensor, target: Tensor) -> Tensor:
    """Error L2-norm ``‖softmax(z) − onehot(y)‖₂`` (Paul et al. 2021).

    Computed without cancellation as ``sqrt(S₁² + S₂) / (S₁ + e_y)`` with ``e = exp(z − max z)``,
    ``S₁ = Σ_{k≠y} e_k`` and ``S₂ = Σ_{k≠y} e_k²``: then ``1 − p_y = S₁ / s`` and ``p_k = e_k / s``.
    """
    view = _batch_view(logits, target)
    top = torch.maximum(view.target_logit, view.best_other)
    exp_others = _workspace("exp", tuple(view.logits.shape), view.logits.device)
    # exp of the finite logits, then zero at y (vectorised exp runs twice as fast without -inf lanes)
    torch.sub(view.logits, top.unsqueeze(view.class_dim), out=exp_others).exp_()
    exp_others.view(-1).index_fill_(0, view.at_target, 0.0)
    sum_others = exp_others.sum(dim=view.class_dim)
    sum_squares = exp_others.square_().sum(dim=view.class_dim)
    exp_target = (view.target_logit - top).exp()
    return (sum_others.square() + sum_squares).sqrt() / (sum_others + exp_target)


def logit_margin(logits: Tensor, target: Tensor) -> Tensor:
    """Logit margin ``z_y − max_{k≠y} z_k``: positive when correct, larger = easier."""
    view = _batch_view(logits, target)
    return view.target_logit - view.best_other


def correct(logits: Tensor, target: Tensor) -> Tensor:
    """1.0 where ``argmax z = y`` (the prediction is correct), else 0.0.

    Exactly ``argmax``'s rule, ties included (the first maximal index wins): ``z_y`` must beat every
    other class, or tie with the best of them and with no class before ``y``.
    """
    view = _batch_view(logits, target)
    is_correct = view.target_logit > view.best_other
    tied = view.target_logit == view.best_other
    if tied.device.type == "cpu":  # ties are rare: resolve only those (no device sync to avoid on CPU)
        columns = tied.nonzero().squeeze(1)
        if len(columns):
            is_correct[columns] = ~_tied_with_earlier_class(view, columns)
        return is_correct.float()
    return (is_correct | (tied & ~_tied_with_earlier_class(view, None))).float()


def _tied_with_earlier_class(view: _BatchView, columns: Optional[Tensor]) -> Tensor:
    """Whether some class ``k < y`` has ``z_k = z_y``, for the examples ``columns`` (all if None)."""
    rows = view.logits if view.class_dim == 1 else view.logits.t()  # (B, K)
    target, target_logit = view.target, view.target_logit
    if columns is not None:
        rows, target, target_logit = rows[columns], target[columns], target_logit[columns]
    earlier = torch.arange(rows.shape[1], device=rows.device).unsqueeze(0) < target.unsqueeze(1)
    return ((rows == target_logit.unsqueeze(1)) & earlier).any(dim=1)


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


def label_probability(logits: Tensor, target: Tensor) -> Tensor:
    """``p_y = softmax(z)_y``, the probability given to the labelled class (cartography's confidence)."""
    logits = _as_float(logits)
    return torch.softmax(logits, dim=1)[torch.arange(len(target), device=logits.device), target]


def entropy(logits: Tensor, target: Optional[Tensor] = None) -> Tensor:
    """Predictive entropy ``−Σ_k p_k log p_k`` (natural log); label-free, ``target`` is ignored."""
    log_p = torch.log_softmax(_as_float(logits), dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def uncertainty_margin(logits: Tensor, target: Optional[Tensor] = None) -> Tensor:
    """``p₍₁₎ − p₍₂₎``, the gap between the two most probable classes; label-free, larger = easier."""
    top2 = torch.softmax(_as_float(logits), dim=1).topk(2, dim=1).values
    return top2[:, 0] - top2[:, 1]


def grand_last_layer(logits: Tensor, target: Tensor, features: Tensor, bias: bool = True) -> Tensor:
    """GraNd restricted to a final linear layer ``z = W h + b``: ``‖p − onehot(y)‖₂ · √(‖h‖₂² + 1)``.

    The cross-entropy gradient is ``(p − y) hᵀ`` for ``W`` and ``p − y`` for ``b``, so its norm factorises;
    without a bias the ``+ 1`` goes (``bias=False``).
    """
    features = features.detach().float().flatten(1)
    squared = features.pow(2).sum(dim=1) + (1.0 if bias else 0.0)
    return el2n(logits, target) * squared.sqrt()
