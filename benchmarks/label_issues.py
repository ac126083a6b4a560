"""The mislabel detector against the truth, beside cleanlab's ``find_label_issues`` on the same probabilities.

MNIST-1D regime (a) of ``benchmarks/frontier.py`` with 0 %, 20 % and 40 % of the training labels replaced by
a uniformly random other class (a new draw per seed; the flips recorded by the data source). The CNN1D
trains as in the in-run probe: ``after_epochs`` epochs of the 15-epoch cosine schedule, then one eval-mode
scoring pass records EL2N and the ``label_issue`` score (each example's predicted probabilities, then
datadiet's detector). The same probabilities go to cleanlab: ``filter_by="both"`` (what datadiet's default
re-implements), its default ``prune_by_noise_rate``, and cleanlab's noise estimate
(``num_label_issues(estimation_method="off_diagonal_calibrated")``). Precision and recall are against the
recorded flips; on clean data the share flagged is all false alarms.

    python -m benchmarks.label_issues                  # 3 noise levels x 3 seeds (~10 min on 2 idle cores)
    python -m benchmarks.label_issues --after-epochs 2 --clean-seeds 5   # what mislabelled=auto decides from
    python -m benchmarks.label_issues --quick

Fashion-MNIST (``--data fashion_mnist``, the idx files of ``make fashion-mnist``): a small CNN with batch norm
(:class:`~datadiet.models.CNN2D`, channels 16/32, hidden 64; AdamW 2e-3, the 10-epoch cosine schedule), ``--num-train``
training images (default 20,000 of 54,000, for a 2-core CPU), eval-mode probability snapshots after each of the
first ``--after-epochs`` epochs (3 = 30 % of 10). Each detector beside cleanlab's recipe (``both``) on the same
probabilities: the last snapshot, the average of the snapshots, early/late agreement, the class-conditional
``confident_other_class``, and (``--aum``) AUM with threshold samples from a second run with K + 1 outputs.

    python -m benchmarks.label_issues --data fashion_mnist --noise 0,0.2 --seeds 3 --threads 1   # ~25 min
"""

from __future__ import annotations

import functools
import logging
import sys
import warnings
from pathlib import Path
from typing import Any, Optional

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import TensorDataset

from benchmarks._timing import base_parser, machine, quiet_trainer, results_dir, write_csv
from datadiet import DifficultyCallback, PruningDataModule
from datadiet.detection import find_label_issues
from datadiet.models import CNN1D, Classifier


class _StopAfter(pl.Callback):
    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


