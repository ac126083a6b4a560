"""Quality: test error vs examples kept on MNIST-1D, keeping hard / easy / random examples by EL2N.

Two training-set sizes (small and large), keep fractions {0.3, 0.5, 0.7, 1.0}, three seeds. Each seed
trains its own probe (same network, a fifth of the epochs), scores the training set with EL2N at the
end of the probe, keeps a subset and trains a fresh network on it for a fixed number of epochs. Writes
``benchmarks/results/quality_mnist1d.csv`` (one row per run), ``quality_mnist1d_curves.csv`` (test
accuracy after every epoch) and ``docs/figures/quality_mnist1d.png``, then prints which strategy wins in
which regime and the compute-to-accuracy figure: the fraction of full-data training compute (probe
included, counted in examples forwarded) needed to reach full-data accuracy - 0.5 pt.

    python -m benchmarks.quality            # ~15-25 min on 2 CPU cores
"""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path
from typing import Any, Optional

import lightning.pytorch as pl
import numpy as np
import torch

from benchmarks._timing import base_parser, machine, quiet_trainer, results_dir, write_csv
from datadiet import DifficultyCallback
from datadiet.data.sources import mnist1d_datamodule
from datadiet.models import CNN1D, Classifier

FIGURE = Path(__file__).resolve().parents[1] / "docs" / "figures" / "quality_mnist1d.png"
STRATEGIES = ("hard", "easy", "random")
TOLERANCE = 0.005  # "full-data accuracy - 0.5 pt"


class TestAccuracyCurve(pl.Callback):
    """Test accuracy after every training epoch (one no-grad pass over the in-memory test tensors)."""

    def __init__(self, x_test: torch.Tensor, y_test: torch.Tensor) -> None:
        super().__init__()
        self.x_test, self.y_test = x_test, y_test
        self.accuracy: list[float] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            predicted = pl_module(self.x_test.to(pl_module.device)).argmax(dim=1).cpu()
        pl_module.train(was_training)
        self.accuracy.append(float((predicted == self.y_test).float().mean()))


def make_model(dm: Any, channels: int) -> Classifier:
    net = functools.partial(CNN1D, channels=channels)
    return Classifier(net, dm.input_shape, dm.num_classes, optimizer="adam", lr=5e-3, cosine_schedule=True)


def train(dm: Any, seed: int, epochs: int, channels: int, x_test: torch.Tensor, y_test: torch.Tensor) -> list[float]:
    pl.seed_everything(seed, verbose=False)
    curve = TestAccuracyCurve(x_test, y_test)
    quiet_trainer("cpu", epochs, callbacks=[curve]).fit(make_model(dm, channels), datamodule=dm)
    return curve.accuracy


def probe_el2n(dm: Any, seed: int, epochs: int, channels: int) -> np.ndarray:
    pl.seed_everything(seed + 1000, verbose=False)
    difficulty = DifficultyCallback(scores=("el2n",))
    quiet_trainer("cpu", epochs, callbacks=[difficulty]).fit(make_model(dm, channels), datamodule=dm)
    return difficulty.score_table["el2n"]


