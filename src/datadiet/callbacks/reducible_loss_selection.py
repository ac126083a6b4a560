"""ReducibleLossSelection: online RHO-LOSS, each step trains on the large batch's points of largest reducible loss."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch import Tensor
from typing_extensions import override

from datadiet.adapter import Adapter
from datadiet.callbacks._deferred_state import DeferredState
from datadiet.callbacks.dynamic_pruning import DynamicPruning
from datadiet.compute import ComputeAccount
from datadiet.data.batch_rows import take_rows
from datadiet.scores.rho_loss import IrreducibleLosses

SELECTION_MODES = ("train", "eval")
IrreducibleSource = IrreducibleLosses | np.ndarray | Tensor | str | os.PathLike


class ReducibleLossSelection(DeferredState, Callback):
    r"""Online RHO-LOSS (Mindermann et al., ICML 2022): each step trains on the points of a large batch that are
    learnable, worth learning and not yet learnt.

    Definition. The data module's training loader yields large batches of ``n_B`` examples (its
    ``batch_size``, per process). Before ``training_step`` sees one, the current model scores it in one
    no-grad forward pass, each example's *reducible loss* is its training loss under the model (cross-entropy,
    or the ``adapter``'s ``loss``: a regressor's MSE, a language model's token mean) minus its
    *irreducible loss* (the loss of a model trained on held-out data, computed once per example, before the
    fit: :func:`~datadiet.scores.rho_loss.fit_irreducible_losses`), and ``training_step`` receives the
    ``n_b = max(1, ⌊selected_fraction · n_B⌋)`` examples of largest reducible loss (ties: the earlier in the
    batch), in their batch order, with the structure the user's step expects. High training loss alone
    picks noisy and ambiguous points; their irreducible loss is high too, so their reducible loss is not.
    Examples without an irreducible loss (NaN: the IL model's holdout, when it was not cross-fitted) are
    never trained on, since an IL model that trained on them would rank them as not yet learnt.

    Under DDP each process selects within its own shard of the large batch (the global step trains on
    ``world_size · n_b`` of ``world_size · n_B``), with nothing gathered per step; selections follow from
    the synchronised model and the (seed, epoch)-shuffled shards, so they are reproducible.

    The step's batch is cut by ``batch_subset_fn(batch, rows)``; the default indexes every tensor whose
    first dimension is the batch's size and every list or tuple of that length holding no tensors (e.g.
    file names), and leaves everything else as it is. Pass your own when that is wrong for your batches.

    Compute (:mod:`datadiet.compute`): a scoring forward per large-batch example (1×), a training
    presentation per selected one (3×), plus the IL model's training and forwards:
    :meth:`compute_account`. Per example trained on that is ``3 + 1 / selected_fraction`` forwards instead
    of 3: selection pays only where the examples it picks are worth that much more than random ones. On
    MNIST-1D they are not, clean or with wrong labels (``benchmarks/frontier.py``, README *Performance*).

    Args:
        irreducible_losses: per original index, from :func:`~datadiet.scores.rho_loss.fit_irreducible_losses`
            (which also records the IL model's cost), an array, or the path of the ``.npz`` it cached.
        selected_fraction: ``n_b / n_B``, in (0, 1] (the paper's ``percent_train``; 1 trains on every
            example, without a scoring forward).
        selection_mode: ``"train"`` scores in the mode the model trains in (the paper's default; BatchNorm
            statistics then also follow the large batch) or ``"eval"``.
        adapter: how to read inputs, labels and logits when batches are not ``(x, y)`` or ``forward`` does
            not return logits alone.
        batch_subset_fn: ``(batch, rows) -> batch``: the batch cut to ``rows`` (a ``LongTensor`` on the
            batch's device).

    Raises:
        ValueError: an argument out of range, or irreducible losses that are not finite-or-NaN and 1-D.

    Example::

        from datadiet.compute import forward_flops_per_example

        il = fit_irreducible_losses(train_set, lambda: LitModel(), holdout_fraction=0.1, cross_fit=False,
                                    trainer_kwargs={"max_epochs": 3})
        selection = ReducibleLossSelection(il, selected_fraction=0.1)
        dm = PruningDataModule(train_set, val_set, batch_size=320)  # n_B = 320: training_step sees 32
        L.Trainer(max_epochs=3, callbacks=[selection]).fit(model := LitModel(), datamodule=dm)
        x, y = train_set[:8]
        selection.compute_account(flops_per_example=forward_flops_per_example(model, x)).total_flops
    """

    def __init__(
        self,
        irreducible_losses: IrreducibleSource,
        selected_fraction: float = 0.1,
        selection_mode: str = "train",
        adapter: Adapter | None = None,
        batch_subset_fn: Callable[[Any, Tensor], Any] | None = None,
    ) -> None:
        super().__init__()
        if (
            not isinstance(selected_fraction, (int, float))
            or isinstance(selected_fraction, bool)
            or not (0 < selected_fraction <= 1)
        ):
            raise ValueError(f"`selected_fraction` must be a number in (0, 1], got {selected_fraction!r}")
        if selection_mode not in SELECTION_MODES:
            raise ValueError(f"`selection_mode` can be {' or '.join(SELECTION_MODES)}, got {selection_mode!r}")
        if adapter is not None and not isinstance(adapter, Adapter):
            raise ValueError(f"`adapter` must be a datadiet.Adapter, got {type(adapter).__name__}")
        if batch_subset_fn is not None and not callable(batch_subset_fn):
            raise ValueError(f"`batch_subset_fn` must be callable, got {type(batch_subset_fn).__name__}")
        #: What :func:`~datadiet.scores.rho_loss.fit_irreducible_losses` returned (with the IL model's cost), if given.
        self.irreducible_record = irreducible_losses if isinstance(irreducible_losses, IrreducibleLosses) else None
        self._irreducible = _as_losses(irreducible_losses)
        self.selected_fraction = float(selected_fraction)
        self.selection_mode = selection_mode
        self.adapter = adapter or Adapter()
        self.batch_subset_fn = batch_subset_fn
        self._digest = hashlib.sha1(self._irreducible.tobytes()).hexdigest()
        self._state_key = self._generate_state_key(selected_fraction=self.selected_fraction)
        #: Large-batch examples scored by the model's selection forward, per epoch, all ranks together.
        self.scored_per_epoch: list[int] = []
        #: Examples trained on (handed to ``training_step``) per epoch, all ranks together.
        self.presentations_per_epoch: list[int] = []
        self._times_selected: Tensor | None = None  # this epoch's selections on this rank, by original index
        self._selected_before = np.zeros(0, dtype=np.int64)  # all ranks, the epochs before this one
        self._counts = np.zeros(2, dtype=np.int64)  # this epoch on this rank: scored, presented
        self._device_losses: Tensor | None = None
        self._datamodule: Any = None
        self._trainer: pl.Trainer | None = None
        self._candidates: tuple[np.ndarray | None, np.ndarray] | None = None  # (kept subset, candidates)
        self._restored_partial: Tensor | None = None
        self._selected_this_step = False
        self._checked_shapes = False

    @property
    @override
    def state_key(self) -> str:
        return self._state_key

    @property
    def irreducible_losses(self) -> np.ndarray:
        """The irreducible loss of each example, by original index (NaN: never trained on)."""
        return self._irreducible.copy()

    @property
    def times_selected(self) -> np.ndarray:
        """How often each example was trained on, by original index, all ranks, up to the last finished epoch."""
        return self._selected_before.copy()

    def selected_count(self, batch_size: int) -> int:
        """``n_b`` for a large batch of ``batch_size``: ``max(1, ⌊selected_fraction · batch_size⌋)``."""
        return min(batch_size, max(1, math.floor(round(self.selected_fraction * batch_size, 6))))

    def compute_account(self, flops_per_example: float) -> ComputeAccount:
        """This fit's compute: training presentations, the selection forwards and the IL model's cost.

        The IL model is the account's probe (its training presentations and scoring forwards, at its own
        FLOPs); the selection forwards are the main model's scoring (``in_run_scored``).

        Raises:
            ValueError: the irreducible losses came without their cost (an array, or an older cache).
        """
        record = self.irreducible_record
        if record is None or record.train_presentations is None or record.flops_per_example is None:
            raise ValueError(
                "the irreducible losses came without the cost of computing them (an array, a path, or a cache "
                "written before it was recorded); pass what `fit_irreducible_losses` returns, or build the "
                "`ComputeAccount` yourself with `scored_per_epoch` and `presentations_per_epoch`"
            )
        return ComputeAccount(
            flops_per_example=flops_per_example,
            train_presentations=sum(self.presentations_per_epoch),
            probe_flops_per_example=record.flops_per_example,
            probe_presentations=record.train_presentations,
            probe_scored=record.scored_examples or 0,
            in_run_scored=sum(self.scored_per_epoch),
        )

    # Setup ----------------------------------------------------------------------------------------
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "train_batch_fn"):
            raise RuntimeError(
                "ReducibleLossSelection cuts each training batch in the data module: pass the data as "
                "`trainer.fit(model, datamodule=PruningDataModule(train_set, ..., batch_size=n_B))`"
            )
        if any(isinstance(callback, DynamicPruning) for callback in trainer.callbacks):
            raise ValueError("ReducibleLossSelection and DynamicPruning both choose what each epoch trains on: use one")
        if len(self._irreducible) != datamodule.num_examples:
            raise ValueError(
                f"`irreducible_losses` has {len(self._irreducible)} values, the training set has "
                f"{datamodule.num_examples} examples: give one per original index"
            )
        if not np.isfinite(self._irreducible).any():
            raise ValueError("every irreducible loss is NaN: no example can be selected")
        excluded = int(np.isnan(self._irreducible).sum())
        if excluded:
            rank_zero_info(
                f"ReducibleLossSelection: {excluded} examples without an irreducible loss are not trained on"
            )
            datamodule.epoch_subset_fn = self._epoch_subset
        self._datamodule, self._trainer = datamodule, trainer
        datamodule.train_batch_fn = self._select
        self.scored_per_epoch, self.presentations_per_epoch = [], []
        self._selected_before = np.zeros(len(self._irreducible), dtype=np.int64)
        self._counts[:] = 0
        self._candidates = None
        self._apply_pending_state()

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit" or self._datamodule is None:
            return
        if self._datamodule.train_batch_fn == self._select:  # a later Trainer without this callback trains on all
            self._datamodule.train_batch_fn = None
        if self._datamodule.epoch_subset_fn == self._epoch_subset:
            self._datamodule.epoch_subset_fn = None
        self._device_losses = self._times_selected = None

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._device_losses = torch.from_numpy(self._irreducible).to(pl_module.device, torch.float32)
        self._times_selected = torch.zeros(len(self._irreducible), dtype=torch.int64, device=pl_module.device)
        if self._restored_partial is not None:  # resumed mid-epoch: this rank's selections of the epoch so far
            self._times_selected += self._restored_partial.to(pl_module.device)
            self._restored_partial = None
        self._checked_shapes = False

    def _epoch_subset(self, epoch: int) -> np.ndarray | None:
        """The examples with an irreducible loss, within the data module's kept subset."""
        kept = self._datamodule.kept_indices
        if self._candidates is None or self._candidates[0] is not kept:  # the same array: asked twice per epoch
            candidates = np.arange(len(self._irreducible)) if kept is None else np.asarray(kept)
            self._candidates = (kept, candidates[np.isfinite(self._irreducible[candidates])])
        return self._candidates[1]

    # Each step's selection --------------------------------------------------------------------------
    def _select(self, batch: Any, original_index: Tensor) -> tuple[Any, Tensor]:
        """The data module's ``train_batch_fn``: the large batch cut to its ``n_b`` largest reducible losses."""
        size = len(original_index)
        count = self.selected_count(size)
        self._selected_this_step = True
        pl_module = self._trainer.lightning_module
        index = original_index.to(pl_module.device, non_blocking=True)
        if count == size:  # nothing to choose (selected_fraction 1, or a batch of one)
            self._record(index, size, scored=0)
            return batch, original_index
        inputs = self._read(batch)
        with torch.no_grad(), self._trainer.precision_plugin.forward_context(), self._scoring_mode(pl_module):
            output = pl_module(inputs)
            losses = self._example_losses(output, batch, size)
        reducible = losses - self._device_losses.index_select(0, index)
        rows = torch.argsort(reducible, descending=True, stable=True)[:count].sort().values
        selected = index[rows]
        self._record(selected, count, scored=size)
        cut = take_rows(batch, rows, size) if self.batch_subset_fn is None else self.batch_subset_fn(batch, rows)
        return cut, selected

    def _read(self, batch: Any) -> Any:
        """The batch's model input, through the adapter; a clear error if the first batch has none."""
        try:
            return self.adapter.input_fn(batch)
        except (KeyError, IndexError, TypeError, AttributeError) as error:
            if self._checked_shapes:
                raise
            raise ValueError(
                f"ReducibleLossSelection could not read the model input of a {type(batch).__name__} batch "
                f"({error!r}); pass `adapter=Adapter(input_fn=..., target_fn=..., logits_fn=...)`"
            ) from error

    def _example_losses(self, output: Any, batch: Any, size: int) -> Tensor:
        """Each large-batch example's training loss, by the adapter's ``loss`` (the IL model's own loss)."""
        if self._checked_shapes:
            return self.adapter.example_loss(output, batch).float()
        try:
            losses = self.adapter.example_loss(output, batch).float()
        except (KeyError, IndexError, TypeError, AttributeError, RuntimeError, ValueError) as error:
            raise ValueError(
                f"ReducibleLossSelection ranks a batch of {size} by each example's {self.adapter.loss_name} and could "
                f"not compute it from this batch ({error}); pass `adapter=Adapter(target_fn=..., logits_fn=..., "
                "loss=...)` matching the model the irreducible losses were fitted with"
            ) from error
        if tuple(losses.shape) != (size,):
            raise ValueError(
                f"ReducibleLossSelection ranks a batch of {size} and needs one loss per example, got losses of shape "
                f"{tuple(losses.shape)} from {self.adapter.loss_name}; a callable `loss` must return a (batch,) tensor"
            )
        self._checked_shapes = True
        return losses

    def _record(self, selected: Tensor, count: int, scored: int) -> None:
        self._times_selected.index_add_(0, selected, torch.ones_like(selected))
        self._counts += (scored, count)

    @contextmanager
    def _scoring_mode(self, pl_module: pl.LightningModule) -> Iterator[None]:
        was_training = pl_module.training
        if self.selection_mode == "eval":
            pl_module.eval()
        try:
            yield
        finally:
            pl_module.train(was_training)

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if not self._selected_this_step:
            raise RuntimeError(
                "ReducibleLossSelection got a training batch its data module did not hand over for selection: the "
                "training loader must be the PruningDataModule's `train_dataloader()` and `training_step` must take "
                "a batch (not a `dataloader_iter`)"
            )
        self._selected_this_step = False

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        counts = torch.from_numpy(self._counts.copy()).to(pl_module.device)
        selected = self._times_selected
        if trainer.world_size > 1:
            counts = trainer.strategy.reduce(counts, reduce_op="sum")
            selected = trainer.strategy.reduce(selected, reduce_op="sum")
        scored, presented = (int(value) for value in counts.tolist())
        self.scored_per_epoch.append(scored)
        self.presentations_per_epoch.append(presented)
        self._selected_before = self._selected_before + selected.cpu().numpy()
        self._times_selected.zero_()
        self._counts[:] = 0
        log = {"on_epoch": True, "rank_zero_only": True}  # global figures already: logged once
        pl_module.log("rho_loss/presentations", float(presented), **log)
        pl_module.log("rho_loss/scored", float(scored), **log)

    # Checkpointing --------------------------------------------------------------------------------
    @override
    def state_dict(self) -> dict[str, Any]:
        rank = 0 if self._trainer is None else self._trainer.global_rank
        return {
            "irreducible_sha1": self._digest,
            "scored_per_epoch": list(self.scored_per_epoch),
            "presentations_per_epoch": list(self.presentations_per_epoch),
            "times_selected": torch.from_numpy(self._selected_before.copy()),
            # this epoch so far, on the saving rank: the counts are the same on every rank (equal shards)
            "epoch_counts": self._counts.tolist(),
            "epoch_times_selected": None if self._times_selected is None else self._times_selected.cpu().clone(),
            "saved_by_rank": rank,
        }

    def _state_built(self) -> bool:
        return self._datamodule is not None

    def _apply_state(self, state_dict: dict[str, Any]) -> None:
        digest = state_dict.get("irreducible_sha1", self._digest)
        if digest != self._digest:
            raise ValueError(
                "the checkpoint's ReducibleLossSelection used other irreducible losses (sha1 "
                f"{digest[:12]}…, these are {self._digest[:12]}…): resume with the losses it trained with"
            )
        self.scored_per_epoch = list(state_dict.get("scored_per_epoch", []))
        self.presentations_per_epoch = list(state_dict.get("presentations_per_epoch", []))
        selected = state_dict.get("times_selected")
        if selected is not None:
            self._selected_before = selected.numpy().astype(np.int64).copy()
        self._counts[:] = state_dict.get("epoch_counts", [0, 0])
        partial = state_dict.get("epoch_times_selected")
        # another rank's selections of the interrupted epoch are not this rank's: only the saving rank takes them
        own = state_dict.get("saved_by_rank", 0) == self._trainer.global_rank
        self._restored_partial = partial if own else None


def _as_losses(source: IrreducibleSource) -> np.ndarray:
    """The irreducible losses as a float64 array, checked: 1-D, each finite or NaN."""
    if isinstance(source, IrreducibleLosses):
        values = source.losses
    elif isinstance(source, (str, os.PathLike)):
        with np.load(source, allow_pickle=False) as cached:
            values = cached["irreducible_loss"]
    elif isinstance(source, Tensor):
        values = source.detach().cpu().numpy()
    else:
        values = np.asarray(source)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"`irreducible_losses` must be 1-D (one per original index), got shape {values.shape}")
    if np.isinf(values).any():
        raise ValueError(
            f"`irreducible_losses` holds {int(np.isinf(values).sum())} infinite values; use NaN for an example "
            "without one (it is then not trained on)"
        )
    return values.copy()