def probabilities(noise: float, seed: int, after_epochs: int, quick: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(given labels, predicted probabilities, flipped mask) of the in-run probe after ``after_epochs`` epochs."""
    from datadiet.data.sources import mnist1d_datamodule

    pl.seed_everything(seed, workers=True)
    dm = mnist1d_datamodule(
        num_samples=3000 if quick else 62500,
        num_train=600 if quick else None,
        val_fraction=0.1,
        seed=42,
        batch_size=128,
        eval_batch_size=1024,
        label_noise=noise,
        label_noise_seed=seed,
    )
    model = Classifier(CNN1D, dm.input_shape, dm.num_classes, optimizer="adam", lr=5e-3, cosine_schedule=True)
    difficulty = DifficultyCallback(scores=["el2n", "label_issue"])
    quiet_trainer("cpu", 15, callbacks=[_StopAfter(after_epochs), difficulty]).fit(model, datamodule=dm)
    probs = difficulty.scores["label_issue"].probabilities.double().numpy()
    flipped = np.zeros(dm.num_examples, dtype=bool) if dm.label_noise is None else dm.label_noise.is_flipped()
    return dm.labels, probs, flipped


def _rates(flagged: np.ndarray, flipped: np.ndarray) -> dict[str, float]:
    hits = int((flagged & flipped).sum())
    return {
        "flagged_share": float(flagged.mean()),
        "precision": hits / flagged.sum() if flagged.any() else float("nan"),
        "recall": hits / flipped.sum() if flipped.any() else float("nan"),
    }


def measure(noise: float, seed: int, after_epochs: int, quick: bool) -> list[dict[str, Any]]:
    labels, probs, flipped = probabilities(noise, seed, after_epochs, quick)
    ours = find_label_issues(labels, probs, "both")
    common = {"noise": noise, "seed": seed, "after_epochs": after_epochs, "true_rate": float(flipped.mean())}
    rows = [
        {
            **common,
            "method": "datadiet label_issue (both)",
            "estimate": ours.noise_rate_estimate,
            **_rates(ours.flagged, flipped),
        }
    ]
    for detector in ("below_chance", "confident_other_class"):
        flagged = find_label_issues(labels, probs, detector)
        rows.append(
            {
                **common,
                "method": f"datadiet {detector}",
                "estimate": flagged.noise_rate_estimate,
                **_rates(flagged.flagged, flipped),
            }
        )
    try:
        from cleanlab.count import num_label_issues
        from cleanlab.filter import find_label_issues as cleanlab_find
    except ImportError:  # cleanlab is the benchmark's peer, not a dependency
        print("cleanlab is not installed (pip install cleanlab): datadiet's rows only", flush=True)
        return rows
    estimate = num_label_issues(labels, probs, estimation_method="off_diagonal_calibrated") / len(labels)
    for method in ("both", "prune_by_noise_rate"):
        flagged = cleanlab_find(labels, probs, filter_by=method, n_jobs=1)
        rows.append(
            {
                **common,
                "method": f"cleanlab find_label_issues ({method})",
                "estimate": float(estimate),
                "same_flags_as_datadiet": bool(np.array_equal(flagged, ours.flagged)),
                **_rates(flagged, flipped),
            }
        )
    return rows


class _Snapshots(pl.Callback):
    """Eval-mode predicted probabilities of the whole training set after each of the first ``epochs`` epochs."""

    def __init__(self, x: torch.Tensor, epochs: int) -> None:
        self.x, self.epochs = x, epochs
        self.taken: list[np.ndarray] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl_module.eval()
        with torch.no_grad():
            self.taken.append(
                torch.cat([pl_module(batch).softmax(-1) for batch in self.x.split(1024)]).double().numpy()
            )
        pl_module.train()
        if len(self.taken) >= self.epochs:
            trainer.should_stop = True


def _fashion_run(noise: float, seed: int, epochs: int, num_train: int, aum: bool) -> dict[str, Any]:
    from datadiet.data.sources import fashion_mnist_datamodule
    from datadiet.detection import threshold_samples
    from datadiet.models import CNN2D

    pl.seed_everything(seed, workers=True)
    dm = fashion_mnist_datamodule(
        download=False,
        num_train=num_train,
        batch_size=128,
        eval_batch_size=1024,
        label_noise=noise,
        label_noise_seed=seed,
    )
    x, labels = dm.train_dataset.tensors
    net = functools.partial(CNN2D, channels=(16, 32), hidden=64)
    if aum:  # Pleiss et al.: a random 1/(K+1) relabelled to a fake class K, a model with K + 1 outputs
        fake, mask = threshold_samples(labels.numpy(), dm.num_classes, seed=seed)
        k = dm.num_classes + 1
        dm = PruningDataModule(TensorDataset(x, torch.as_tensor(fake)), batch_size=128, eval_batch_size=1024)
        difficulty = DifficultyCallback(scores=["aum"])
        model = Classifier(net, tuple(x.shape[1:]), k, optimizer="adamw", lr=2e-3, cosine_schedule=True)
        quiet_trainer("cpu", 10, callbacks=[_StopAfter(epochs), difficulty]).fit(model, datamodule=dm)
        return {"aum": difficulty.score_table.raw("aum"), "threshold_samples": mask}
    snapshots = _Snapshots(x, epochs)
    model = Classifier(net, dm.input_shape, dm.num_classes, optimizer="adamw", lr=2e-3, cosine_schedule=True)
    quiet_trainer("cpu", 10, callbacks=[snapshots]).fit(model, datamodule=dm)
    flipped = np.zeros(dm.num_examples, dtype=bool) if dm.label_noise is None else dm.label_noise.is_flipped()
    return {"labels": labels.numpy(), "snapshots": snapshots.taken, "flipped": flipped}


def measure_fashion(
    noise: float, seed: int, epochs: int, num_train: int, aum: bool, save_dir: Optional[str] = None
) -> list[dict[str, Any]]:
    from datadiet.detection import agreement, aum_flags, average_probabilities

    run = _fashion_run(noise, seed, epochs, num_train, aum=False)
    labels, snaps, flipped = run["labels"], run["snapshots"], run["flipped"]
    if save_dir is not None:  # to try further detectors on the same probabilities without training again
        np.savez(
            Path(save_dir) / f"fashion_mnist_noise{noise}_seed{seed}.npz",
            labels=labels,
            flipped=flipped,
            snapshots=np.stack(snaps),
        )
    common = {"noise": noise, "seed": seed, "after_epochs": epochs, "true_rate": float(flipped.mean())}
    averaged = average_probabilities(snaps)
    candidates = {
        f"both (cleanlab's recipe), epoch {epochs}": find_label_issues(labels, snaps[-1], "both").flagged,
        f"prune_by_noise_rate, epoch {epochs}": find_label_issues(labels, snaps[-1], "prune_by_noise_rate").flagged,
        f"confident_other_class, epoch {epochs}": find_label_issues(labels, snaps[-1], "confident_other_class").flagged,
        f"below_chance, epoch {epochs}": find_label_issues(labels, snaps[-1], "below_chance").flagged,
        f"below_chance, mean of epochs 1-{epochs}": find_label_issues(labels, averaged, "below_chance").flagged,
        f"both, mean of epochs 1-{epochs}": find_label_issues(labels, averaged, "both").flagged,
        f"confident_other_class, mean of epochs 1-{epochs}": find_label_issues(
            labels, averaged, "confident_other_class"
        ).flagged,
        f"both, epochs 1 and {epochs} agree": agreement(labels, [snaps[0], snaps[-1]], "both"),
        f"confident_other_class, epochs 1 and {epochs} agree": agreement(
            labels, [snaps[0], snaps[-1]], "confident_other_class"
        ),
    }
    rows = [
        {**common, "method": name, "estimate": float(flags.mean()), **_rates(flags, flipped)}
        for name, flags in candidates.items()
    ]
    if aum:
        second = _fashion_run(noise, seed, epochs, num_train, aum=True)
        flags, _ = aum_flags(second["aum"], second["threshold_samples"])
        real = ~second["threshold_samples"]  # the threshold samples' own labels are not judged
        rows.append(
            {
                **common,
                "method": f"AUM + threshold samples (99th pct), {epochs} epochs",
                "estimate": float(flags[real].mean()),
                **_rates(flags[real], flipped[real]),
            }
        )
    for row in rows:
        print(
            f"  {noise:.0%} seed {seed}: {row['method']}: flagged {row['flagged_share']:.1%}, precision "
            f"{row['precision']:.3f}, recall {row['recall']:.3f}",
            flush=True,
        )
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["noise"], row["method"]), []).append(row)
    table = []
    for (noise, method), runs in sorted(groups.items(), key=lambda item: (item[0][0], item[0][1])):
        entry: dict[str, Any] = {"noise": noise, "method": method, "seeds": len(runs)}
        for key in ("estimate", "flagged_share", "precision", "recall"):
            values = np.array([r[key] for r in runs], dtype=float)
            entry[key], entry[f"{key}_std"] = (
                float(np.mean(values)),
                float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            )
        table.append(entry)
    return table


def main(argv: Optional[list[str]] = None) -> list[dict[str, Any]]:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--noise", default="0,0.2,0.4", help="comma-separated shares of flipped training labels")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--clean-seeds",
        type=int,
        default=None,
        help="seeds of the clean labels (default --seeds): their flag rate sets mislabelled=auto's threshold",
    )
    parser.add_argument("--after-epochs", type=int, default=3, help="epochs of the 15-epoch schedule before scoring")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", default="mnist1d", choices=("mnist1d", "fashion_mnist"))
    parser.add_argument("--num-train", type=int, default=20000, help="fashion_mnist: training images used")
    parser.add_argument("--aum", action="store_true", help="fashion_mnist: AUM with threshold samples too (2x time)")
    parser.add_argument("--save-probabilities", default=None, help="fashion_mnist: a folder for the snapshots")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    epochs = 10 if args.data == "fashion_mnist" else 15
    print(
        f"machine: {machine()}; {args.data}; seeds {args.seeds}; scoring after {args.after_epochs} of {epochs} epochs",
        flush=True,
    )
    rows = []
    for noise in (float(n) for n in args.noise.split(",")):
        seeds = args.clean_seeds if noise == 0 and args.clean_seeds is not None else args.seeds
        for seed in range(1 if args.quick else seeds):
            if args.data == "fashion_mnist":
                rows += measure_fashion(
                    noise,
                    seed,
                    args.after_epochs,
                    2000 if args.quick else args.num_train,
                    args.aum,
                    args.save_probabilities,
                )
            else:
                rows += measure(noise, seed, 1 if args.quick else args.after_epochs, args.quick)
    table = summarise(rows)
    out = results_dir(args)
    name = f"label_issues_after{args.after_epochs}" + ("_fashion_mnist" if args.data == "fashion_mnist" else "")
    write_csv(None if out is None else out / f"{name}.csv", table)
    clean = [r["estimate"] for r in rows if r["noise"] == 0 and r["method"].startswith(("datadiet", "both (cl"))]
    if clean:  # mislabelled=auto takes labels as clean at an estimate <= its noise_threshold
        print(
            f"clean labels, datadiet's estimate per seed: {', '.join(f'{e:.2%}' for e in clean)} (max {max(clean):.2%})"
        )
    print("\n| labels flipped | detector | noise estimate | flagged | precision | recall |")
    print("|---|---|---|---|---|---|")
    for t in table:

        def cell(key: str, percent: bool = False) -> str:
            value, std = t[key], t[f"{key}_std"]
            return "—" if np.isnan(value) else (f"{value:.1%} ± {std:.1%}" if percent else f"{value:.3f} ± {std:.3f}")

        print(
            f"| {t['noise']:.0%} | {t['method']} | {cell('estimate', True)} | {cell('flagged_share', True)} | "
            f"{cell('precision')} | {cell('recall')} |"
        )
    return table


if __name__ == "__main__":
    main(sys.argv[1:])