def run_size(label: str, num_train: int, epochs: int, args: Any, rows: list, curves: list) -> None:
    dm = mnist1d_datamodule(num_samples=args.num_samples, num_train=num_train, batch_size=args.batch_size)
    x_test, y_test = dm.test_dataset.tensors
    probe_epochs = max(1, epochs // 5)
    full_compute = num_train * epochs  # examples forwarded by full-data training
    for seed in range(args.seeds):
        start = time.perf_counter()
        el2n = probe_el2n(dm, seed, probe_epochs, args.channels)
        probe_seconds = time.perf_counter() - start
        probe_forwarded = num_train * (probe_epochs + 1)  # probe epochs + the scoring pass
        runs = [(1.0, "all")] + [(f, s) for f in args.keep_fractions if f < 1.0 for s in STRATEGIES]
        for keep_fraction, strategy in runs:
            if strategy == "all":
                dm.reset_pruning()
                kept = num_train
            else:
                kept = len(dm.prune(el2n, keep_fraction=keep_fraction, strategy=strategy, seed=seed))
            start = time.perf_counter()
            accuracy = train(dm, seed, epochs, args.channels, x_test, y_test)
            seconds = time.perf_counter() - start
            uses_probe = strategy in ("hard", "easy")
            overhead = probe_forwarded if uses_probe else 0
            rows.append(
                dict(
                    size=label,
                    num_train=num_train,
                    seed=seed,
                    strategy=strategy,
                    keep_fraction=keep_fraction,
                    examples_kept=kept,
                    epochs=epochs,
                    probe_epochs=probe_epochs if uses_probe else 0,
                    test_accuracy=round(accuracy[-1], 5),
                    test_error=round(1 - accuracy[-1], 5),
                    examples_forwarded=overhead + kept * epochs,
                    compute_fraction=round((overhead + kept * epochs) / full_compute, 4),
                    train_seconds=round(seconds, 2),
                    probe_seconds=round(probe_seconds, 2) if uses_probe else 0.0,
                )
            )
            for epoch, value in enumerate(accuracy, start=1):
                curves.append(
                    dict(
                        size=label,
                        seed=seed,
                        strategy=strategy,
                        keep_fraction=keep_fraction,
                        epoch=epoch,
                        test_accuracy=round(value, 5),
                        compute_fraction=round((overhead + kept * epoch) / full_compute, 4),
                    )
                )
            print(
                f"[{label} n={num_train} seed={seed}] {strategy:>6} f={keep_fraction:.1f}: "
                f"test error {1 - accuracy[-1]:.4f} ({seconds:.1f} s)",
                flush=True,
            )
    dm.reset_pruning()


def _mean(rows: list, **match: Any) -> tuple[float, float]:
    values = [r["test_error"] for r in rows if all(r[k] == v for k, v in match.items())]
    return float(np.mean(values)), float(np.std(values))


def compute_to_accuracy(curves: list, size: str, strategy: str) -> tuple[Optional[float], float, str]:
    """Least compute fraction at which the seed-mean test accuracy reaches full accuracy - 0.5 pt.

    Candidates are every (keep fraction, epoch) of the strategy's runs and of the full-data runs; the
    full-data target is the seed-mean final accuracy of the full runs. Also says where it was reached.
    """
    full = [c for c in curves if c["size"] == size and c["strategy"] == "all"]
    last_epoch = max(c["epoch"] for c in full)
    target = float(np.mean([c["test_accuracy"] for c in full if c["epoch"] == last_epoch])) - TOLERANCE
    best: Optional[float] = None
    where = ""
    groups: dict[tuple, list] = {}
    for c in curves:
        if c["size"] == size and c["strategy"] in (strategy, "all"):
            groups.setdefault((c["keep_fraction"], c["epoch"]), []).append(c)
    for group in groups.values():
        if np.mean([c["test_accuracy"] for c in group]) >= target:
            fraction = group[0]["compute_fraction"]
            if best is None or fraction < best:
                best = fraction
                where = f"{group[0]['strategy']} f={group[0]['keep_fraction']:g} after epoch {group[0]['epoch']}"
    return best, target, where


def plot(rows: list, sizes: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sizes), figsize=(5.2 * len(sizes), 4), squeeze=False)
    colors = {"hard": "tab:red", "easy": "tab:blue", "random": "tab:gray"}
    for ax, (label, num_train, _) in zip(axes[0], sizes):
        full_mean, full_std = _mean(rows, size=label, strategy="all")
        for strategy in STRATEGIES:
            fractions = sorted({r["keep_fraction"] for r in rows if r["size"] == label and r["strategy"] == strategy})
            stats = [_mean(rows, size=label, strategy=strategy, keep_fraction=f) for f in fractions]
            kept = [round(f * num_train) for f in fractions] + [num_train]
            means = [100 * m for m, _ in stats] + [100 * full_mean]
            stds = [100 * s for _, s in stats] + [100 * full_std]
            ax.errorbar(kept, means, yerr=stds, marker="o", capsize=3, label=f"keep {strategy}", color=colors[strategy])
        ax.set_xscale("log")
        ax.set_xlabel("training examples kept")
        ax.set_ylabel("test error (%)")
        ax.set_title(f"MNIST-1D, {label} ({num_train:,} examples), EL2N")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000, help="small training-set size")
    parser.add_argument("--large", type=int, default=16000, help="large training-set size")
    parser.add_argument("--small-epochs", type=int, default=60)
    parser.add_argument("--large-epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--keep-fractions", type=float, nargs="+", default=[0.3, 0.5, 0.7, 1.0])
    parser.add_argument("--num-samples", type=int, default=25000, help="MNIST-1D examples generated (80%% train)")
    parser.add_argument("--channels", type=int, default=25, help="CNN1D channels")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--figure", type=Path, default=None, help=f"PNG path (default {FIGURE}; none with --quick)")
    args = parser.parse_args(argv)
    if args.quick:
        args.small, args.large, args.small_epochs, args.large_epochs, args.seeds = 100, 300, 2, 2, 1
        args.num_samples, args.channels, args.keep_fractions = 1000, 8, [0.5, 1.0]
    # The CNN is tiny: one thread per process is ~8x faster than two on a busy 2-core machine.
    torch.set_num_threads(args.threads)
    sizes = [("small", args.small, args.small_epochs), ("large", args.large, args.large_epochs)]
    rows: list = []
    curves: list = []
    for label, num_train, epochs in sizes:
        run_size(label, num_train, epochs, args, rows, curves)

    out = results_dir(args)
    write_csv(out / "quality_mnist1d.csv" if out else None, rows)
    write_csv(out / "quality_mnist1d_curves.csv" if out else None, curves)
    figure = args.figure or (None if args.quick else FIGURE)
    if figure is not None:
        plot(rows, sizes, figure)

    print(f"\n== quality: MNIST-1D, CNN1D({args.channels}), EL2N probe = 1/5 of the epochs, {args.seeds} seeds")
    print(f"machine: {machine()}")
    print(f"command: python -m benchmarks.quality {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    summary: dict[str, Any] = {}
    fractions = [f for f in args.keep_fractions if f < 1.0]
    for label, num_train, epochs in sizes:
        full_mean, full_std = _mean(rows, size=label, strategy="all")
        print(
            f"\n{label}: {num_train:,} training examples, {epochs} epochs; full data: test error "
            f"{100 * full_mean:.2f} ± {100 * full_std:.2f} %"
        )
        print(f"{'keep':>6} " + " ".join(f"{s:>15}" for s in STRATEGIES) + "   best")
        wins = {s: 0 for s in STRATEGIES}
        for f in fractions:
            stats = {s: _mean(rows, size=label, strategy=s, keep_fraction=f) for s in STRATEGIES}
            best = min(stats, key=lambda s: stats[s][0])
            wins[best] += 1
            print(
                f"{f:>6.1f} "
                + " ".join(f"{100 * m:>8.2f} ± {100 * sd:4.2f}" for m, sd in stats.values())
                + f"   {best}"
            )
        compute = {s: compute_to_accuracy(curves, label, s) for s in STRATEGIES}
        target = next(iter(compute.values()))[1]
        print(f"compute to reach {100 * target:.2f} % test accuracy (full - 0.5 pt), fraction of full-data training:")
        for s, (fraction, _, where) in compute.items():
            print(f"  {s:>6}: {'not reached' if fraction is None else f'{fraction:.3f} ({where})'}")
        winner = max(wins, key=lambda s: wins[s])
        summary[label] = {"wins": wins, "winner": winner, "compute": {s: c for s, (c, _, _) in compute.items()}}
        print(f"winner at the most keep fractions: {winner} ({wins})")
    small_winner, large_winner = summary["small"]["winner"], summary["large"]["winner"]
    agrees = small_winner == "easy" and large_winner == "hard"
    print(
        f"\npaper's prediction (Sorscher et al. 2022): keep easy when small, keep hard when large. "
        f"Measured: {small_winner} when small, {large_winner} when large -> "
        f"{'agrees' if agrees else 'does not fully agree'}"
    )
    return summary


if __name__ == "__main__":
    main()
