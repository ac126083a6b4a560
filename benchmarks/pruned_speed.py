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

from benchmarks._setups import add_fit_options, describe, fit_settings, make_datamodule, make_model, precision
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
)


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    add_fit_options(parser)
    parser.add_argument("--keep-fractions", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    args = parser.parse_args(argv)
    num_examples, batch_size = fit_settings(args)
    dm = make_datamodule(args.model, num_examples, batch_size, pin_memory=args.device == "cuda")
    no_scores = np.zeros(num_examples)

    def fit(keep_fraction: float) -> tuple[float, float]:
        if keep_fraction < 1.0:
            dm.prune(no_scores, keep_fraction=keep_fraction, strategy="random", seed=0)
        else:
            dm.reset_pruning()
        pl.seed_everything(0, verbose=False)
        timer = EpochTimer()
        trainer = quiet_trainer(args.device, args.epochs, callbacks=[timer], precision=precision(args))
        trainer.fit(make_model(args.model, dm), datamodule=dm)
        return timer.median_epoch, timer.median_epoch_cpu

    fractions = [1.0] + [f for f in args.keep_fractions if f < 1.0]
    measured = interleave({f: (lambda f=f: fit(f)) for f in fractions}, args.repeats)
    setup, tag = describe(args, num_examples, batch_size)
    rows, figures = [], []
    # Wall time always; on CPU also the process's CPU time, which a busy shared machine disturbs less.
    for position, clock in enumerate(["wall"] + ([] if args.device == "cuda" else ["CPU"])):
        epoch = {f: median(m[position] for m in measured[f]) for f in fractions}
        rows += [
            dict(setup=setup, clock=clock, keep_fraction=f, epoch_seconds=epoch[f], ratio=epoch[f] / epoch[1.0])
            for f in fractions
        ]
        figures.append((f"epoch {clock} s, full data", f"{epoch[1.0]:.4f}", ""))
        for f in fractions[1:]:
            figures.append((f"epoch {clock} s, f={f:g}", f"{epoch[f]:.4f}", ""))
            figures.append(
                (
                    f"{clock} ratio f={f:g} / full",
                    f"{epoch[f] / epoch[1.0]:.3f}",
                    verdict(epoch[f] / epoch[1.0], f + 0.05),
                )
            )
    out = results_dir(args)
    write_csv(out / f"pruned_speed_{tag}.csv" if out else None, rows)
    print_figures(
        f"pruned_speed: {setup}; {args.epochs - 1} timed epochs per fit, median of {args.repeats} interleaved fits",
        figures,
    )
    return {(row["clock"], row["keep_fraction"]): row["ratio"] for row in rows}


if __name__ == "__main__":
    main()
