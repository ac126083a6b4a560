"""Test-owned recorder of what each training step was given: the original indices of every batch (per epoch),
optionally DynamicPruning's weights of each batch and the model's weights at each epoch end."""

from __future__ import annotations

import copy
from typing import Any

from lightning.pytorch.callbacks import Callback


class BatchRecorder(Callback):
    """List it before the callbacks under test: its epoch-end copy of the weights is the model they score.

    Attributes:
        presented: ``{epoch: [original index, ...]}`` in presentation order.
        batches: ``{epoch: [[original index, ...] per batch]}``.
        batch_weights: ``{epoch: {original index: its weight}}`` when ``pruning`` (a DynamicPruning) is given.
        model_states: ``{epoch: state_dict at the epoch's end}`` when ``keep_model_states``.
    """

    def __init__(self, pruning: Any | None = None, keep_model_states: bool = False):
        self.pruning = pruning
        self.keep_model_states = keep_model_states
        self.presented: dict[int, list[int]] = {}
        self.batches: dict[int, list[list[int]]] = {}
        self.batch_weights: dict[int, dict[int, float]] = {}
        self.model_states: dict[int, dict] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        index = trainer.datamodule.batch_original_index.tolist()
        self.presented.setdefault(trainer.current_epoch, []).extend(index)
        self.batches.setdefault(trainer.current_epoch, []).append(index)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.pruning is not None:
            weights = self.pruning.batch_weights
            index = trainer.datamodule.batch_original_index.tolist()
            values = [1.0] * len(index) if weights is None else weights.tolist()
            self.batch_weights.setdefault(trainer.current_epoch, {}).update(zip(index, values))

    def on_train_epoch_end(self, trainer, pl_module):
        if self.keep_model_states:
            self.model_states[trainer.current_epoch] = copy.deepcopy(pl_module.state_dict())
