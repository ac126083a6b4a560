"""Streaming speed: epoch time on a streamed litdata dataset pruned to a kept fraction f, over the full epoch's.

A ``StreamingDataset`` written once with ``litdata.optimize`` (into a temporary folder), wrapped in a
``PruningDataModule`` and pruned with ``dm.prune(..., keep_fraction=f, strategy="random")``: the stream is
read whole every epoch, and the examples not kept are skipped before collation. Two cases, each a fit per
f in {1, 0.3, 0.5, 0.7}, interleaved, median over repetitions:

- compute-bound: a model whose step dominates reading (a wide MLP on CPU, ResNet-18 with bf16 AMP on
  CUDA). Target: ratio <= f + 0.1.
- I/O-bound: a tiny linear model and a simulated slow read (``--read-delay`` seconds per item, a litdata
  ``transform`` that waits, as a remote fetch or a JPEG decode would): skipping saves only the steps, so
  the ratio is ``(read + f * rest) / (read + rest)``; the script times a pass that only reads the stream,
  prints its share of the full epoch and the ratio that formula predicts beside the measured one.

    python -m benchmarks.streaming
    python -m benchmarks.streaming --device cuda   # ResNet-18 on random 32x32 images, bf16 AMP, 4 workers
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn

from benchmarks._timing import (
    EpochTimer,
    base_parser,
    interleave,
    median,
    print_figures,
    quiet_trainer,
    results_dir,
    verdict,
    write_csv,
)  # fmt: skip
from datadiet import PruningDataModule

NUM_FEATURES, NUM_CLASSES = 40, 10


class _Item:
    """Item ``i`` of the written dataset: random features (or a uint8 32x32 image) and a label."""

    def __init__(self, image: bool) -> None:
        self.image = image

    def __call__(self, index: int) -> tuple[Any, int]:
        generator = torch.Generator().manual_seed(index)
        if self.image:
            x = torch.randint(0, 256, (3, 32, 32), generator=generator, dtype=torch.uint8)
        else:
            x = torch.randn(NUM_FEATURES, generator=generator)
        return x, int(torch.randint(NUM_CLASSES, (1,), generator=generator))


class _SlowRead:
    """A litdata ``transform``: ``delay`` seconds per item, then uint8 images to float (as a decode would)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def __call__(self, item: tuple[Any, int]) -> tuple[Any, int]:
        if self.delay:
            end = time.perf_counter() + self.delay
            while time.perf_counter() < end:  # a sleep would round up to the scheduler's tick
                pass
        x, y = item
        return (x.float() / 255 if x.dtype == torch.uint8 else x), y


class _Classifier(pl.LightningModule):
    def __init__(self, net: nn.Module, lr: float = 0.05) -> None:
        super().__init__()
        self.net, self.lr = net, lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


def _model(case: str, device: str, hidden: int) -> _Classifier:
    torch.manual_seed(0)
    if case == "io":
        return _Classifier(nn.Sequential(nn.Flatten(), nn.LazyLinear(NUM_CLASSES)))
    if device == "cuda":
        from torchvision.models import resnet18

        return _Classifier(resnet18(num_classes=NUM_CLASSES).to(memory_format=torch.channels_last), lr=0.1)
    widths = [NUM_FEATURES, hidden, hidden, hidden]
    layers = [module for a, b in zip(widths, widths[1:], strict=False) for module in (nn.Linear(a, b), nn.ReLU())]
    return _Classifier(nn.Sequential(*layers, nn.Linear(hidden, NUM_CLASSES)))


