"""Trains with ReducibleLossSelection on W processes and saves each rank's large batches, selections and weights.

Run as a script (Lightning's DDP launcher re-executes ``sys.argv`` for rank 1); ``tests/test_ddp_reducible_loss.py``
compares with ``run_all(out, devices=1)`` and with a plain-PyTorch reference of the same steps. In float64:

- ``frozen``: lr = 0, 51 examples of which one has no irreducible loss (50 candidates), large batches of 8 per
  process, half selected: the model never changes, so each rank's selection can be checked against a numpy
  ranking of its own shard.
- ``trained``: SGD without momentum, one large batch per process and epoch, half selected: every step's
  gradient is the mean over ranks of each rank's selected-batch mean, as DDP averages them.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from probe_equivalence import main, make_data, make_model, make_trainer, run_scenarios  # the same data, model, CLI

from datadiet import PruningDataModule, ReducibleLossSelection
from datadiet.data.indexed import IndexedBatch

SCENARIOS = {
    # name: (num_examples, lr, epochs, large batch per process or "full")
    "frozen": (51, 0.0, 2, 8),
    "trained": (40, 0.5, 3, "full"),
}
FRACTION = 0.5


def irreducible_losses(num_examples: int) -> np.ndarray:
    losses = np.random.default_rng(5).uniform(0.0, 1.5, num_examples)
    losses[7] = np.nan  # the IL model's holdout: never trained on
    return losses


class RecordingDataModule(PruningDataModule):
    """Records the original indices of every large training batch before the selection cuts it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.large: list[list[int]] = []
        self.selected: list[list[int]] = []

    def on_before_batch_transfer(self, batch, dataloader_idx):
        if isinstance(batch, IndexedBatch):
            self.large.append(batch.original_index.tolist())
        return super().on_before_batch_transfer(batch, dataloader_idx)

    def on_after_batch_transfer(self, batch, dataloader_idx):
        batch = super().on_after_batch_transfer(batch, dataloader_idx)
        if self.trainer.training:
            self.selected.append(self.batch_original_index.tolist())
        return batch


def _ragged(rows: list[list[int]]) -> np.ndarray:
    """Steps of indices as one array, -1 padded (steps can differ in length)."""
    width = max(len(row) for row in rows)
    return np.array([row + [-1] * (width - len(row)) for row in rows], dtype=np.int64)


def run(name: str, devices: int) -> tuple[dict[str, np.ndarray], int]:
    num_examples, lr, epochs, batch = SCENARIOS[name]
    batch_size = math.ceil((num_examples - 1) / devices) if batch == "full" else batch
    selection = ReducibleLossSelection(irreducible_losses(num_examples), selected_fraction=FRACTION)
    model = make_model(lr)
    initial = torch.cat([p.detach().flatten() for p in model.parameters()]).numpy().copy()
    dm = RecordingDataModule(make_data(num_examples), batch_size=batch_size)
    trainer = make_trainer(devices, epochs, [selection])
    trainer.fit(model, datamodule=dm)
    arrays = {
        f"{name}/large": _ragged(dm.large),
        f"{name}/selected": _ragged(dm.selected),
        f"{name}/scored_per_epoch": np.array(selection.scored_per_epoch),
        f"{name}/presentations_per_epoch": np.array(selection.presentations_per_epoch),
        f"{name}/times_selected": selection.times_selected,
        f"{name}/initial": initial,
        f"{name}/weights": torch.cat([p.detach().flatten() for p in model.parameters()]).numpy(),
    }
    return arrays, trainer.global_rank


def run_all(out: str | os.PathLike, devices: int) -> None:
    run_scenarios(run, SCENARIOS, out, devices)


if __name__ == "__main__":
    main(run_all, __doc__)
