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
"""

from __future__ import annotations

import logging
import sys
import warnings
from typing import Any, Optional

import lightning.pytorch as pl
import numpy as np
import torch

from benchmarks._timing import base_parser, machine, quiet_trainer, results_dir, write_csv
from datadiet import DifficultyCallback
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
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    print(f"machine: {machine()}; seeds {args.seeds}; scoring after {args.after_epochs} of 15 epochs", flush=True)
    rows = []
    for noise in (float(n) for n in args.noise.split(",")):
        seeds = args.clean_seeds if noise == 0 and args.clean_seeds is not None else args.seeds
        for seed in range(1 if args.quick else seeds):
            rows += measure(noise, seed, 1 if args.quick else args.after_epochs, args.quick)
    table = summarise(rows)
    out = results_dir(args)
    write_csv(None if out is None else out / f"label_issues_after{args.after_epochs}.csv", table)
    clean = [r["estimate"] for r in rows if r["noise"] == 0 and r["method"].startswith("datadiet")]
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
