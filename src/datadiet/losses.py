"""Per-example losses, the common currency of scores, dynamic pruning and RHO-LOSS (pure functions).

Every function returns one float32 value per example, computed in float32 whatever the input's dtype
(AMP safe), from the model's output and the batch's targets (differentiable: GraNd takes their gradient):

- ``cross_entropy``: logits ``(B, K)`` with integer labels ``(B,)``, or probability targets ``(B, K)``
  (soft labels, e.g. from mixup); logits ``(B, T, K)`` with integer labels ``(B, T)``: the mean over the
  example's tokens whose label is not ``ignore_index`` (its log perplexity);
- ``bce``: binary cross-entropy with logits against multi-hot float targets, the mean over the labels;
- ``mse`` / ``l1``: squared / absolute error, the mean over the output's elements of one example.

:func:`token_values` and :func:`token_mean` turn any per-row statistic of ``(rows, K)`` logits into its
per-token ``(B, T)`` values and per-example means, padding excluded.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

import torch
from torch import Tensor

#: The built-in losses of :class:`datadiet.Adapter` (``loss=``); anything else is a callable.
LOSSES = ("cross_entropy", "bce", "mse", "l1")
#: The losses whose model output are class logits: the scores that read class probabilities need one.
CLASS_PROBABILITY_LOSSES = ("cross_entropy",)

RowStatistic = Callable[[Tensor, Tensor], Tensor]


def token_values(statistic: RowStatistic, logits: Tensor, target: Tensor, ignore_index: int = -100) -> Tensor:
    """``statistic`` of every token of ``(B, T, K)`` logits with ``(B, T)`` labels, as ``(B, T)`` float32.

    Tokens labelled ``ignore_index`` are NaN (``statistic`` sees label 0 there, and its value is dropped).
    """
    flat_logits, flat_target, real = _flat_tokens(logits, target, ignore_index)
    values = statistic(flat_logits, flat_target)
    return values.view(real.shape).float().masked_fill(~real, float("nan"))


_flat_memo: dict[str, Any] = {}


def _flat_tokens(logits: Tensor, target: Tensor, ignore_index: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(B·T, K)`` logits, ``(B·T,)`` labels (0 where ignored) and the ``(B, T)`` real-token mask.

    Memoised for the batch last seen (weak references, unmodified tensors only), so that the scores of one
    batch get the very same flattened tensors — and the per-batch view they share (``scores.functional``)
    is computed once.
    """
    if logits.ndim != 3 or target.shape != logits.shape[:2]:
        raise ValueError(
            f"sequence logits must be (batch, tokens, classes) with labels (batch, tokens), got logits "
            f"{tuple(logits.shape)} and labels {tuple(target.shape)}"
        )
    try:
        key = (logits._version, target._version, ignore_index)
    except RuntimeError:  # inference-mode tensors keep no version counter: never memoised
        key = None
    cached = _flat_memo.get("tokens")
    if key is not None and cached is not None and cached[0]() is logits and cached[1]() is target and cached[2] == key:
        return cached[3]
    batch, tokens, classes = logits.shape
    real = target != ignore_index
    flat = (logits.reshape(batch * tokens, classes), torch.where(real, target, 0).reshape(-1), real)
    if key is not None:
        _flat_memo["tokens"] = (weakref.ref(logits), weakref.ref(target), key, flat)
    return flat


def token_mean(statistic: RowStatistic, logits: Tensor, target: Tensor, ignore_index: int = -100) -> Tensor:
    """The mean of ``statistic`` over each example's real tokens (NaN for an example with none)."""
    return nan_mean(token_values(statistic, logits, target, ignore_index))


def nan_mean(values: Tensor) -> Tensor:
    """The mean of each row over its non-NaN entries; NaN for a row with none.

    Summed in float64: a float32 sum's rounding depends on the row's length, i.e. on how far a batch was
    padded, and the same example must get the same value in any batch (and on any number of processes).
    """
    seen = ~torch.isnan(values)
    return (torch.where(seen, values.double(), 0.0).sum(dim=1) / seen.sum(dim=1)).to(values.dtype)


def _float(values: Tensor) -> Tensor:
    # not detached: GraNd differentiates these losses (callers under no_grad pay nothing for it)
    return values.float()


def _class_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """``logsumexp(z) − z_y`` per row of ``(rows, K)`` logits (``F.cross_entropy``'s value, ~4x faster on CPU)."""
    logits = _float(logits)
    return torch.logsumexp(logits, dim=1) - logits.gather(1, target.view(-1, 1)).squeeze(1)


