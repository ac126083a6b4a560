"""Sweep on the subset, train the winner on everything: does a hyperparameter / architecture sweep ranked on a
chosen subset pick what the full-data sweep picks?

Eight configurations (CNN1D of 16 and 32 channels and an MLP of two widths, each at two learning rates) train on
all data, on one subset chosen once (CNN1D's own first 2 epochs, EL2N, hardest ``keep``; its selection cost counted
once for the whole sweep) and on a random subset of the same size. Reported: the Spearman correlation of each
subset sweep's ranking with the full-data one, the regret of the configuration it picks (its full-data accuracy
against the best full-data accuracy, points), and the sweep's compute against the full-data sweep (selection
included), alone and with the winner then trained on all data. Every run is kept in
``results/sweep_on_subset_<data>_runs.csv``.

    python -m benchmarks.sweep_on_subset                 # MNIST-1D 45k, 15 epochs, keep 0.5
    python -m benchmarks.sweep_on_subset --quick
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
from torch import nn

from benchmarks._foundation import RunCache, choose, data_maker, flops_of, selector_scores, train_and_test
from benchmarks._timing import base_parser, machine, results_dir, write_csv
from datadiet.models import CNN1D, MLP

#: name -> (network factory, learning rate)
CONFIGURATIONS: dict[str, tuple[Callable[..., nn.Module], float]] = {
    f"{name} lr={lr:g}": (make, lr)
    for name, make in {
        "cnn1d c=16": functools.partial(CNN1D, channels=16),
        "cnn1d c=32": functools.partial(CNN1D, channels=32),
        "mlp 128x2": functools.partial(MLP, hidden_sizes=(128, 128)),
        "mlp 512x2": functools.partial(MLP, hidden_sizes=(512, 512)),
    }.items()
    for lr in ((1e-3, 5e-3) if name.startswith("cnn1d") else (3e-4, 2e-3))
}


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__)
    parser.add_argument("--data", default="mnist1d", help="mnist1d | fashion_mnist")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--keep", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (1 on a machine shared with others)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    epochs = 1 if args.quick else args.epochs
    make_data = data_maker(args.data, args.quick)
    dm = make_data()
    out = results_dir(args)
    cache = RunCache(
        None if out is None else out / f"sweep_on_subset_{args.data}_runs.csv",
        ("configuration", "subset", "keep", "seed", "epochs"),
    )
    print(f"machine: {machine()}")
    print(
        f"sweep of {len(CONFIGURATIONS)} configurations on {args.data}: {dm.num_examples:,} training examples, "
        f"{epochs} epochs, keep {args.keep}, seed {args.seed}"
    )
    scores, selection_flops = selector_scores("cnn1d_in_run", dm, args.seed)
    subsets = {
        "all data": None,
        "chosen": choose(scores, dm, args.keep, args.seed),
        "random": choose(None, dm, args.keep, args.seed),
    }
    flops = {name: flops_of(make, dm) for name, (make, _) in CONFIGURATIONS.items()}
    for name, (make, lr) in CONFIGURATIONS.items():
        for subset, kept in subsets.items():
            keep = 1.0 if kept is None else args.keep
            if cache.get(configuration=name, subset=subset, keep=keep, seed=args.seed, epochs=epochs) is None:
                cache.add(
                    {
                        "configuration": name,
                        "subset": subset,
                        "keep": keep,
                        "seed": args.seed,
                        "epochs": epochs,
                        "flops": 3 * flops[name] * (dm.num_examples if kept is None else len(kept)) * epochs,
                        **train_and_test(make, lr, dm, kept, epochs, args.seed),
                    }
                )
    rows = [
        row
        for row in cache.rows
        if int(row["epochs"]) == epochs
        and int(row["seed"]) == args.seed
        and (row["subset"] == "all data" or float(row["keep"]) == args.keep)
    ]
    accuracy = {(row["configuration"], row["subset"]): 100 * float(row["test_acc"]) for row in rows}
    run_flops = {(row["configuration"], row["subset"]): float(row["flops"]) for row in rows}
    names = list(CONFIGURATIONS)
    full = np.array([accuracy[(name, "all data")] for name in names])
    full_sweep = sum(run_flops[(name, "all data")] for name in names)
    summary = []
    for subset in ("chosen", "random"):
        on_subset = np.array([accuracy[(name, subset)] for name in names])
        picked = names[int(on_subset.argmax())]
        sweep = sum(run_flops[(name, subset)] for name in names) + (selection_flops if subset == "chosen" else 0.0)
        summary.append(
            {
                "subset": subset,
                "keep": args.keep,
                "spearman": round(_spearman(on_subset, full), 3),
                "picked": picked,
                "best_on_all_data": names[int(full.argmax())],
                "regret_pt": round(float(full.max() - accuracy[(picked, "all data")]), 2),
                "sweep_compute": round(sweep / full_sweep, 3),
                "with_winner_on_all_data": round((sweep + run_flops[(picked, "all data")]) / full_sweep, 3),
            }
        )
    print("| configuration | all data (%) | chosen (%) | random (%) |\n|---|---:|---:|---:|")
    for name in names:
        print(
            f"| {name} | {accuracy[(name, 'all data')]:.2f} | {accuracy[(name, 'chosen')]:.2f} | "
            f"{accuracy[(name, 'random')]:.2f} |"
        )
    print(
        "\n| sweep on | Spearman vs all data | picked | regret (pt) | sweep compute (selection incl.) | "
        "+ winner on all data |\n|---|---:|---|---:|---:|---:|"
    )
    for row in summary:
        print(
            f"| {row['subset']} {row['keep']:g} | {row['spearman']:.3f} | {row['picked']} | {row['regret_pt']:.2f} | "
            f"{row['sweep_compute']:.2f}× | {row['with_winner_on_all_data']:.2f}× |"
        )
    print(
        f"(best on all data: {summary[0]['best_on_all_data']}; the chosen subset's selection: "
        f"{selection_flops / full_sweep:.3f}× the full-data sweep)"
    )
    if out is not None:
        write_csv(out / f"sweep_on_subset_{args.data}.csv", summary)
    return {"summary": summary, "accuracy": accuracy}


if __name__ == "__main__":
    main()
