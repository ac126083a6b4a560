"""GraNd (Paul et al. 2021): the norm of an example's loss gradient, ``‖∇_θ ℓ(x, y)‖₂``.

Two versions, chosen with ``score_options={"grand": {"exact": ...}}``:

* ``exact=False`` (default) — the last-layer closed form ``‖p − onehot(y)‖₂ · √(‖h‖₂² + 1)`` (for other
  losses of :class:`~datadiet.Adapter`, ``‖∂ℓ/∂z‖₂`` in place of ``‖p − onehot(y)‖₂``), the
  gradient with respect to the final linear layer only, with ``h`` the input of that layer (the last
  ``nn.Linear`` of the module, or the callback's ``feature_module``). Costs one forward pass.
* ``exact=True`` — the per-example gradient over *all* trainable parameters, computed with
  ``torch.func`` (``vmap(grad(...))`` over the batch, ``chunk_size`` examples at a time). Costs about
  one backward pass per example and ``chunk_size × #parameters`` floats of memory.

Both are read in the eval-mode scoring pass at the end of the probe, in float32 losses.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

from datadiet.adapter import Adapter
from datadiet.losses import per_example_loss
from datadiet.scores import functional as F
from datadiet.scores.base import EvalPassScore
from datadiet.scores.registry import register_score


def exact_gradient_norm(
    module: nn.Module,
    inputs: Any,
    target: Tensor,
    logits_fn: Callable[[Any], Tensor] = lambda out: out,
    chunk_size: Optional[int] = 32,
    adapter: Optional[Adapter] = None,
    batch: Any = None,
) -> Tensor:
    """``‖∇_θ ℓ(f(x_i), y_i)‖₂`` per example over every parameter with ``requires_grad``.

    ``ℓ`` is the adapter's per-example loss (cross-entropy by default; with a callable loss each example's
    batch is ``batch`` cut to that example, so every leaf of ``batch`` must be a tensor of the batch's
    examples). The module is called one example at a time under ``vmap`` (buffers such as batch-norm
    statistics are used as they are, so call it in eval mode).
    """
    from torch.func import functional_call, grad, vmap
    from torch.utils._pytree import tree_map

    adapter = adapter or Adapter(logits_fn=logits_fn)
    params = {name: p.detach() for name, p in module.named_parameters() if p.requires_grad}
    buffers = {name: b.detach() for name, b in module.named_buffers()}
    one = lambda t: t.unsqueeze(0) if isinstance(t, Tensor) else t  # noqa: E731

    if callable(adapter.loss):

        def example_loss(params: dict[str, Tensor], x: Any, example: Any) -> Tensor:
            output = functional_call(module, (params, buffers), (tree_map(one, x),))
            return adapter.loss(output, tree_map(one, example))[0]

        per_example = (inputs, batch)
    else:

        def example_loss(params: dict[str, Tensor], x: Any, y: Tensor) -> Tensor:
            logits = adapter.logits_fn(functional_call(module, (params, buffers), (tree_map(one, x),)))
            if adapter.shift_labels and logits.ndim == 3:  # `y` is already shifted, as the scoring pass read it
                logits = logits[:, :-1]
            return per_example_loss(adapter.loss, logits, one(y), adapter.ignore_index)[0]

        per_example = (inputs, target)
    grads = vmap(grad(example_loss), in_dims=(None, 0, 0), chunk_size=chunk_size)(params, *per_example)
    squared = sum(g.float().flatten(1).pow(2).sum(dim=1) for g in grads.values())
    return torch.as_tensor(squared).sqrt()


@register_score("grand")
class GraNd(EvalPassScore):
    """GraNd from the scoring pass; larger = harder, raw and oriented are the same.

    The gradient is that of the adapter's per-example loss. The closed form is
    ``‖∂ℓ/∂z‖₂ · √(‖h‖₂² + 1)`` for one output row per example (``p − onehot(y)`` for cross-entropy); for
    sequences and callable losses only ``exact=True`` is defined (the head's gradient sums over tokens).

    Args:
        num_examples: training set size.
        exact: per-example gradient over all parameters via ``torch.func`` instead of the last-layer
            closed form (see the module docstring).
        bias: whether the final linear layer has a bias (the ``+ 1`` under the root of the closed form).
        chunk_size: examples per vectorised gradient computation (``exact=True`` only).
    """

    needs = frozenset({"features", "adapter"})
    needs_class_probabilities = False

    def __init__(
        self, num_examples: int, exact: bool = False, bias: bool = True, chunk_size: Optional[int] = 32
    ) -> None:
        super().__init__(num_examples)
        if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
            raise ValueError(f"`chunk_size` must be a positive integer or None, got {chunk_size!r}")
        self.exact = bool(exact)
        self.bias = bool(bias)
        self.chunk_size = chunk_size
        self.needs = (
            frozenset({"module", "inputs", "adapter", "batch"}) if self.exact else frozenset({"features", "adapter"})
        )

    def check_batch(self, logits: Any, target: Any, adapter: Adapter) -> None:
        if self.exact:
            return
        if callable(adapter.loss) or logits.ndim > 2:
            raise ValueError(
                f"grand's last-layer closed form needs one output row per example and a built-in loss, got outputs "
                f"{tuple(logits.shape)} with {adapter.loss_name}; pass `score_options={{'grand': {{'exact': True}}}}` "
                "(the per-example gradient over all parameters)"
            )

    def update(
        self,
        original_index: Tensor,
        logits: Tensor,
        target: Optional[Tensor],
        *,
        features: Optional[Tensor] = None,
        inputs: Any = None,
        module: Optional[nn.Module] = None,
        logits_fn: Callable[[Any], Tensor] = lambda out: out,
        adapter: Optional[Adapter] = None,
        batch: Any = None,
    ) -> None:
        adapter = adapter or Adapter(logits_fn=logits_fn)
        if self.exact:
            if module is None or inputs is None:
                raise ValueError("grand with `exact=True` needs `module=` and `inputs=`")
            value = exact_gradient_norm(module, inputs, target, adapter.logits_fn, self.chunk_size, adapter, batch)
        else:
            if features is None:
                raise ValueError("grand needs the input of the final linear layer: `update(..., features=h)`")
            if adapter.loss == "cross_entropy" and not target.is_floating_point():
                value = F.grand_last_layer(logits, target, features, bias=self.bias)
            else:
                gradient = F.loss_logit_gradient(adapter.loss, logits.detach(), target)
                head = features.detach().float().flatten(1).pow(2).sum(dim=1) + (1.0 if self.bias else 0.0)
                value = gradient.norm(dim=1) * head.sqrt()
        self.store(original_index, value)
