"""Distributed scoring: ``trainer.predict`` with ``ScoreShardWriter`` on 1 and on 2 gloo processes.

Each rank writes its shard of the score table; the merged table (rank 0 merges after a barrier) must equal the
1-process one, and each rank's shard must hold only its share (N = 51: the sampler pads one example).
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from probe_equivalence import main
from torch.utils.data import DataLoader, TensorDataset

from datadiet import ScoreShardWriter, merge_score_shards

NUM_EXAMPLES, FEATURES, CLASSES = 51, 6, 3
SCORES = ("el2n", "margin", "loss")


class Linear(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.layer = torch.nn.Linear(FEATURES, CLASSES)

    def predict_step(self, batch, batch_idx):
        return self.layer(batch[0])


def data() -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    return TensorDataset(
        torch.randn(NUM_EXAMPLES, FEATURES, generator=generator),
        torch.randint(0, CLASSES, (NUM_EXAMPLES,), generator=generator),
    )


def run_all(out: str | os.PathLike, devices: int) -> None:
    out = Path(out)
    shards = out / f"shards_of{devices}"
    model = Linear()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        callbacks=[ScoreShardWriter(shards, scores=SCORES)],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.predict(model, DataLoader(data(), batch_size=4, shuffle=False), return_predictions=False)
    trainer.strategy.barrier()  # every shard on disk before the merge
    table = merge_score_shards(shards)
    rank = trainer.global_rank
    own = np.load(shards / f"scores-rank{rank:05d}-of-{devices:05d}.npz")
    dataset = data()
    arrays = {f"raw/{name}": table.raw(name) for name in SCORES}
    arrays.update({f"score/{name}": table[name] for name in SCORES})
    arrays.update(
        labels=table.labels,
        shard_examples=np.asarray(len(own["original_index"])),
        weight=model.layer.weight.detach().numpy(),
        bias=model.layer.bias.detach().numpy(),
        x=dataset.tensors[0].numpy(),
        y=dataset.tensors[1].numpy(),
    )
    np.savez(out / f"rank{rank}_of{devices}.npz", **arrays)


if __name__ == "__main__":
    main(run_all, __doc__)
