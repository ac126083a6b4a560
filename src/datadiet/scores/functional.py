"""Pure per-example statistics over a batch of logits: the functional twins of the score classes.

Every function takes logits ``z`` of shape ``(B, K)`` and integer labels ``y`` of shape ``(B,)`` and
returns one float32 value per example, computed in float32 whatever the logits' dtype (AMP safe).
"""

from __future__ import annotations

import weakref
from typing import Any, NamedTuple, Optional

import torch
from torch import Tensor


def _as_float(logits: Tensor) -> Tensor:
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (batch, num_classes), got {tuple(logits.shape)}")
    return logits.detach().float()


class _BatchView(NamedTuple):
    """Per-batch quantities shared by several scores, computed once (class-major ``(K, B)`` for large batches).

    On CPU, reductions over a short class axis, masks and fresh ``(K, B)`` temporaries are each several
    times slower than row-wise operations over the batch axis in a reused workspace; so the batch is
    transposed once, "all classes but y" is read off prefix/suffix max scans over the K class rows, and every
    score of the batch reuses the ``(B,)`` results (see :func:`_batch_view`).
    """

    logits: Tensor  # (K, B) float32 workspace (valid until the next batch), or (B, K) for small batches
    class_major: bool
    target: Tensor  # (B,) labels
    target_logit: Tensor  # (B,) z_y
    best_before: Tensor  # (B,) max_{k < y} z_k (-inf when y = 0)
    best_after: Tensor  # (B,) max_{k > y} z_k (-inf when y = K - 1)

    @property
    def best_other(self) -> Tensor:
        return torch.maximum(self.best_before, self.best_after)


#: From this many examples per batch on, the class-major layout is faster on CPU (3.6x at 16k, 0.3x at 128).
CLASS_MAJOR_MIN_BATCH = 1024

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


def _max_before_and_after(rows: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Per column of class-major ``rows``: the max over classes ``k < y`` and over ``k > y`` (-inf if none),
    by prefix and suffix scans over the K class rows."""
    num_classes = rows.shape[0]
    prefix = _workspace("max_prefix", tuple(rows.shape), rows.device).copy_(rows)
    suffix = _workspace("max_suffix", tuple(rows.shape), rows.device).copy_(rows)
    for k in range(1, num_classes):
        torch.maximum(prefix[k - 1], prefix[k], out=prefix[k])
        torch.maximum(suffix[num_classes - k], suffix[num_classes - k - 1], out=suffix[num_classes - k - 1])
    before = prefix.gather(0, (target - 1).clamp(min=0).unsqueeze(0)).squeeze(0)
    after = suffix.gather(0, (target + 1).clamp(max=num_classes - 1).unsqueeze(0)).squeeze(0)
    return before.masked_fill_(target == 0, float("-inf")), after.masked_fill_(target == num_classes - 1, float("-inf"))


def _batch_view(logits: Tensor, target: Tensor) -> _BatchView:
    """The class-major view of a batch, memoised for the batch last seen.

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
    if logits.shape[0] >= CLASS_MAJOR_MIN_BATCH:
        values = _workspace("logits", (values.shape[1], values.shape[0]), values.device).copy_(values.t())
        best_before, best_after = _max_before_and_after(values, target)
        target_logit = values.gather(0, target.unsqueeze(0)).squeeze(0)
        view = _BatchView(values, True, target, target_logit, best_before, best_after)
    else:  # small batches: per-operation overhead dominates, the plain (B, K) layout is faster
        classes = torch.arange(values.shape[1], device=values.device).unsqueeze(0)
        column = target.unsqueeze(1)
        best_before = values.masked_fill(classes >= column, float("-inf")).amax(dim=1)
        best_after = values.masked_fill(classes <= column, float("-inf")).amax(dim=1)
        target_logit = values.gather(1, column).squeeze(1)
        view = _BatchView(values, False, target, target_logit, best_before, best_after)
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
    if not view.class_major:
        exp_others = (view.logits - top.unsqueeze(1)).exp_().scatter_(1, view.target.unsqueeze(1), 0.0)
        sum_others = exp_others.sum(dim=1)
        sum_squares = exp_others.square_().sum(dim=1)
        exp_target = (view.target_logit - top).exp()
        return (sum_others.square() + sum_squares).sqrt() / (sum_others + exp_target)
    shape, device = tuple(view.logits.shape), view.logits.device
    classes = torch.arange(shape[0], device=device).unsqueeze(1)
    is_target = torch.eq(classes, view.target.unsqueeze(0), out=_workspace("mask", shape, device, torch.bool))
    exp_others = _workspace("exp", shape, device).copy_(view.logits).sub_(top).exp_().masked_fill_(is_target, 0.0)
    sum_others = exp_others.sum(dim=0)
    sum_squares = exp_others.square_().sum(dim=0)
    exp_target = (view.target_logit - top).exp()
    return (sum_others.square() + sum_squares).sqrt() / (sum_others + exp_target)


def logit_margin(logits: Tensor, target: Tensor) -> Tensor:
    """Logit margin ``z_y − max_{k≠y} z_k``: positive when correct, larger = easier."""
    view = _batch_view(logits, target)
    return view.target_logit - view.best_other


def correct(logits: Tensor, target: Tensor) -> Tensor:
    """1.0 where ``argmax z = y`` (the prediction is correct), else 0.0.

    Exactly ``argmax``'s rule, ties included (the first maximal index wins): ``z_y`` must beat every
    lower class strictly and every higher class or tie with it.
    """
    view = _batch_view(logits, target)
    return ((view.target_logit > view.best_before) & (view.target_logit >= view.best_after)).float()


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


def cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Per-example cross-entropy ``−log softmax(z)_y`` (natural log)."""
    return torch.nn.functional.cross_entropy(_as_float(logits), target, reduction="none")


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
