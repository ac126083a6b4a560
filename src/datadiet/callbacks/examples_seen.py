"""Counts the training examples of one ``fit`` over all ranks: the compute figure of the app's summary."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from typing_extensions import override


class ExamplesSeen(Callback):
    """The training examples handed to ``training_step`` during one ``fit``, summed over every rank.

    Each rank reads its :class:`~datadiet.PruningDataModule`'s ``train_examples_served`` when training
    starts, at every epoch end and when it ends; each of the last two sums the differences with
    ``trainer.strategy.reduce`` (a collective, on every rank), so :attr:`count` is the same global number
    everywhere. Under DDP it includes the
    examples the ``DistributedSampler`` repeats to give every rank equally many (at most ``world_size - 1``
    per epoch): they cost compute like any other. The count is kept in checkpoints (``state_dict``), so a
    ``fit`` resumed from one counts the examples before it too (an epoch cut short by a kill and redone
    counts once), also when its training loop is skipped (resumed from a checkpoint of its last epoch).

    Example::

        seen = ExamplesSeen()
        pl.Trainer(callbacks=[seen], strategy="ddp", devices=2).fit(model, datamodule=datamodule)
        seen.count  # e.g. 2 * 288 examples after 2 epochs over 288 examples
    """

    def __init__(self) -> None:
        self.count = 0
        self._count_at_start = 0  # restored from a checkpoint
        self._served_at_start = 0

    @staticmethod
    def _served(trainer: "pl.Trainer") -> int:
        served = getattr(trainer.datamodule, "train_examples_served", None)
        if served is None:
            raise TypeError(
                f"`ExamplesSeen` needs a data module with `train_examples_served` (a `PruningDataModule`), "
                f"got {type(trainer.datamodule).__name__}"
            )
        return int(served)

    @override
    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self.count = self._count_at_start
        self._served_at_start = self._served(trainer)

    @override
    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._update(trainer)  # before the epoch's checkpoint (Lightning runs checkpoint callbacks last)

    @override
    def on_train_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._update(trainer)

    def _update(self, trainer: "pl.Trainer") -> None:
        served = self._served(trainer) - self._served_at_start
        local = torch.tensor(served, dtype=torch.int64, device=trainer.strategy.root_device)
        total = trainer.strategy.reduce(local, reduce_op="sum") if trainer.world_size > 1 else local
        self.count = self._count_at_start + int(total.item())

    @override
    def state_dict(self) -> dict[str, int]:
        return {"count": self.count}

    @override
    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.count = self._count_at_start = int(state_dict.get("count", 0))
