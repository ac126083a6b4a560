"""``pruning.mode``: one registered entry per way of pruning, asked by the phases what it adds.

A mode says whether a subset is selected before (or early in) training, which callbacks prune during the
main training, what its resumed training depends on, what it adds to the summary, and whether a run of it
can be the full-data reference. ``static`` (a selected subset), ``dynamic`` (InfoBatch on all data, no
probe) and ``both`` (dynamic pruning inside the selected subset) are registered here; a new mode is one
:class:`PruningMode` subclass registered with :func:`register_mode`, plus its test — no phase changes.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Optional, Protocol, Sequence

from lightning.pytorch.callbacks import Callback

from datadiet.app.budget import Budget
from datadiet.callbacks import DynamicPruning
from datadiet.registry import Registry


class PruningPlan(Protocol):
    """What a mode reads of the plan's ``pruning`` part (:class:`datadiet.app.plan_parts.PruningPlan`)."""

    keep_fraction: float
    subset_path: Optional[str]
    seed: int
    prune_ratio: float
    anneal_fraction: float


MODES: Registry["PruningMode"] = Registry("pruning mode")
_ORDER: list[str] = []  # registration order, for messages


class PruningMode:
    """What a ``pruning.mode`` adds to a run (the defaults are those of ``static``)."""

    name: ClassVar[str]
    #: Whether the run selects a subset (by a probe, in the run or from a file) before training on it.
    selects_subset: ClassVar[bool] = True
    #: Whether a run of this mode on all data for ``max_epochs`` is the full-data reference.
    can_be_reference: ClassVar[bool] = False

    def check(self, pruning: PruningPlan, budget: Budget) -> None:
        """Fails before any training on settings this mode cannot honour."""

    def callbacks(self, pruning: PruningPlan) -> list[Callback]:
        """Callbacks that prune during the main training."""
        return []

    def train_settings(self, pruning: PruningPlan) -> dict[str, Any]:
        """What a resumed main training depends on besides the kept subset (its checkpoint is reused only if equal)."""
        return {}

    def summary(self, callbacks: Sequence[Callback]) -> dict[str, Any]:
        """Entries of ``summary.json`` from this mode's callbacks after the fit."""
        return {}

    def probe_mode(self, configured: str) -> str:
        """The probe as the summary reports it."""
        return configured


def register_mode(name: str) -> Callable[[type[PruningMode]], type[PruningMode]]:
    """Registers a :class:`PruningMode` subclass as ``pruning.mode=<name>``."""

    def decorator(cls: type[PruningMode]) -> type[PruningMode]:
        cls.name = name
        MODES.register(name)(cls())
        if name not in _ORDER:
            _ORDER.append(name)
        return cls

    return decorator


def pruning_mode(name: str) -> PruningMode:
    """The registered mode ``name``.

    Raises:
        ValueError: an unknown mode, naming the registered ones.
    """
    if name not in MODES:
        raise ValueError(f"`pruning.mode` can be {', '.join(_ORDER)}, got {name!r}")
    return MODES.get(name)


@register_mode("static")
class Static(PruningMode):
    """The subset chosen by probe → score → select (or in the run, or from a file), trained on as it is."""

    can_be_reference = True


class _WithDynamicPruning(PruningMode):
    """Modes that train with :class:`~datadiet.DynamicPruning` (InfoBatch: each epoch skips a random
    ``prune_ratio`` of the below-mean-loss examples, re-weighting the rest)."""

    def check(self, pruning: PruningPlan, budget: Budget) -> None:
        self.callbacks(pruning)  # validates prune_ratio and anneal_fraction
        if budget.kind != "epochs":
            raise ValueError(
                f"`pruning.mode={self.name}` skips examples as training goes, so `pruning.budget={budget.kind}` (set "
                "from the kept subset's size before training) cannot be honoured; use pruning.budget=epochs"
            )

    def callbacks(self, pruning: PruningPlan) -> list[Callback]:
        return [
            DynamicPruning(prune_ratio=pruning.prune_ratio, anneal_fraction=pruning.anneal_fraction, seed=pruning.seed)
        ]

    def train_settings(self, pruning: PruningPlan) -> dict[str, Any]:
        return {
            "dynamic_pruning": {
                "mode": self.name,
                "prune_ratio": pruning.prune_ratio,
                "anneal_fraction": pruning.anneal_fraction,
                "seed": pruning.seed,
            }
        }

    def summary(self, callbacks: Sequence[Callback]) -> dict[str, Any]:
        # examples presented per epoch: the skipped ones are in `train_examples_seen` already
        [dynamic] = [callback for callback in callbacks if isinstance(callback, DynamicPruning)]
        return {
            "prune_ratio": dynamic.prune_ratio,
            "anneal_fraction": dynamic.anneal_fraction,
            "presentations_per_epoch": list(dynamic.presentations_per_epoch),
        }


@register_mode("dynamic")
class Dynamic(_WithDynamicPruning):
    """All data, with dynamic pruning; nothing is scored before training (no probe)."""

    selects_subset = False

    def check(self, pruning: PruningPlan, budget: Budget) -> None:
        super().check(pruning, budget)
        if pruning.subset_path:
            raise ValueError(
                "`pruning.mode=dynamic` trains on all data; to prune dynamically inside "
                f"`pruning.subset_path={pruning.subset_path}`, use pruning.mode=both"
            )

    def summary(self, callbacks: Sequence[Callback]) -> dict[str, Any]:
        return {**super().summary(callbacks), "strategy": "dynamic"}

    def probe_mode(self, configured: str) -> str:
        return "none"


@register_mode("both")
class Both(_WithDynamicPruning):
    """Dynamic pruning inside the selected subset (with the in-run probe: on all data until it prunes)."""
