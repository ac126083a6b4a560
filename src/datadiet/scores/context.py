"""What scores that need more than logits get: captured features, and the context of ``finalize``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import Tensor, nn

from datadiet.scores.base import SyncMin, single_process


def _broadcast_identity(obj: Any, src: int = 0) -> Any:
    return obj


@dataclass
class ScoreContext:
    """Everything :meth:`PerExampleScore.finalize` may use; the callback builds it from the trainer.

    Attributes:
        sync_min: elementwise minimum over processes (identity on one process).
        broadcast: ``broadcast(obj, src=0)`` through ``trainer.strategy`` (identity on one process), so a
            result computed from merged state is identical on every rank.
        labels_fn: returns the integer labels of the whole training set, or ``None`` (read through
            :attr:`labels` only by the scores that need them: reading them may scan the dataset).
        num_classes: number of classes when known (the data module's ``num_classes``), else ``None``.
        world_size: number of processes.
        is_global_zero: whether this is rank 0.
    """

    sync_min: SyncMin = single_process
    broadcast: Callable[..., Any] = _broadcast_identity
    labels_fn: Callable[[], Optional[np.ndarray]] = lambda: None
    num_classes: Optional[int] = None
    world_size: int = 1
    is_global_zero: bool = True

    @property
    def labels(self) -> Optional[np.ndarray]:
        """Integer labels of the whole training set, or ``None``."""
        return self.labels_fn()


def find_feature_module(module: nn.Module, name: Optional[str] = None) -> nn.Module:
    """The module whose *input* is an example's features: ``module.get_submodule(name)``, or by default
    the last ``nn.Linear`` in ``module.modules()`` order (the classification head of a usual network).

    Raises:
        ValueError: no submodule ``name``, or no ``nn.Linear`` at all.
    """
    if name:
        try:
            return module.get_submodule(name)
        except AttributeError:
            names = [n for n, _ in module.named_modules() if n]
            raise ValueError(f"`feature_module={name!r}` is not a submodule; available: {', '.join(names)}") from None
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(
            "no nn.Linear head found to read features from; pass `feature_module='<submodule name>'` "
            "(its input is used as the example's features)"
        )
    return linears[-1]


class FeatureCapture:
    """Context manager recording the input of ``feature_module`` during each forward pass.

    Example::

        with FeatureCapture(find_feature_module(model)) as capture:
            logits = model(x)
            h = capture.features          # (B, D), the head's input
    """

    def __init__(self, feature_module: nn.Module) -> None:
        self.feature_module = feature_module
        self.features: Optional[Tensor] = None
        self._handle: Optional[torch.utils.hooks.RemovableHandle] = None

    def _hook(self, module: nn.Module, args: Any) -> None:
        self.features = args[0].detach().flatten(1)

    def __enter__(self) -> "FeatureCapture":
        self._handle = self.feature_module.register_forward_pre_hook(self._hook)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def take(self) -> Tensor:
        """The features of the last forward pass (then cleared, so a stale batch is never reused)."""
        if self.features is None:
            raise RuntimeError(
                f"the feature module {type(self.feature_module).__name__} was not called in the forward pass"
            )
        features, self.features = self.features, None
        return features
