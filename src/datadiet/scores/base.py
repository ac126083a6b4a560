"""Base classes for per-example scores: state indexed by original index, merged across processes.

A score owns O(N) tensors on the model's device. Per batch it only scatters values into them (no
host–device synchronisation); merging across processes happens once per epoch (or once after the
scoring pass) through the ``sync_min`` function the callback passes in, which is an elementwise
``all_reduce(MIN)`` through ``trainer.strategy`` under DDP and the identity on one process.

Why padding duplicates cannot count twice: each epoch's values go into a per-epoch buffer keyed by
original index, where a second presentation of the same example *overwrites* its slot instead of
adding to it; unseen slots hold NaN, and the cross-process merge keeps, per example, the minimum over
the processes that saw it. Accumulators (forgetting counts, AUM sums, ...) are updated from the merged
buffer once, so every example contributes at most one presentation per epoch, on every process alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar, Optional

import numpy as np
import torch
from torch import Tensor

#: ``sync_min(t)`` returns the elementwise minimum of ``t`` over all processes.
SyncMin = Callable[[Tensor], Tensor]


def single_process(tensor: Tensor) -> Tensor:
    """The merge of a single process (recognised by identity, so merges can be skipped)."""
    return tensor


def trainer_sync_min(trainer: Any) -> SyncMin:
    """The elementwise minimum over a Lightning ``Trainer``'s processes (a collective through
    ``trainer.strategy``, run on every rank); :func:`single_process` when there is one process."""
    if trainer.world_size == 1:
        return single_process
    return lambda tensor: trainer.strategy.reduce(tensor, reduce_op="min")


def merge_seen(values: Tensor, sync_min: SyncMin = single_process) -> Tensor:
    """Merges a NaN-for-unseen buffer across processes: per slot, the minimum over processes that saw it."""
    if sync_min is single_process:  # one process: nothing to merge
        return values
    filled = torch.where(torch.isnan(values), torch.full_like(values, float("inf")), values)
    merged = sync_min(filled)
    return torch.where(torch.isinf(merged) & (merged > 0), torch.full_like(merged, float("nan")), merged)


class PerExampleScore(ABC):
    """One per-example statistic accumulated during a probe run.

    Subclasses set ``phase``: ``"train"`` scores see the logits of every training presentation
    (training-mode forward pass, before the optimizer step); ``"eval"`` scores see one eval-mode
    scoring pass over the training set at the end of the probe.

    Orientation: :meth:`compute` returns ``(score, raw)`` where ``score`` is oriented so that
    larger = harder and ``raw`` is the published quantity (e.g. a margin, larger = easier).
    """

    name: ClassVar[str] = ""
    phase: ClassVar[str] = "train"
    requires_labels: ClassVar[bool] = True
    #: Bytes of state per example, documented in the README's memory table.
    bytes_per_example: ClassVar[int] = 0
    #: What the scoring pass passes to :meth:`update` besides logits, as keyword arguments:
    #: ``"features"`` (input of the final ``nn.Linear``, or of the callback's ``feature_module``),
    #: ``"inputs"`` (the model input of the batch), ``"module"`` (the ``LightningModule``, with the
    #: adapter's ``logits_fn``). Eval-phase scores only; an instance may narrow it.
    needs: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, num_examples: int) -> None:
        if num_examples < 0:
            raise ValueError(f"`num_examples` must be >= 0, got {num_examples}")
        self.num_examples = int(num_examples)
        self._state_names: list[str] = []

    def add_state(self, name: str, default: Tensor) -> None:
        """Registers an O(N) state tensor that moves with :meth:`to` and goes into checkpoints."""
        setattr(self, name, default)
        self._state_names.append(name)

    def to(self, device: torch.device | str) -> "PerExampleScore":
        for name in self._state_names:
            setattr(self, name, getattr(self, name).to(device))
        return self

    @property
    def device(self) -> torch.device:
        return getattr(self, self._state_names[0]).device if self._state_names else torch.device("cpu")

    @abstractmethod
    def update(self, original_index: Tensor, logits: Tensor, target: Optional[Tensor]) -> None:
        """Records a batch: ``logits[i]`` belongs to the example with original index ``original_index[i]``."""

    def end_epoch(self, sync_min: SyncMin = single_process) -> None:
        """Called once per training epoch on every process (train-phase scores merge here)."""

    def end_scoring(self, sync_min: SyncMin = single_process) -> None:
        """Called once after the scoring pass on every process (eval-phase scores merge here)."""

    def finalize(self, context: Any) -> None:
        """Called once on every process after the merges, before :meth:`compute`.

        For scores computed from the whole merged state (k-means over gathered embeddings, a holdout
        model's cached losses). ``context`` is a :class:`datadiet.scores.context.ScoreContext`.
        """

    @abstractmethod
    def compute(self) -> tuple[np.ndarray, np.ndarray]:
        """Returns ``(score, raw)`` as float64 arrays of length N; NaN where never seen."""

    def columns(self) -> dict[str, np.ndarray]:
        """Per-example columns besides the score that go into the table (e.g. a mislabel flag); none by default."""
        return {}

    def metadata(self) -> dict[str, Any]:
        """Entries for the table's metadata (e.g. a noise-rate estimate); none by default."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name).detach().cpu().clone() for name in self._state_names}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self._state_names:
            if name not in state:
                continue
            value = state[name]
            if value.shape != getattr(self, name).shape:
                raise ValueError(
                    f"score {self.name!r}: checkpoint state {name!r} has shape {tuple(value.shape)}, "
                    f"expected {tuple(getattr(self, name).shape)} (was the dataset changed?)"
                )
            setattr(self, name, value.to(self.device, dtype=getattr(self, name).dtype))


class EvalPassScore(PerExampleScore):
    """A score read off the eval-mode scoring pass: ``value(logits, y)`` stored per example."""

    phase = "eval"
    bytes_per_example = 4
    #: True when the raw value grows with easiness (margins), so the oriented score is ``-raw``.
    raw_is_easiness: ClassVar[bool] = False

    def __init__(self, num_examples: int) -> None:
        super().__init__(num_examples)
        self.add_state("value", torch.full((num_examples,), float("nan")))

    #: The statistic per example, a function from :mod:`datadiet.scores.functional`; scores that need
    #: more than logits (see ``needs``) override :meth:`update` instead and leave it ``None``.
    functional: ClassVar[Optional[Callable[[Tensor, Tensor], Tensor]]] = None

    def update(self, original_index: Tensor, logits: Tensor, target: Optional[Tensor]) -> None:
        self.store(original_index, self.functional(logits, target))

    def store(self, original_index: Tensor, values: Tensor) -> None:
        """Writes one value per example of the batch into the per-example state."""
        self.value.scatter_(0, original_index, values.to(self.value.device, self.value.dtype))

    def end_scoring(self, sync_min: SyncMin = single_process) -> None:
        self.value = merge_seen(self.value, sync_min)

    def compute(self) -> tuple[np.ndarray, np.ndarray]:
        raw = self.value.double().cpu().numpy()
        return (-raw if self.raw_is_easiness else raw.copy()), raw


class PresentationScore(PerExampleScore):
    """A score folded from every training presentation, one presentation per example per epoch.

    Subclasses give :meth:`presentation_value` (per batch) and :meth:`fold` (per epoch, over the
    merged epoch buffer where NaN marks examples not presented this epoch).
    """

    phase = "train"
    #: Examples folded at a time: a slice's temporaries stay in cache (3-4x faster than whole-array folds at 10 M).
    fold_chunk: ClassVar[int] = 1 << 18

    def __init__(self, num_examples: int) -> None:
        super().__init__(num_examples)
        self.add_state("epoch_value", torch.full((num_examples,), float("nan")))

    @staticmethod
    @abstractmethod
    def presentation_value(logits: Tensor, target: Tensor) -> Tensor:
        """The per-presentation quantity stored in the epoch buffer."""

    @abstractmethod
    def fold(self, epoch_value: Tensor, part: slice) -> None:
        """Accumulates one epoch's merged values of the examples ``part`` (NaN = not presented) into
        ``part`` of the running state, in place. ``epoch_value`` is the merged buffer's ``[part]``."""

    def update(self, original_index: Tensor, logits: Tensor, target: Optional[Tensor]) -> None:
        values = self.presentation_value(logits, target)
        self.epoch_value.scatter_(0, original_index, values.to(self.epoch_value.device, self.epoch_value.dtype))

    def end_epoch(self, sync_min: SyncMin = single_process) -> None:
        merged = merge_seen(self.epoch_value, sync_min)
        for start in range(0, self.num_examples, self.fold_chunk):
            part = slice(start, start + self.fold_chunk)
            self.fold(merged[part], part)
        self.epoch_value.fill_(float("nan"))


class PresentationMean(PresentationScore):
    """The mean over training presentations of :meth:`presentation_value` (AUM, correctness, ...).

    State: a float32 sum and an int32 presentation count per example; NaN for an example never presented.
    """

    bytes_per_example = 4 + 4 + 4
    #: True when the raw mean grows with easiness (margins, correctness), so the oriented score is ``-raw``.
    raw_is_easiness: ClassVar[bool] = False

    def __init__(self, num_examples: int) -> None:
        super().__init__(num_examples)
        self.add_state("value_sum", torch.zeros(num_examples))
        self.add_state("presentations", torch.zeros(num_examples, dtype=torch.int32))

    def fold(self, epoch_value: Tensor, part: slice) -> None:
        seen = epoch_value == epoch_value  # not NaN
        self.value_sum[part].add_(torch.where(seen, epoch_value, 0.0))
        self.presentations[part].add_(seen)

    def compute(self) -> tuple[np.ndarray, np.ndarray]:
        count = self.presentations.double()
        mean = self.value_sum.double() / count.clamp(min=1)
        raw = torch.where(count > 0, mean, torch.full_like(mean, float("nan"))).cpu().numpy()
        return (-raw if self.raw_is_easiness else raw.copy()), raw