def cross_entropy(logits: Tensor, target: Tensor, ignore_index: int = -100) -> Tensor:
    """Per-example cross-entropy (natural log): ``−log softmax(z)_y``, ``−Σ_k t_k log softmax(z)_k`` for
    probability targets, or the mean over real tokens for sequences."""
    if logits.ndim == 3:  # F.cross_entropy: one fused pass (log-softmax and gather), 0 at ignored tokens
        if target.shape != logits.shape[:2]:
            raise ValueError(
                f"sequence logits {tuple(logits.shape)} need labels (batch, tokens), got {tuple(target.shape)}"
            )
        token = torch.nn.functional.cross_entropy(
            _float(logits).reshape(-1, logits.shape[-1]),
            target.reshape(-1),
            ignore_index=ignore_index,
            reduction="none",
        ).view(target.shape)
        real = target != ignore_index
        return (token.double().sum(dim=1) / real.sum(dim=1)).float()  # float64 sum: see `nan_mean`
    if logits.ndim != 2:
        raise ValueError(
            f"logits must have shape (batch, classes) or (batch, tokens, classes), got {tuple(logits.shape)}"
        )
    if target.is_floating_point():
        if target.shape != logits.shape:
            raise ValueError(
                f"probability targets must match the logits' shape {tuple(logits.shape)}, got {tuple(target.shape)}"
            )
        return -(_float(target) * torch.log_softmax(_float(logits), dim=1)).sum(dim=1)
    return _class_cross_entropy(logits, target)


def _paired(output: Tensor, target: Tensor, loss: str) -> tuple[Tensor, Tensor]:
    """Output and target as ``(B, D)`` float32, the ``D`` elements of each example side by side."""
    batch = output.shape[0] if output.ndim else 0
    if output.ndim == 0 or target.numel() != output.numel() or target.shape[:1] != output.shape[:1]:
        raise ValueError(
            f"`{loss}` compares each example's outputs with as many targets, got output {tuple(output.shape)} and "
            f"target {tuple(target.shape)}"
        )
    return _float(output).reshape(batch, -1), _float(target).reshape(batch, -1)


def binary_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Binary cross-entropy with logits against (multi-hot) float targets, the mean over an example's labels."""
    logits, target = _paired(logits, target, "bce")
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=1)


def squared_error(output: Tensor, target: Tensor) -> Tensor:
    """``mean_d (ŷ_d − y_d)²`` per example (outputs ``(B,)``, ``(B, 1)`` against ``(B,)``, or ``(B, D)``)."""
    output, target = _paired(output, target, "mse")
    return (output - target).square().mean(dim=1)


def absolute_error(output: Tensor, target: Tensor) -> Tensor:
    """``mean_d |ŷ_d − y_d|`` per example."""
    output, target = _paired(output, target, "l1")
    return (output - target).abs().mean(dim=1)


def per_example_loss(loss: str, output: Tensor, target: Tensor, ignore_index: int = -100) -> Tensor:
    """The built-in ``loss`` (one of :data:`LOSSES`) of every example of a batch, float32 ``(B,)``."""
    if loss == "cross_entropy":
        return cross_entropy(output, target, ignore_index)
    if loss == "bce":
        return binary_cross_entropy(output, target)
    if loss == "mse":
        return squared_error(output, target)
    if loss == "l1":
        return absolute_error(output, target)
    raise ValueError(f"`loss` can be {', '.join(LOSSES)} or a callable, got {loss!r}")


def loss_logit_gradient(loss: str, output: Tensor, target: Tensor) -> Tensor:
    """``∂ℓ_i/∂z_i``, each example's loss gradient with respect to its own outputs, ``(B, D)`` float32.

    Closed forms of the built-in losses for one output row per example: ``p − y`` (cross-entropy),
    ``(σ(z) − y)/D`` (bce), ``2(z − y)/D`` (mse), ``sign(z − y)/D`` (l1). GraNd's last-layer form uses it.
    """
    if loss == "cross_entropy":
        if output.ndim != 2:
            raise ValueError(f"cross-entropy's logit gradient needs logits (batch, classes), got {tuple(output.shape)}")
        probabilities = torch.softmax(_float(output), dim=1)
        if target.is_floating_point():
            return probabilities - _float(target)
        return probabilities - torch.nn.functional.one_hot(target, probabilities.shape[1]).float()
    output, target = _paired(output, target, loss)
    width = output.shape[1]
    if loss == "bce":
        return (torch.sigmoid(output) - target) / width
    if loss == "mse":
        return 2 * (output - target) / width
    if loss == "l1":
        return torch.sign(output - target) / width
    raise ValueError(f"`loss` can be {', '.join(LOSSES)}, got {loss!r}")
