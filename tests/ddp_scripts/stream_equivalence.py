"""A litdata stream pruned during fit, probed and dynamically pruned on W processes; saves what every rank saw.

Run as a script for W > 1 (Lightning's DDP launcher re-executes ``sys.argv``); ``tests/test_streams_ddp.py``
writes the litdata dataset (:func:`write_stream`) into ``OUT/litdata`` first, runs this with
``--devices 2`` (gloo, CPU) and compares with ``run_all(out, devices=1)`` in-process. The model is frozen
(lr = 0, float64), so that 1 and 2 processes score the same model: each rank filters its own shard and the
shorter one repeats its last batch, which must change no statistic.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from probe_equivalence import RecordIndices, main, make_data, make_model, make_trainer

from datadiet import DifficultyCallback, DynamicPruning, PruneDuringFit, PruningDataModule

NUM_EXAMPLES, CHUNK = 240, 40
SCORES = ("el2n", "forgetting", "aum", "loss")


def _item(index: int):
    x, y = make_data(NUM_EXAMPLES).tensors
    return x[index], int(y[index])


def write_stream(out: str | os.PathLike) -> str:
    """Optimizes the N (x, y) items into ``out/litdata`` (in the caller's process)."""
    import litdata

    target = Path(out) / "litdata"
    litdata.optimize(
        fn=_item, inputs=list(range(NUM_EXAMPLES)), output_dir=str(target), chunk_size=CHUNK, num_workers=1,
        start_method="fork", verbose=False,
    )  # fmt: skip
    return str(target)


def _data_module(out: Path) -> PruningDataModule:
    import litdata

    return PruningDataModule(litdata.StreamingDataset(str(out / "litdata")), batch_size=16)


def run_all(out: str | os.PathLike, devices: int) -> None:
    out = Path(out)
    arrays: dict[str, np.ndarray] = {}

    recorder, prune = RecordIndices(), PruneDuringFit(after_epochs=1, keep_fraction=0.3, mislabelled=None)
    difficulty = DifficultyCallback(scores=SCORES)
    trainer = make_trainer(devices, 3, [recorder, difficulty, prune])
    trainer.fit(make_model(0.0), datamodule=_data_module(out))
    arrays["in_run/kept"] = prune.kept_indices
    arrays["in_run/el2n"] = prune.score_table["el2n"]
    for name in SCORES:
        arrays[f"probe/{name}"] = difficulty.score_table[name]
    arrays["probe/labels"] = difficulty.score_table.labels  # every rank read half the stream
    for epoch, seen in enumerate(recorder.seen):
        arrays[f"in_run/seen_epoch{epoch}"] = np.array(seen, dtype=np.int64)

    recorder, dynamic = RecordIndices(), DynamicPruning(prune_ratio=0.5, anneal_fraction=0.0, seed=2)
    make_trainer(devices, 3, [recorder, dynamic]).fit(make_model(0.0), datamodule=_data_module(out))
    for epoch, seen in enumerate(recorder.seen):
        arrays[f"dynamic/seen_epoch{epoch}"] = np.array(seen, dtype=np.int64)

    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / f"rank{trainer.global_rank}_of{devices}.npz", **arrays)


if __name__ == "__main__":
    main(run_all, __doc__)
