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

from datadiet.losses import nan_mean, token_mean, token_values

#: What a score computes per example: a function of a batch's ``(B, K)`` logits and ``(B,)`` labels.
Statistic = Callable[[Tensor, Optional[Tensor]], Tensor]

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
    """Merges a NaN-for-unseen buffer across processes: per slot, the minimum over processes that saw it.

    ``values`` is left as it was; the merge costs one buffer-sized copy (reduced in place) and a mask.
    """
    if sync_min is single_process:  # one process: nothing to merge
        return values
    inf = float("inf")
    merged = sync_min(torch.nan_to_num(values, nan=inf, posinf=inf, neginf=-inf))
    return merged.masked_fill_(merged == inf, float("nan"))


class PerExampleScore(ABC):
    """One per-example statistic accumulated during a probe run.

    Subclasses set ``phase``: ``"train"`` scores see the logits of every training presentation
    (training-mode forward pass, before the optimizer step); ``"eval"`` scores see one eval-mode
    scoring pass over the training set at the end of the probe.

    Orientation: :meth:`compute` returns ``(score, raw)`` where ``score`` is oriented so that
    larger = harder and ``raw`` is the published quantity (e.g. a margin, larger = easier).

    Sequences: logits ``(B, T, K)`` with labels ``(B, T)`` are scored per token and averaged over each
    example's tokens whose label is not :attr:`ignore_index` (the callbacks set it from their adapter).
    """

    name: ClassVar[str] = ""
    phase: ClassVar[str] = "train"
    requires_labels: ClassVar[bool] = True
    #: Whether the score reads class probabilities ``softmax(z)`` (EL2N, margin, ...): it then needs a model
    #: trained with cross-entropy (``Adapter(loss="cross_entropy")``), at least two classes and, when it
    #: ``requires_labels``, integer labels. ``False`` for scores of the per-example loss or of features.
    needs_class_probabilities: ClassVar[bool] = True
    #: Sequence positions with this label do not count (set from the callback's ``Adapter``).
    ignore_index: int = -100
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

    @classmethod
    def check_adapter(cls, adapter: Any) -> None:
        """Refuses, before anything trains, an :class:`~datadiet.Adapter` whose loss this score cannot read."""
        if cls.needs_class_probabilities and not adapter.class_probabilities:
            raise ValueError(
                f"score {cls.name!r} reads class probabilities softmax(z), which a model trained with "
                f"{adapter.loss_name} does not have; with that loss use scores of the per-example loss "
                "('loss', 'rho_loss', 'grand') or of features ('prototype_distance'), and DynamicPruning"
            )

    def check_batch(self, logits: Any, target: Any, adapter: Any) -> None:
        """Refuses, before anything trains, what a first batch shows this score cannot be computed from.

        ``logits`` and ``target`` are those of a batch of the training set, as ``adapter`` reads them.
        """
        if not self.needs_class_probabilities:
            return
        shape = tuple(logits.shape)
        if logits.ndim not in (2, 3) or shape[-1] < 2:
            raise ValueError(
                f"score {self.name!r} reads class probabilities from logits (batch, classes) or (batch, tokens, "
                f"classes) with at least 2 classes, got model outputs of shape {shape}"
                + (
                    "; one output per example is a regressor: pass `Adapter(loss='mse')` (or 'l1') and score by 'loss'"
                    if shape[-1:] == (1,) or logits.ndim == 1
                    else ""
                )
            )
        if not self.requires_labels or target is None:
            return
        expected = shape[:-1]
        if not isinstance(target, Tensor) or target.is_floating_point() or tuple(target.shape) != expected:
            raise ValueError(
                f"score {self.name!r} needs integer class labels of shape {expected} beside logits {shape}, got "
                f"labels {_describe(target)}; probability or multi-hot targets have no class label: score by "
                "'loss' (with `Adapter(loss='bce')` for multi-label)"
            )

    def per_example(self, statistic: Statistic, logits: Tensor, target: Optional[Tensor]) -> Tensor:
        """``statistic`` of each example: of its logits row, or the mean over its real tokens for sequences."""
        logits = logits.detach()
        if logits.ndim != 3:
            return statistic(logits, target)
        if target is None:  # label-free: every token counts
            batch, tokens, classes = logits.shape
            return statistic(logits.reshape(batch * tokens, classes), None).view(batch, tokens).float().mean(dim=1)
        return token_mean(statistic, logits, target, self.ignore_index)

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
        """Returns ``(score, raw)``: float arrays of length N (float32 where the statistic is kept in
        float32), NaN where never seen; the same array twice when raw and score are equal."""

    def columns(self) -> dict[str, np.ndarray]:
        """Per-example columns besides the score that go into the table (e.g. a mislabel flag); none by default."""
        return {}

    def metadata(self) -> dict[str, Any]:
        """Entries for the table's metadata (e.g. a noise-rate estimate); none by default."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """The state tensors on the host; on the CPU they share memory with the live state (as
        ``nn.Module.state_dict`` does), so a checkpoint costs no copy of them. Copy them to keep a snapshot."""
        return {name: getattr(self, name).detach().cpu() for name in self._state_names}

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
            # a copy: the state dict may be another score's live state (see `state_dict`)
            setattr(self, name, value.to(self.device, dtype=getattr(self, name).dtype, copy=True))


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
    #: A score of the per-example loss: with a loss other than cross-entropy (``Adapter(loss=...)``) the
    #: scoring pass hands it the adapter's per-example loss (:meth:`store`) instead of calling ``functional``.
    from_example_loss: ClassVar[bool] = False

    def update(self, original_index: Tensor, logits: Tensor, target: Optional[Tensor]) -> None:
        self.store(original_index, self.per_example(self.functional, logits, target))

    def store(self, original_index: Tensor, values: Tensor) -> None:
        """Writes one value per example of the batch into the per-example state."""
        self.value.scatter_(0, original_index, values.to(self.value.device, self.value.dtype))

    def end_scoring(self, sync_min: SyncMin = single_process) -> None:
        self.value = merge_seen(self.value, sync_min)

    def compute(self) -> tuple[np.ndarray, np.ndarray]:
        raw = self.value.detach().to("cpu", copy=True).numpy()  # float32: nothing a float64 copy would add
        return (-raw if self.raw_is_easiness else raw), raw


class PresentationScore(PerExampleScore):
    """A score folded from every training presentation, one presentation per example per epoch.

    Subclasses give :meth:`presentation_value` (per batch) and :meth:`fold` (per epoch, over the
    merged epoch buffer where NaN marks examples not presented this epoch).

    Sequences: a score whose per-example value commutes with the mean over tokens (a mean over
    presentations) folds each example's token mean. One that does not (forgetting events, the standard
    deviation over epochs) sets :attr:`per_token`: its state then holds one entry per token (``(N, T)``,
    sized by the longest sequence seen, NaN-free padding never counts as presented) and :meth:`compute`
    averages each example's tokens.
    """

    phase = "train"
    #: Examples folded at a time: a slice's temporaries stay in cache (3-4x faster than whole-array folds at 10 M).
    fold_chunk: ClassVar[int] = 1 << 18
    #: Keep per-token state for sequences (see the class docstring).
    per_token: ClassVar[bool] = False

    def __init__(self, num_examples: int) -> None:
        super().__init__(num_examples)
        self._fills: dict[str, Any] = {}  # each state's initial value, for tokens added to per-token state
        self._sequences: Optional[bool] = None  # decided by the first batch: sequences or not
        self.add_state("epoch_value", torch.full((num_examples,), float("nan")))

    def add_state(self, name: str, default: Tensor) -> None:
        super().add_state(name, default)
        self._fills[name] = default.flatten()[0].item() if default.numel() else 0

    @staticmethod
    @abstractmethod
    def presentation_value(logits: Tensor, target: Tensor) -> Tensor:
        """The per-presentation quantity stored in the epoch buffer."""

    @abstractmethod
    def fold(self, epoch_value: Tensor, part: slice) -> None:
        """Accumulates one epoch's merged values of the examples ``part`` (NaN = not presented) into
        ``part`` of the running state, in place. ``epoch_value`` is the merged buffer's ``[part]``."""

    @property
    def tokens(self) -> int:
        """Tokens per example held in the state (0: one value per example)."""
        return self.epoch_value.shape[1] if self.epoch_value.ndim == 2 else 0

    def update(self, original_index: Tensor, logits: Tensor, target: Optional[Tensor]) -> None:
        sequences = logits.ndim == 3
        if self._sequences is None:
            self._sequences = sequences
        elif self._sequences != sequences:
            raise ValueError(
                f"score {self.name!r} got logits {tuple(logits.shape)} after batches of "
                f"{'sequences' if self._sequences else 'one row per example'}: a probe's batches must all be one kind"
            )
        if sequences and self.per_token:
            values = token_values(self.presentation_value, logits.detach(), target, self.ignore_index)
            self.resize_tokens(values.shape[1])
            if values.shape[1] < self.tokens:
                values = torch.nn.functional.pad(values, (0, self.tokens - values.shape[1]), value=float("nan"))
            self.epoch_value.index_copy_(0, original_index, values.to(self.epoch_value.device, self.epoch_value.dtype))
            return
        values = self.per_example(self.presentation_value, logits, target)
        self.epoch_value.scatter_(0, original_index, values.to(self.epoch_value.device, self.epoch_value.dtype))

    def resize_tokens(self, tokens: int) -> None:
        """Grows the per-token state to ``tokens`` per example (new tokens: never presented)."""
        held = self.tokens
        if tokens <= held:
            return
        for name in self._state_names:
            state = getattr(self, name)
            grown = torch.full((self.num_examples, tokens), self._fills[name], dtype=state.dtype, device=state.device)
            if held:
                grown[:, :held] = state
            setattr(self, name, grown)

    def end_epoch(self, sync_min: SyncMin = single_process) -> None:
        if self.tokens and sync_min is not single_process:  # every process's state to the longest sequence
            self.resize_tokens(int(-sync_min(torch.tensor([-self.tokens], device=self.device)).item()))
        merged = merge_seen(self.epoch_value, sync_min)
        for start in range(0, self.num_examples, self.fold_chunk):
            part = slice(start, start + self.fold_chunk)
            self.fold(merged[part], part)
        self.epoch_value.fill_(float("nan"))

    def example_mean(self, values: Tensor) -> Tensor:
        """Per-token values (NaN where never presented) averaged over each example's tokens; as is otherwise."""
        return nan_mean(values) if values.ndim == 2 else values

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state.get("epoch_value")
        if saved is not None and saved.ndim == 2:  # a checkpoint of sequences: per-token state
            self.resize_tokens(saved.shape[1])
            self._sequences = True
        super().load_state_dict(state)


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
        raw = np.empty(self.num_examples)
        for start in range(0, self.num_examples, self.fold_chunk):  # float64 temporaries of a slice only
            part = slice(start, start + self.fold_chunk)
            count = self.presentations[part].double()
            mean = self.value_sum[part].double() / count.clamp(min=1)
            raw[part] = torch.where(count > 0, mean, torch.full_like(mean, float("nan"))).cpu().numpy()
        return (-raw if self.raw_is_easiness else raw), raw


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        kind = "float" if value.is_floating_point() else str(value.dtype).replace("torch.", "")
        return f"{kind} {tuple(value.shape)}"
    return type(value).__name__
