"""DynamicPruning: each epoch skips part of the examples the model already fits well (InfoBatch, SeTa)."""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor
from typing_extensions import override

from datadiet.adapter import Adapter
from datadiet.callbacks._checks import check_first_batch
from datadiet.callbacks._deferred_state import DeferredState
from datadiet.callbacks._epoch_length import ScheduleStretch, epoch_batches, refresh_epoch_length
from datadiet.callbacks._epoch_losses import EpochLosses
from datadiet.callbacks._resume_checks import changed_arguments, refusal, saved_arguments, states_of
from datadiet.callbacks._weighted_forwards import WeightedForwards
from datadiet.callbacks.dynamic_rules import RULES
from datadiet.scores.base import merge_seen, trainer_sync_min

#: Merged epoch losses folded into the scores this many at a time (the float64 conversion stays small).
_MERGE_CHUNK = 1 << 20


class DynamicPruning(WeightedForwards, DeferredState, Callback):
    r"""Skips, each epoch, part of the examples the model already fits well (InfoBatch, Qin et al., ICLR 2024).

    Definition (``rule="infobatch"``). An example's score is its loss at its last training presentation,
    read from the output of the training forward pass (a forward hook on the ``LightningModule``, as
    :class:`~datadiet.DifficultyCallback` reads it): cross-entropy by default, the mean over real tokens for
    sequences (logits ``(B, T, K)``, labels ``(B, T)``), or the adapter's ``loss`` (``bce``, ``mse``, ``l1``, a
    callable); a ``training_step`` that returns ``{"loss": ..., "example_loss": per_example}`` gives it
    directly (e.g. the mixup loss of each row). At the start of each epoch, of
    the ``n`` examples whose score is below the mean score, a random ``n - ⌊(1 - r)·n⌋`` (``r =
    prune_ratio``) are skipped for that epoch and the kept ones get weight ``1 / (1 - r)``, so the expected
    gradient is the full-data one; every other example has weight 1. An example never presented is always
    kept (the first epoch presents everything), no epoch presents an example twice (DDP padding aside),
    and the last ``⌊anneal_fraction · max_epochs⌋`` epochs present all examples at weight 1. Draws come from
    ``numpy.random.default_rng([seed, epoch])``. ``rule="seta"`` is SeTa's choice instead (Zhou et al.,
    CVPR 2025; see :func:`~datadiet.callbacks.dynamic_rules.seta_subset`): a random ``1 - r`` of the
    examples, grouped by loss, of which a window of groups sliding from easy to hard is kept, unweighted;
    its annealing epochs present the random sample alone.

    Weights reach the gradient without any change to ``training_step``: a tensor hook on the module's
    output scales row ``i`` of ∂loss/∂logits by ``w_i`` — on every call of the module's ``forward`` in the
    step (two views, two optimizers under manual optimisation), each of whose outputs must have one row
    per example of the batch (refused otherwise). That *is* the gradient of the loss with example ``i``'s
    terms weighted by ``w_i`` whenever the loss is a sum or mean of per-example (or per-token) terms, each
    depending on its own row (cross-entropy, token-mean cross-entropy, MSE, BCE, label smoothing). It is not
    when rows are coupled in the loss (in-batch negatives, hard-example mining across the batch,
    normalisation by batch statistics), or when part of the loss does not come from the hooked output
    (auxiliary heads, regularisers): pass ``weight_gradients=False`` and multiply the per-example loss by
    :attr:`batch_weights` in ``training_step`` (refused at the first weighted step if it is never read).

    The data must come from a :class:`~datadiet.PruningDataModule`; its training sampler presents each
    epoch's kept examples in a (seed, epoch)-shuffled order, identical on every rank, and Lightning's epoch
    length, validation check and ``limit_train_batches`` follow the shorter epochs. Under DDP the losses are
    merged once per epoch (``all_reduce(MIN)`` over a NaN-for-unseen buffer), so every rank decides the same
    kept set; nothing is gathered per step, and no step waits on the device. With
    ``stretch_step_schedules`` a pruned epoch of ``s`` optimizer steps advances step-interval learning-rate
    schedulers by a full epoch's ``S`` steps, spread evenly, so they follow the full-data curve per epoch and
    end exactly at ``trainer.estimated_stepping_batches`` (which counts full epochs).

    Args:
        prune_ratio: ``r``, in [0, 1): the share of the below-mean examples skipped (``infobatch``), or of
            all examples left out of the random sample (``seta``).
        anneal_fraction: share of the last epochs (of ``trainer.max_epochs``) that are not pruned, in [0, 1].
        seed: seeds each epoch's draws (with the epoch number).
        rule: a registered rule (:func:`~datadiet.callbacks.dynamic_rules.list_rules`): ``"infobatch"`` or
            ``"seta"`` built in.
        num_groups: ``seta``'s loss groups (k-means).
        window_scale: ``seta``'s share of the groups in the sliding window, in (0, 1].
        rule_options: further keyword arguments of the rule (a rule registered with
            :func:`~datadiet.callbacks.dynamic_rules.register_rule`).
        adapter: how to read labels and logits when batches are not ``(x, y)`` or ``forward`` does not
            return logits alone, and which per-example loss ranks the examples (``Adapter(loss="mse")``, ...);
            its ``logits_fn`` must return the tensor the loss is computed from.
        weight_gradients: scale the gradient through the output hook; ``False`` leaves weighting to
            ``training_step`` (read :attr:`batch_weights`).
        stretch_step_schedules: advance step-interval schedulers by a full epoch's steps per pruned epoch.

    Raises:
        ValueError: an argument out of range; when training starts (one forward of two examples), outputs
            whose first dimension is not the batch's or a per-example loss that cannot be computed from them;
            at the first step, a forward whose output has another number of rows (weights on), or
            ``weight_gradients=False`` with :attr:`batch_weights` never read in a weighted step.

    Example::

        pruning = DynamicPruning(prune_ratio=0.5, anneal_fraction=0.125)
        trainer = L.Trainer(max_epochs=30, callbacks=[pruning])
        trainer.fit(model, datamodule=PruningDataModule(train_set, val_set, batch_size=128))
        pruning.presentations_per_epoch   # examples trained on in each epoch, all ranks together
    """

    def __init__(
        self,
        prune_ratio: float = 0.5,
        anneal_fraction: float = 0.125,
        seed: int = 0,
        rule: str = "infobatch",
        num_groups: int = 5,
        window_scale: float = 0.9,
        adapter: Adapter | None = None,
        weight_gradients: bool = True,
        stretch_step_schedules: bool = True,
        rule_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not _is_number(prune_ratio) or not 0 <= prune_ratio < 1:
            raise ValueError(f"`prune_ratio` must be a number in [0, 1), got {prune_ratio!r}")
        if not _is_number(anneal_fraction) or not 0 <= anneal_fraction <= 1:
            raise ValueError(f"`anneal_fraction` must be a number in [0, 1], got {anneal_fraction!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"`seed` must be an integer >= 0, got {seed!r}")
        if rule not in RULES:
            raise ValueError(f"`rule` can be {' or '.join(RULES.names())}, got {rule!r}")
        if isinstance(num_groups, bool) or not isinstance(num_groups, int) or num_groups < 1:
            raise ValueError(f"`num_groups` must be a positive integer, got {num_groups!r}")
        if not _is_number(window_scale) or not 0 < window_scale <= 1:
            raise ValueError(f"`window_scale` must be a number in (0, 1], got {window_scale!r}")
        for name, value in (("weight_gradients", weight_gradients), ("stretch_step_schedules", stretch_step_schedules)):
            if not isinstance(value, bool):
                raise ValueError(f"`{name}` must be True or False, got {value!r}")  # noqa: TRY004 (the house error)
        self.rule = rule
        accepted = inspect.signature(RULES.get(rule)).parameters
        options = [name for name in accepted if name not in ("scores", "prune_ratio", "rng", "step")]
        unknown = sorted(set(rule_options or {}) - set(options))
        if unknown:
            raise ValueError(f"`rule_options` {unknown} are not options of the rule {rule!r}; it takes {options}")
        #: The keyword arguments the rule is called with each epoch.
        self.rule_options = {
            **{
                name: value
                for name, value in (("num_groups", num_groups), ("window_scale", float(window_scale)))
                if name in accepted
            },
            **dict(rule_options or {}),
        }
        self.num_groups = num_groups
        self.window_scale = float(window_scale)
        self.prune_ratio = float(prune_ratio)
        self.anneal_fraction = float(anneal_fraction)
        self.seed = seed
        self.adapter = adapter or Adapter()
        self.weight_gradients = weight_gradients
        self.stretch_step_schedules = stretch_step_schedules
        self._state_key = self._generate_state_key(
            rule=rule, prune_ratio=self.prune_ratio, anneal_fraction=self.anneal_fraction
        )
        #: Examples each epoch chose to present (its kept set's size).
        self.kept_per_epoch: list[int] = []
        #: Training examples presented in each epoch, summed over ranks (DDP padding and
        #: ``limit_train_batches`` included): the compute figure.
        self.presentations_per_epoch: list[int] = []
        self._scores: np.ndarray | None = None  # float64, NaN = never presented; merged over ranks
        self._num_candidates = 0  # examples in the current training set
        self._decided: tuple[int, np.ndarray | None, np.ndarray | None] | None = None
        self._losses = EpochLosses(self.adapter)
        self._weight: Tensor | None = None
        self._reset_step()
        self._prepared_epoch: int | None = None
        self._stretching = False
        self._restored_epoch: int | None = None
        self._datamodule: Any = None
        self._hook_handle: torch.utils.hooks.RemovableHandle | None = None
        self._pre_hook_handle: torch.utils.hooks.RemovableHandle | None = None
        self._served_at_epoch_start = 0
        self._schedule = ScheduleStretch()

    @property
    @override
    def state_key(self) -> str:
        return self._state_key

    @property
    def scores(self) -> np.ndarray:
        """Each example's loss at its last presentation, by original index (NaN: never presented)."""
        if self._scores is None:
            raise RuntimeError("no scores yet: `scores` exists once `trainer.fit` has started")
        return self._scores.copy()

    def first_anneal_epoch(self, max_epochs: int) -> int:
        """The first annealed (unpruned) epoch: the last ``⌊anneal_fraction · max_epochs⌋`` epochs are."""
        return max_epochs - math.floor(round(self.anneal_fraction * max_epochs, 6))

    # Setup ----------------------------------------------------------------------------------------
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "epoch_subset_fn"):
            raise RuntimeError(
                "DynamicPruning chooses each epoch's examples through the data module: pass the data as "
                "`trainer.fit(model, datamodule=PruningDataModule(train_set, ...))`"
            )
        if self.anneal_fraction > 0 and (trainer.max_epochs is None or trainer.max_epochs < 0):
            raise ValueError(
                f"`anneal_fraction={self.anneal_fraction}` anneals the last epochs of `max_epochs`, but the Trainer "
                f"has max_epochs={trainer.max_epochs}; set `max_epochs` or pass `anneal_fraction=0`"
            )
        self._datamodule = datamodule
        datamodule.epoch_subset_fn = self._epoch_subset
        self._scores = np.full(datamodule.num_examples, np.nan)
        self._num_candidates = 0
        self._decided = None
        self._prepared_epoch = self._restored_epoch = None
        self._losses = EpochLosses(self.adapter)
        self._schedule = ScheduleStretch()
        self.kept_per_epoch, self.presentations_per_epoch = [], []
        self._apply_pending_state()

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        for handle in (self._hook_handle, self._pre_hook_handle):
            if handle is not None:
                handle.remove()
        self._hook_handle = self._pre_hook_handle = None
        if self._datamodule is not None and self._datamodule.epoch_subset_fn == self._epoch_subset:
            self._datamodule.epoch_subset_fn = None  # a later Trainer without this callback trains on all data
        self._weight = None
        self._reset_step()

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        device = pl_module.device
        self._losses.start(len(self._scores), device)
        check_first_batch(trainer, pl_module, self.adapter, "DynamicPruning", needs_loss=True)
        self._hook_handle = pl_module.register_forward_hook(self._capture_output)
        self._pre_hook_handle = pl_module.register_forward_pre_hook(self._enter_forward)
        if self.stretch_step_schedules:
            self._schedule.check(trainer)
        # per-step work only where it can matter: step-interval schedulers to stretch (under manual
        # optimisation every scheduler is watched: the user steps them), the first step to check
        self._stretching = self.stretch_step_schedules and any(
            (config.interval == "step" or not pl_module.automatic_optimization) and not config.reduce_on_plateau
            for config in trainer.lr_scheduler_configs
        )
        self._odd_rows = None

    # Each epoch's choice ----------------------------------------------------------------------------
    def _epoch_subset(self, epoch: int) -> np.ndarray | None:
        """The original indices ``epoch`` presents (``None``: all); the data module's sampler asks for it."""
        trainer = self._datamodule.trainer
        if trainer is None or self not in trainer.callbacks:  # a later fit without this callback
            return None
        return self._decide(epoch)[1]

    def _decide(self, epoch: int) -> tuple[int, np.ndarray | None, np.ndarray | None]:
        if self._decided is not None and self._decided[0] == epoch:
            return self._decided
        self._decided = None  # the previous epoch's subset and weights are not needed any more
        # the candidates are the current training set: all examples (the scores as they are, no copy) or the
        # data module's kept subset
        candidates = self._datamodule.kept_indices
        scores = self._scores if candidates is None else self._scores[candidates]
        self._num_candidates = len(scores)
        subset, weights = None, None
        trainer = self._datamodule.trainer
        annealed = self.anneal_fraction > 0 and epoch >= self.first_anneal_epoch(trainer.max_epochs)
        rng = np.random.default_rng([self.seed, epoch])
        keep, candidate_weights = RULES.get(self.rule)(
            scores, self.prune_ratio, rng, None if annealed else epoch, **self.rule_options
        )
        del scores
        if not keep.all():
            subset = np.flatnonzero(keep) if candidates is None else np.asarray(candidates)[keep]
            if len(self._scores) < 2**31:
                subset = subset.astype(np.int32)  # held through the epoch: half of numpy's int64
            if (candidate_weights != 1).any():
                weights = candidate_weights
                if candidates is not None:
                    weights = np.ones(len(self._scores), dtype=np.float32)
                    weights[candidates] = candidate_weights
        self._decided = (epoch, subset, weights)
        return self._decided

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._prepare_epoch(trainer, pl_module, epoch_start=True)

    def _prepare_epoch(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch_start: bool) -> None:
        epoch = trainer.current_epoch
        _, _, weights = self._decide(epoch)
        self._weight = None if weights is None else torch.from_numpy(weights).to(pl_module.device)
        # resumed mid-epoch (no epoch-start hook), the counters of the epoch so far come from the checkpoint
        if epoch_start or self._restored_epoch != epoch:
            self._served_at_epoch_start = self._datamodule.train_examples_served
            self._schedule.start_epoch(trainer.global_step)
        self._prepared_epoch = epoch
        refresh_epoch_length(trainer)
        if self.stretch_step_schedules:
            self._schedule.set_lengths(trainer, full_batches=self._full_epoch_batches(trainer))

    def _full_epoch_batches(self, trainer: pl.Trainer) -> int | None:
        """Training batches of this epoch had it presented the whole current training set."""
        loader = trainer.train_dataloader
        if loader is None or getattr(loader, "batch_size", None) is None:
            return None
        per_rank = math.ceil(self._num_candidates / trainer.world_size)
        batches = per_rank // loader.batch_size if loader.drop_last else math.ceil(per_rank / loader.batch_size)
        return epoch_batches(batches, trainer)

    # Training presentations -----------------------------------------------------------------------
    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._prepared_epoch != trainer.current_epoch:  # resumed mid-epoch: no epoch-start hook ran
            self._prepare_epoch(trainer, pl_module, epoch_start=False)
        index = self._datamodule.batch_original_index
        if index is None:
            raise RuntimeError(
                "DynamicPruning got a training batch without original indices: the training loader must be "
                "the PruningDataModule's `train_dataloader()` (it yields `IndexedBatch` pairs)"
            )
        index = index if index.device == pl_module.device else index.to(pl_module.device, non_blocking=True)
        self._begin_step(index, None if self._weight is None else self._weight.index_select(0, index))
        if self._stretching:
            self._schedule.before_batch(trainer, pl_module)

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        captured = self._end_step()
        self._losses.add(self._batch_index, captured, batch, outputs)
        if self._stretching:
            self._schedule.after_batch(trainer, pl_module, batch_idx)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._losses.flush()
        _, subset, _ = self._decide(trainer.current_epoch)  # before the merge changes the scores it is made from
        merged = merge_seen(self._losses.values, trainer_sync_min(trainer))
        for start in range(0, len(self._scores), _MERGE_CHUNK):  # float32 → float64 a slice at a time
            part = merged[start : start + _MERGE_CHUNK].cpu().numpy()
            np.copyto(self._scores[start : start + _MERGE_CHUNK], part, where=~np.isnan(part))
        del merged
        self._losses.values.fill_(float("nan"))
        served = torch.tensor(
            self._datamodule.train_examples_served - self._served_at_epoch_start, device=pl_module.device
        )
        if trainer.world_size > 1:
            served = trainer.strategy.reduce(served, reduce_op="sum")
        self._weight = self._batch_weights = None  # this epoch's weights: not needed past its last batch
        self.kept_per_epoch.append(self._num_candidates if subset is None else len(subset))
        self.presentations_per_epoch.append(int(served.item()))
        # the figures are global already (merged above): logged once, from rank 0
        log = {"on_epoch": True, "rank_zero_only": True}
        pl_module.log("dynamic_pruning/presentations", float(self.presentations_per_epoch[-1]), **log)
        pl_module.log("dynamic_pruning/kept_fraction", self.kept_per_epoch[-1] / self._num_candidates, **log)

    # Checkpointing --------------------------------------------------------------------------------
    @override
    def state_dict(self) -> dict[str, Any]:
        """The state, sharing memory with the live scores (as ``nn.Module.state_dict`` does): a checkpoint
        costs no copy of them. Lightning's asynchronous checkpointing clones what it saves; to keep a state
        while training goes on, copy it."""
        epoch_loss = self._losses.values
        if epoch_loss is not None:
            self._losses.flush()  # a checkpoint taken mid-epoch holds every presentation so far
        served = 0 if self._datamodule is None else self._datamodule.train_examples_served - self._served_at_epoch_start
        return {
            "scores": None if self._scores is None else torch.from_numpy(self._scores),
            "epoch_loss": None if epoch_loss is None else epoch_loss.detach().cpu(),
            "kept_per_epoch": list(self.kept_per_epoch),
            "presentations_per_epoch": list(self.presentations_per_epoch),
            "epoch": self._prepared_epoch,
            "served_this_epoch": int(served),
            "schedule": self._schedule.state_dict(),
            "arguments": self.arguments,
        }

    @property
    def arguments(self) -> dict[str, Any]:
        """The arguments that decide each epoch's examples (saved in checkpoints, compared when resuming)."""
        return {
            "rule": self.rule,
            "prune_ratio": self.prune_ratio,
            "anneal_fraction": self.anneal_fraction,
            "seed": self.seed,
            "rule_options": self.rule_options,
        }

    @override
    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # a state saved under another `state_key` (other arguments) would be silently left out: refused here
        for key, state in states_of(checkpoint, "DynamicPruning", self.state_key).items():
            self._check_arguments(saved_arguments(key, state))

    def _check_arguments(self, saved: Mapping[str, Any] | None) -> None:
        changed = changed_arguments(saved or {}, self.arguments)
        if changed:
            raise refusal("DynamicPruning", changed, "The checkpoint's epochs chose their examples with its arguments.")

    def _state_built(self) -> bool:
        return self._scores is not None

    def _apply_state(self, state_dict: dict[str, Any]) -> None:
        self._check_arguments(state_dict.get("arguments"))
        scores = state_dict.get("scores")
        if scores is not None:
            if len(scores) != len(self._scores):
                raise ValueError(
                    f"the checkpoint's DynamicPruning scored {len(scores)} examples, this training set has "
                    f"{len(self._scores)}"
                )
            self._scores = scores.double().numpy().copy()  # a restored state is never shared
        epoch_loss = state_dict.get("epoch_loss")
        self._losses.values = None if epoch_loss is None else epoch_loss.float().clone()
        self.kept_per_epoch = list(state_dict.get("kept_per_epoch", []))
        self.presentations_per_epoch = list(state_dict.get("presentations_per_epoch", []))
        self._served_at_epoch_start = self._datamodule.train_examples_served - state_dict.get("served_this_epoch", 0)
        self._restored_epoch = state_dict.get("epoch")
        self._prepared_epoch = None
        self._decided = None
        self._schedule.load_state_dict(state_dict.get("schedule", {}))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
