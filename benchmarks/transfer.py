"""Transfer: does a subset chosen once by model A serve models B of other families?

Selectors A (``_foundation.SELECTORS``): the in-run default (the data set's CNN, its own first 2 epochs), a tiny MLP
trained one epoch (``probe=selector``), and a label-free choice from raw-input prototypes. Learners B
(``_foundation.LEARNERS``): on MNIST-1D an MLP, a small 1-D ResNet and CNN1D; on Fashion-MNIST an MLP and a small
2-D CNN (``_foundation.DEFAULTS``). Each B trains for the same epochs on A's hardest ``keep`` (so at ``keep`` times
its all-data compute, selection not counted), on a random subset of the same size, on all data for the full
budget, and on all data for ceil(keep · epochs) epochs: B's own line at (at least) the same compute, the one a
subset must beat.
Keep fractions 0.5 and 0.7, 3 seeds (the selection is redone per seed). Every run is kept in
``results/transfer_<data>_runs.csv``: a rerun trains only what is missing.

    python -m benchmarks.transfer                          # MNIST-1D 45k, 15 epochs, 3 seeds
    python -m benchmarks.transfer --data fashion_mnist     # when datadiet.data.sources has it
    python -m benchmarks.transfer --quick                  # tiny: checks the script runs
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from benchmarks._foundation import (
    BALANCED,
    DEFAULTS,
    LEARNERS,
    SELECTORS,
    RunCache,
    choose,
    data_maker,
    flops_of,
    selector_scores,
    train_and_test,
)
from benchmarks._timing import base_parser, machine, results_dir, write_csv

#: B on all data for ceil(keep · epochs) epochs: its own line at the subset's compute (or a little more).
LINE = "all data, same compute"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = base_parser(__doc__)
    parser.add_argument("--data", default="mnist1d", help="mnist1d | fashion_mnist")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only-seeds", default=None, help="comma-separated seeds to train (e.g. one per process)")
    parser.add_argument("--epochs", type=int, default=None, help="default: 15 on mnist1d, 10 on fashion_mnist")
    parser.add_argument("--keep", default="0.5,0.7")
    parser.add_argument("--learners", default=None, help="comma-separated; default: the data set's (DEFAULTS)")
    parser.add_argument("--selectors", default=None, help="comma-separated; default: the data set's (DEFAULTS)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (1 on a machine shared with others)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    epochs = args.epochs if args.epochs is not None else (10 if args.data == "fashion_mnist" else 15)
    epochs, seeds = (1, 1) if args.quick else (epochs, args.seeds)
    keeps = [0.5] if args.quick else [float(k) for k in args.keep.split(",")]
    default_learners, default_selectors = DEFAULTS[args.data] if args.data in DEFAULTS else ((), ())
    learners = args.learners.split(",") if args.learners else list(default_learners)
    selectors = args.selectors.split(",") if args.selectors else list(default_selectors)
    make_data = data_maker(args.data, args.quick)
    out = results_dir(args)
    cache = RunCache(
        None if out is None else out / f"transfer_{args.data}_runs.csv",
        ("learner", "selector", "keep", "seed", "epochs"),
    )
    dm = make_data()
    print(f"machine: {machine()}")
    print(
        f"transfer on {args.data}: {dm.num_examples:,} training examples, {epochs} epochs, seeds {seeds}, keep {keeps}"
    )
    learner_flops = {name: flops_of(LEARNERS[name][0], dm) for name in learners}
    for seed in [int(seed) for seed in args.only_seeds.split(",")] if args.only_seeds else range(seeds):
        scores: dict[str, Any] = {}
        for learner in learners:
            make_net, lr = LEARNERS[learner]
            train = functools.partial(train_and_test, make_net, lr, dm, epochs=epochs, seed=seed)
            if cache.get(learner=learner, selector="all data", keep=1.0, seed=seed, epochs=epochs) is None:
                cache.add(
                    {
                        "learner": learner,
                        "selector": "all data",
                        "keep": 1.0,
                        "seed": seed,
                        "epochs": epochs,
                        "selection_flops": 0.0,
                        "learner_full_flops": 3 * learner_flops[learner] * dm.num_examples * epochs,
                        **train(None),
                    }
                )
            for keep in keeps:
                if cache.get(learner=learner, selector=LINE, keep=keep, seed=seed, epochs=epochs) is None:
                    line_epochs = math.ceil(keep * epochs - 1e-9)
                    cache.add(
                        {
                            "learner": learner,
                            "selector": LINE,
                            "keep": keep,
                            "seed": seed,
                            "epochs": epochs,
                            "selection_flops": 0.0,
                            "learner_full_flops": 3 * learner_flops[learner] * dm.num_examples * epochs,
                            **train_and_test(make_net, lr, dm, None, epochs=line_epochs, seed=seed),
                        }
                    )
                for selector in ["random", *selectors]:
                    if cache.get(learner=learner, selector=selector, keep=keep, seed=seed, epochs=epochs) is not None:
                        continue
                    base = selector.removesuffix(BALANCED)  # a balanced choice reuses its selector's scores
                    if selector != "random" and base not in scores:
                        scores[base] = selector_scores(base, dm, seed)
                    values, selection_flops = scores.get(base, (None, 0.0))
                    kept = choose(values, dm, keep, seed, class_balanced=selector.endswith(BALANCED))
                    cache.add(
                        {
                            "learner": learner,
                            "selector": selector,
                            "keep": keep,
                            "seed": seed,
                            "epochs": epochs,
                            "selection_flops": selection_flops,
                            "learner_full_flops": 3 * learner_flops[learner] * dm.num_examples * epochs,
                            **train(kept),
                        }
                    )
    table = summarise(cache.rows, epochs)
    print_table(table)
    if out is not None:
        write_csv(out / f"transfer_{args.data}.csv", table)
        (out / f"transfer_{args.data}.md").write_text(markdown(table))
        plot(table, out / f"transfer_{args.data}.png", args.data)
    return table


def summarise(rows: list[dict[str, Any]], epochs: int) -> list[dict[str, Any]]:
    """One row per (learner, selector, keep): mean ± std accuracy over seeds, against B's all-data line and the
    random subset of the same size (points), B's compute with and without the selection."""
    rows = [row for row in rows if int(row["epochs"]) == epochs]
    by: dict[tuple[str, str, float], list[dict[str, Any]]] = {}
    for row in rows:
        by.setdefault((row["learner"], row["selector"], float(row["keep"])), []).append(row)
    table = []
    for (learner, selector, keep), runs in sorted(by.items()):
        accuracy = np.array([float(run["test_acc"]) for run in runs]) * 100
        full = float(runs[0]["learner_full_flops"])
        selection = float(np.mean([float(run["selection_flops"]) for run in runs]))
        reference = {kind: by.get((learner, kind, keep), []) for kind in (LINE, "random")}
        entry = {
            "learner": learner,
            "selector": selector,
            "keep": keep,
            "seeds": len(runs),
            "test_acc": round(float(accuracy.mean()), 2),
            "std": round(float(accuracy.std()), 2),
            "vs_all_data_pt": None if selector in (LINE, "all data") else _paired_gain(runs, reference[LINE]),
            "vs_full_budget_pt": _paired_gain(runs, by.get((learner, "all data", 1.0), [])),
            "vs_random_pt": None if selector == "random" else _paired_gain(runs, reference["random"]),
            "compute": round(math.ceil(keep * epochs - 1e-9) / epochs if selector == LINE else keep, 3),
            "compute_with_selection": None,
        }
        entry["compute_with_selection"] = round(entry["compute"] + selection / full, 3) if full else None
        entry["pays"] = bool(
            entry["vs_all_data_pt"] is not None
            and entry["vs_all_data_pt"] > 0
            and keep <= 0.7
            and entry["vs_random_pt"] is not None
            and entry["vs_random_pt"] >= 1.0
            and selector not in (LINE, "all data", "random")
        )
        table.append(entry)
    return table


