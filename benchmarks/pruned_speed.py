"""Pruned speed: epoch time on a kept fraction f of the data over the full-data epoch time.

The same ``Trainer`` epoch (no callback: the training run after pruning) on the full training set and
on ``dm.prune(..., keep_fraction=f, strategy="random")`` for f in {0.25, 0.5, 0.75}, interleaved,
median over repetitions. Target: ratio <= f + 0.05, i.e. no fixed cost of pruning that grows with the
full dataset.

    python -m benchmarks.pruned_speed
    python -m benchmarks.pruned_speed --device cuda   # ResNet-18 on random 32x32 tensors, bf16 AMP
"""

from __future__ import annotations

from typing import Any, Optional

import lightning.pytorch as pl
import numpy as np

from benchmarks._setups import add_fit_options, fit_settings, make_datamodule, make_model
from benchmarks._timing import EpochTimer, base_parser, interleave, median, print_figures, quiet_trainer, results_dir, verdict, write_csv


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    add_fit_options(parser)
    parser.add_argument("--keep-fractions", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    args = parser.parse_args(argv)
    num_examples, batch_size = fit_settings(args)
    cuda = args.device == "cuda"
    dm = make_datamodule(args.device, num_examples, batch_size)
    no_scores = np.zeros(num_examples)

    def fit(keep_fraction: float) -> float:
        if keep_fraction < 1.0:
            dm.prune(no_scores, keep_fraction=keep_fraction, strategy="random", seed=0)
        else:
            dm.reset_pruning()
        pl.seed_everything(0, verbose=False)
        timer = EpochTimer()
        quiet_trainer(args.device, args.epochs, callbacks=[timer]).fit(make_model(args.device, args.model, dm), datamodule=dm)
        return timer.median_epoch

    fractions = [1.0] + [f for f in args.keep_fractions if f < 1.0]
    times = interleave({f: (lambda f=f: fit(f)) for f in fractions}, args.repeats)
    full = median(times[1.0])
    setup = (f"{args.device}, {'ResNet-18 bf16 on random 32x32' if cuda else f'MNIST-1D {args.model}'}, "
             f"N={num_examples:,}, batch {batch_size}")
    rows = [dict(setup=setup, keep_fraction=f, epoch_seconds=median(times[f]), ratio=median(times[f]) / full)
            for f in fractions]
    out = results_dir(args)
    write_csv(out / f"pruned_speed_{args.device}_{'resnet18' if cuda else args.model}.csv" if out else None, rows)
    figures = [("epoch s, full data", f"{full:.4f}", "")]
    for row in rows[1:]:
        f = row["keep_fraction"]
        figures.append((f"epoch s, f={f:g}", f"{row['epoch_seconds']:.4f}", ""))
        figures.append((f"ratio f={f:g} / full", f"{row['ratio']:.3f}", verdict(row["ratio"], f + 0.05)))
    print_figures(f"pruned_speed: {setup}; {args.epochs - 1} timed epochs per fit, median of {args.repeats} "
                  "interleaved fits", figures)
    return {row["keep_fraction"]: row["ratio"] for row in rows}


if __name__ == "__main__":
    main()
