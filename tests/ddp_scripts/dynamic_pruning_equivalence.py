"""Trains with DynamicPruning on W processes and saves what every rank saw (see tests/test_ddp_dynamic_pruning.py).

Run as a script (Lightning's DDP launcher re-executes ``sys.argv`` for rank 1). Scenarios, in float64:

- ``frozen``: lr = 0, N odd, batches of 8 per process: the losses never change, DDP pads one example
  into most epochs, and the kept sets must still equal the one-process ones.
- ``trained``: full-batch SGD, so that one and two processes follow the same trajectory as long as
  each epoch's kept set has an even size (no padding); the test checks that this held.
"""

from __future__ import annotations

import math
import os

import lightning.pytorch as pl
import numpy as np
import torch
from probe_equivalence import main, make_data, make_model, make_trainer, run_scenarios  # the same data, model, CLI

from datadiet import DynamicPruning, PruningDataModule

SCENARIOS = {
    # name: (num_examples, lr, epochs, batch per process or "full", prune_ratio)
    "frozen": (51, 0.0, 5, 8, 0.5),
    "trained": (40, 0.5, 5, "full", 0.7),  # kept sets of 40, 22, 26, 26, 40: even, so no padding
}


class RecordIndices(pl.Callback):
    def __init__(self) -> None:
        self.seen: dict[int, list[int]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.setdefault(trainer.current_epoch, []).extend(trainer.datamodule.batch_original_index.tolist())


def run(name: str, devices: int) -> tuple[dict[str, np.ndarray], int]:
    num_examples, lr, epochs, batch, prune_ratio = SCENARIOS[name]
    batch_size = math.ceil(num_examples / devices) if batch == "full" else batch
    pruning = DynamicPruning(prune_ratio=prune_ratio, anneal_fraction=0.2)
    record = RecordIndices()
    model = make_model(lr)
    trainer = make_trainer(devices, epochs, [pruning, record])
    trainer.fit(model, datamodule=PruningDataModule(make_data(num_examples), batch_size=batch_size))
    arrays = {
        f"{name}/scores": pruning.scores,
        f"{name}/kept_per_epoch": np.array(pruning.kept_per_epoch),
        f"{name}/presentations_per_epoch": np.array(pruning.presentations_per_epoch),
        f"{name}/weights": torch.cat([p.detach().flatten() for p in model.parameters()]).numpy(),
    }
    for epoch, seen in record.seen.items():
        arrays[f"{name}/seen_epoch{epoch}"] = np.array(seen, dtype=np.int64)
    return arrays, trainer.global_rank


def run_all(out: str | os.PathLike, devices: int) -> None:
    run_scenarios(run, SCENARIOS, out, devices)


if __name__ == "__main__":
    main(run_all, __doc__)
