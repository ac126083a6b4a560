"""Distributed scoring, memory per rank: ``trainer.predict`` with :class:`~datadiet.ScoreShardWriter` over N synthetic
examples on W gloo processes (CPU), then :func:`~datadiet.merge_score_shards`.

The examples are made on the fly from their index (no O(N) dataset in memory), so what a rank's resident set gains
over the pass is the writer's share of the score table plus the fixed cost of a pass. Each rank records the growth
of its resident set over the pass (``VmHWM`` after a reset through ``/proc/self/clear_refs``, from the resident set
just before) and its shard's bytes; rank 0 then records the merge's growth (the merged table is O(N) by design:
it is one table). Run it with ``MALLOC_MMAP_THRESHOLD_=131072`` so freed arrays leave the resident set, as the
script does for its ranks.

    python benchmarks/score_shards.py --num-examples 10000000 --devices 2      # ~2-4 min on 2 quiet cores
    python benchmarks/score_shards.py --quick                                  # 20,000 examples, seconds
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: Lightning's DDP launcher re-executes sys.argv for rank 1
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from benchmarks._timing import machine
from datadiet import ScoreShardWriter, ShardSampler, merge_score_shards

FEATURES, CLASSES = 16, 10
SCORES = ("el2n", "margin", "loss")


class OnTheFly(Dataset):
    """N examples computed from their index in batches (``__getitems__``): no O(N) data held."""

    def __init__(self, num_examples: int) -> None:
        self.num_examples = num_examples

    def __len__(self) -> int:
        return self.num_examples

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.float32)[:, None]
        x = torch.sin(index * torch.arange(1, FEATURES + 1, dtype=torch.float32) * 0.001)
        y = torch.as_tensor(indices, dtype=torch.int64) % CLASSES
        return x, y


class Linear(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(FEATURES, CLASSES)

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0])


def _status(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def _reset_peak() -> int:
    start = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    return start


def run(num_examples: int, devices: int, batch_size: int, folder: Path) -> dict[str, Any] | None:
    """One scoring pass on ``devices`` processes; rank 0 returns every rank's figures and the merge's."""
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        callbacks=[ScoreShardWriter(folder, scores=SCORES)],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    # ShardSampler: each rank's share worked out when iterated (a DistributedSampler holds a list of all N indices)
    loader = DataLoader(
        OnTheFly(num_examples),
        batch_size=batch_size,
        sampler=ShardSampler(num_examples),
        collate_fn=lambda batch: batch,
    )
    start_rss = _reset_peak()
    start = time.perf_counter()
    trainer.predict(Linear(), loader, return_predictions=False)
    seconds = time.perf_counter() - start
    rank = trainer.global_rank
    shard = folder / f"scores-rank{rank:05d}-of-{devices:05d}.npz"
    mine = {
        "rank": rank,
        "pass_peak_growth_bytes": _status("VmHWM") - start_rss,
        "shard_bytes": shard.stat().st_size,
        "pass_s": round(seconds, 2),
    }
    (folder / f"memory-rank{rank}.json").write_text(json.dumps(mine))
    trainer.strategy.barrier()
    if rank != 0:
        return None
    ranks = [json.loads((folder / f"memory-rank{r}.json").read_text()) for r in range(devices)]
    start_rss = _reset_peak()
    start = time.perf_counter()
    table = merge_score_shards(folder)
    merge = {
        "merge_peak_growth_bytes": _status("VmHWM") - start_rss,
        "merge_s": round(time.perf_counter() - start, 2),
        "table_bytes": sum(table[name].nbytes + table.raw(name).nbytes for name in SCORES) + table.labels.nbytes,
    }
    return {"num_examples": num_examples, "devices": devices, "ranks": ranks, **merge}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-examples", type=int, default=10_000_000)
    parser.add_argument("--devices", type=int, default=None, help="processes (default 2; 1 with --quick)")
    parser.add_argument("--batch-size", type=int, default=65536)
    parser.add_argument("--quick", action="store_true", help="20,000 examples")
    parser.add_argument("--results", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", "131072")  # the ranks Lightning starts inherit it
    torch.set_num_threads(1)
    num_examples = 20_000 if args.quick else args.num_examples
    args.devices = args.devices or (1 if args.quick else 2)
    batch_size = min(args.batch_size, 4096) if args.quick else args.batch_size
    if "DATADIET_BENCH_SHARDS" not in os.environ:  # one folder for every rank (they inherit the environment)
        os.environ["DATADIET_BENCH_SHARDS"] = tempfile.mkdtemp(prefix="score_shards_")
    folder = Path(os.environ["DATADIET_BENCH_SHARDS"])
    result = run(num_examples, args.devices, batch_size, folder)
    if result is None:  # rank > 0
        return {}
    shutil.rmtree(folder, ignore_errors=True)
    del os.environ["DATADIET_BENCH_SHARDS"]
    print(f"machine: {machine()}")
    print(
        f"scoring {num_examples:,} examples ({', '.join(SCORES)}) on {args.devices} process(es), batch {batch_size:,}"
    )
    rows = []
    for rank in result["ranks"]:
        share = num_examples / args.devices
        rows.append(
            {
                "num_examples": num_examples,
                "devices": args.devices,
                **rank,
                "bytes_per_example_of_share": round(rank["pass_peak_growth_bytes"] / share, 2),
            }
        )
        print(
            f"  rank {rank['rank']}: pass peak +{rank['pass_peak_growth_bytes'] / 2**20:,.1f} MiB "
            f"({rows[-1]['bytes_per_example_of_share']} B per example of its share of {share:,.0f}), "
            f"shard {rank['shard_bytes'] / 2**20:,.1f} MiB, {rank['pass_s']} s"
        )
    print(
        f"  merge (rank 0, one table of all N): peak +{result['merge_peak_growth_bytes'] / 2**20:,.1f} MiB for a "
        f"table of {result['table_bytes'] / 2**20:,.1f} MiB, {result['merge_s']} s"
    )
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"score_shards_memory_{num_examples}_{args.devices}.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