def write_dataset(folder: Path, num_examples: int, image: bool) -> str:
    import litdata

    litdata.optimize(
        fn=_Item(image), inputs=list(range(num_examples)), output_dir=str(folder), chunk_bytes="8MB", num_workers=1,
        start_method="fork", verbose=False,
    )  # fmt: skip
    return str(folder)


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--num-examples", type=int, default=None, help="default 2000 (CPU), 50000 (CUDA)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 128 (CPU), 256 (CUDA)")
    parser.add_argument("--hidden", type=int, default=2048, help="width of the CPU compute-bound MLP")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default 0 CPU, 4 CUDA)")
    parser.add_argument("--read-delay", type=float, default=100e-6, help="seconds per item read, I/O-bound case")
    parser.add_argument("--keep-fractions", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    parser.add_argument("--cases", nargs="+", choices=("compute", "io"), default=["compute", "io"])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per fit (the first is not timed)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (one fit of every side each)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    import litdata

    cuda = args.device == "cuda"
    num_examples = args.num_examples or (50_000 if cuda else 2000)
    batch_size = args.batch_size or (256 if cuda else 128)
    workers = args.workers if args.workers is not None else (4 if cuda else 0)
    if args.quick:
        num_examples, args.epochs, args.repeats, args.hidden = 512, 2, 1, 64
    torch.set_num_threads(args.threads)
    fractions = [1.0] + [f for f in args.keep_fractions if f < 1.0]
    rows, figures = [], []
    with tempfile.TemporaryDirectory(prefix="datadiet-streaming-") as tmp:
        data_dir = write_dataset(Path(tmp) / "optimized", num_examples, image=cuda)
        for case in args.cases:
            delay = args.read_delay if case == "io" else 0.0

            def fit(keep_fraction: float, case: str = case, delay: float = delay) -> tuple[float, float]:
                stream = litdata.StreamingDataset(data_dir, transform=_SlowRead(delay))
                dm = PruningDataModule(stream, batch_size=batch_size, num_workers=workers, pin_memory=cuda)
                if keep_fraction < 1.0:
                    dm.prune(np.zeros(num_examples), keep_fraction=keep_fraction, strategy="random", seed=0)
                pl.seed_everything(0, verbose=False)
                timer = EpochTimer()
                precision = "bf16-mixed" if cuda and case == "compute" else "32-true"
                trainer = quiet_trainer(args.device, args.epochs, callbacks=[timer], precision=precision)
                trainer.fit(_model(case, args.device, args.hidden), datamodule=dm)
                return timer.median_epoch, timer.median_epoch_cpu

            def read_only(delay: float = delay) -> tuple[float, float]:
                """One pass over the stream with nothing trained: what every epoch pays, pruned or not."""
                loader = torch.utils.data.DataLoader(
                    litdata.StreamingDataset(data_dir, transform=_SlowRead(delay)), batch_size=batch_size,
                    num_workers=workers, collate_fn=len,
                )  # fmt: skip
                start = time.perf_counter(), time.process_time()
                for _ in loader:
                    pass
                return time.perf_counter() - start[0], time.process_time() - start[1]

            candidates = {f: (lambda f=f: fit(f)) for f in fractions}
            measured = interleave({**candidates, "read": read_only}, args.repeats)
            # wall time always; on CPU also the process's CPU time, which a busy shared machine disturbs less
            for position, clock in enumerate(["wall"] + ([] if cuda else ["CPU"])):
                epoch = {f: median(m[position] for m in measured[f]) for f in fractions}
                share = median(m[position] for m in measured["read"]) / epoch[1.0]
                figures.append((f"{case}: epoch {clock} s, full data", f"{epoch[1.0]:.4f}", ""))
                figures.append((f"{case}: reading alone / full epoch ({clock})", f"{share:.3f}", ""))
                for f in fractions[1:]:
                    ratio = epoch[f] / epoch[1.0]
                    rows.append(dict(case=case, clock=clock, keep_fraction=f, epoch_seconds=epoch[f],
                                     full_seconds=epoch[1.0], read_share=share, ratio=ratio))  # fmt: skip
                    # reading is paid whole, only the rest scales with f
                    predicted = f"read + f x rest predicts {min(share, 1.0) + f * (1 - min(share, 1.0)):.3f}"
                    target = verdict(ratio, f + 0.1) if case == "compute" else ""
                    figures.append((f"{case}: {clock} ratio f={f:g} / full", f"{ratio:.3f}", f"{target} {predicted}"))
    setup = f"{args.device}, litdata stream, N={num_examples:,}, batch {batch_size}, {workers} workers"
    out = results_dir(args)
    write_csv(out / f"streaming_{args.device}.csv" if out else None, rows)
    model = "ResNet-18 bf16 AMP" if cuda else f"MLP {args.hidden} wide"
    print_figures(
        f"streaming: {setup}; compute-bound: {model}; I/O-bound: linear model, {args.read_delay * 1e6:g} µs per read; "
        f"{args.epochs - 1} timed epochs per fit, median of {args.repeats} interleaved fits",
        figures,
    )
    return {(row["case"], row["clock"], row["keep_fraction"]): row["ratio"] for row in rows}


if __name__ == "__main__":
    main()