def _paired_gain(runs: list[dict[str, Any]], reference: list[dict[str, Any]]) -> float | None:
    """Mean accuracy gain (points) of ``runs`` over ``reference`` on the seeds both have (paired), or ``None``."""
    theirs = {str(row["seed"]): float(row["test_acc"]) for row in reference}
    gains = [float(row["test_acc"]) - theirs[str(row["seed"])] for row in runs if str(row["seed"]) in theirs]
    return round(100 * float(np.mean(gains)), 2) if gains else None


def print_table(table: list[dict[str, Any]]) -> None:
    print(markdown(table))


def markdown(table: list[dict[str, Any]]) -> str:
    header = (
        "| learner B | chosen by A | keep | test acc (%) | vs B's all-data line, same compute (pt) | "
        "vs B all data, full budget (pt) | vs random same size (pt) | B's compute | with selection | pays |"
    )
    lines = [header, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in table:
        with_selection = row["compute_with_selection"]
        lines.append(
            f"| {row['learner']} | {row['selector']} | {row['keep']:g} "
            f"| {row['test_acc']:.2f} ± {row['std']:.2f} (n={row['seeds']}) "
            f"| {_signed(row['vs_all_data_pt'])} | {_signed(row.get('vs_full_budget_pt'))} "
            f"| {_signed(row['vs_random_pt'])} "
            f"| {row['compute']:.2f}× | "
            f"{'—' if with_selection is None else f'{with_selection:.2f}×'} | {'yes' if row['pays'] else 'no'} |"
        )
    lines.append("")
    present = {row["selector"] for row in table}
    lines += [f"- {name}: {text}" for name, text in SELECTORS.items() if name in present]
    lines.append(
        f"- {LINE}: B on all data for ceil(keep · epochs) epochs; "
        "pays = above it at keep <= 0.7 and >= 1 pt over random"
    )
    return "\n".join(lines) + "\n"


def _signed(value: Any) -> str:
    return "—" if value is None else f"{value:+.2f}"


def plot(table: list[dict[str, Any]], path: Any, data: str) -> None:
    """Accuracy against keep fraction per learner: each selector's line, random's, and the all-data level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    learners = sorted({row["learner"] for row in table})
    figure, axes = plt.subplots(1, len(learners), figsize=(4.5 * len(learners), 3.6), squeeze=False)
    for axis, learner in zip(axes[0], learners):
        rows = [row for row in table if row["learner"] == learner]
        for selector in sorted({row["selector"] for row in rows} - {"all data"}):
            points = sorted((row["keep"], row["test_acc"], row["std"]) for row in rows if row["selector"] == selector)
            keep, accuracy, std = map(np.array, zip(*points))
            axis.errorbar(keep, accuracy, yerr=std, marker="o", capsize=3, label=selector)
        for row in rows:
            if row["selector"] == "all data":
                axis.axhline(row["test_acc"], color="black", linestyle="--", label="all data")
        axis.set_title(f"B = {learner}")
        axis.set_xlabel("keep fraction (= B's compute)")
        axis.set_ylabel("test accuracy (%)")
    axes[0][0].legend(fontsize=7)
    figure.suptitle(f"Transfer on {data}: subsets chosen by A, trained by B")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main()
