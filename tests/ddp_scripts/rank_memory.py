"""What each DDP rank holds at N examples, measured (see tests/test_ddp_memory.py and docs/scale.md).

Run as a script (Lightning's DDP launcher re-executes ``sys.argv`` for rank 1): a probe with
``DifficultyCallback`` (its default scores) and ``DynamicPruning`` on N = 1 M examples, two epochs of a few
batches, then the scoring pass and the score table. Each rank records the bytes of its callbacks' state and
the growth of its resident set over the epoch-end merges and over the end of training (scoring pass and table
build), each measured from the resident set just before (``VmHWM`` reset through ``/proc/self/clear_refs``).
Run it with ``MALLOC_MMAP_THRESHOLD_=131072`` so that freed arrays leave the resident set.
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from probe_equivalence import main, make_trainer
from torch.utils.data import TensorDataset

from datadiet import DifficultyCallback, DynamicPruning, PruningDataModule

NUM_EXAMPLES = 1_000_000
NUM_CLASSES = 4


def _status(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)


class Bracket(pl.Callback):
    """Placed before and after the callbacks: the peak growth of the resident set over their hooks."""

    def __init__(self, record: dict, opening: bool) -> None:
        self.record, self.opening = record, opening

    def _mark(self, phase: str) -> None:
        if self.opening:
            self.record[f"{phase}_start"] = _status("VmRSS")
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
        else:
            growth = _status("VmHWM") - self.record.pop(f"{phase}_start")
            self.record[phase] = max(self.record.get(phase, 0), growth)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._mark("epoch_end_peak")

    def on_train_end(self, trainer, pl_module) -> None:
        self._mark("train_end_peak")


class Linear(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(1, NUM_CLASSES)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def run_all(out: str | os.PathLike, devices: int) -> None:
    generator = torch.Generator().manual_seed(0)
    y = torch.randint(NUM_CLASSES, (NUM_EXAMPLES,), generator=generator)
    data = TensorDataset(y.float()[:, None] + torch.randn(NUM_EXAMPLES, 1, generator=generator), y)
    datamodule = PruningDataModule(data, batch_size=4096, eval_batch_size=4096)
    record: dict = {}
    difficulty, pruning = DifficultyCallback(), DynamicPruning(prune_ratio=0.5, anneal_fraction=0.0)
    trainer = make_trainer(devices, 2, [Bracket(record, True), difficulty, pruning, Bracket(record, False)])
    trainer.limit_train_batches = 3
    trainer.fit(Linear(), datamodule=datamodule)
    state = sum(getattr(s, name).nbytes for s in difficulty.scores.values() for name in s._state_names)
    state += difficulty._ledger.presented.nbytes + pruning._scores.nbytes + pruning._losses.values.nbytes
    table = difficulty.score_table
    arrays = {
        "num_examples": NUM_EXAMPLES,
        "state_bytes": state,
        "table_bytes": table.nbytes - (0 if table.labels is None else table.labels.nbytes),
        "epoch_end_peak": record["epoch_end_peak"],
        "train_end_peak": record["train_end_peak"],
        "world_size": trainer.world_size,
    }
    Path(out).mkdir(parents=True, exist_ok=True)
    np.savez(Path(out) / f"rank{trainer.global_rank}_of{devices}.npz", **{k: np.asarray(v) for k, v in arrays.items()})


if __name__ == "__main__":
    main(run_all, __doc__)
