"""Scale: selection, callback memory and score-table storage at 10 M examples; score bookkeeping for millions of
examples; faiss k-means against scikit-learn's.

The issue-19 targets (``--parts selection memory store``, see ``_scale_selection``, ``_scale_memory``,
``_scale_store`` for what each measures and against which numpy baseline):

- each strategy's time (hard, easy, random, ccs; with and without ``class_balanced``, 10 and 10,000 classes)
  as a ratio to its numpy baseline, the minimum of alternating rounds: ≤ 3; peak ≤ 2.5 float64 copies;
- each callback's peak bytes per example (table build, checkpoint, epoch boundary) against what it holds,
  beside a numpy program's: ≤ 1.5;
- ``ScoreTable`` save and load: ≥ 200 MB/s.

Part 1 drives the score objects directly (no model): N examples, synthetic logits (K = 10) in batches,
each "epoch" presenting every example once in a random order to the training-phase scores and then
merging (``end_epoch``), followed by one in-order scoring pass for the eval-phase scores. It reports
example-updates per second (one example through *every* listed score's ``update``) and the memory per
example, measured two ways: the state tensors' ``nbytes`` and the peak resident-set growth of a fresh
subprocess (which includes the transient buffers of the epoch-end merge).

Part 2 clusters 1 M x 128 float32 embeddings into k = 1000 with ``faiss.Kmeans`` and with
``sklearn.cluster.MiniBatchKMeans`` for the same number of passes over the data, and compares wall
time and the resulting inertia (sum of squared distances to the nearest centroid, computed alike).

    python -m benchmarks.scale                                   # everything, N = 10 M (~15-25 min, < 8 GiB)
    python -m benchmarks.scale --parts selection memory store    # the issue-19 targets only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any, Optional

import numpy as np
import torch

from benchmarks import _scale_memory, _scale_selection, _scale_store
from benchmarks._scale_memory import resident_bytes
from benchmarks._timing import base_parser, median, print_figures, results_dir, verdict, write_csv

PARTS = ("selection", "memory", "store", "bookkeeping", "kmeans")

FULL_SCORES = ("el2n", "forgetting", "margin", "aum")
NUM_CLASSES = 10


def available_scores() -> tuple[tuple[str, ...], Optional[str]]:
    """The four scores of the target, or the ones registered plus a note naming the missing ones."""
    import datadiet

    names = datadiet.list_scores()
    present = tuple(name for name in FULL_SCORES if name in names)
    missing = [name for name in FULL_SCORES if name not in names]
    return present, (f"score(s) {missing} not registered: measured without them" if missing else None)


def child(num_examples: int, batch_size: int, names: list[str], epochs: int) -> dict[str, Any]:
    """One fresh process: builds the scores, runs ``epochs`` epochs + a scoring pass, measures them."""
    from datadiet import get_score

    generator = torch.Generator().manual_seed(0)
    pool = [
        (
            torch.randn(batch_size, NUM_CLASSES, generator=generator) * 3,
            torch.randint(0, NUM_CLASSES, (batch_size,), generator=generator),
        )
        for _ in range(4)
    ]
    order = torch.randperm(num_examples, generator=generator)
    baseline = resident_bytes("VmRSS")

    scores = [get_score(name)(num_examples) for name in names]
    train_scores = [s for s in scores if s.phase == "train"]
    eval_scores = [s for s in scores if s.phase == "eval"]

    def present(index_of: Any, group: list) -> float:
        """Feeds every example once to ``group``; returns the seconds spent in ``update``."""
        start = time.perf_counter()
        for batch, begin in enumerate(range(0, num_examples, batch_size)):
            index = index_of(begin, min(begin + batch_size, num_examples))
            logits, target = pool[batch % len(pool)]
            if len(index) < batch_size:
                logits, target = logits[: len(index)], target[: len(index)]
            for score in group:
                score.update(index, logits, target)
        return time.perf_counter() - start

    epoch_update, epoch_merge = [], []
    for _ in range(epochs):
        epoch_update.append(present(lambda a, b: order[a:b], train_scores) if train_scores else 0.0)
        start = time.perf_counter()
        for score in train_scores:
            score.end_epoch()
        epoch_merge.append(time.perf_counter() - start)
    scoring_update = present(lambda a, b: torch.arange(a, b), eval_scores) if eval_scores else 0.0
    start = time.perf_counter()
    for score in eval_scores:
        score.end_scoring()
    scoring_merge = time.perf_counter() - start
    peak = resident_bytes("VmHWM")
    state_bytes = sum(getattr(s, name).nbytes for s in scores for name in s._state_names)
    # One example-update = one example through every listed score: an epoch of the train-phase scores
    # plus the eval-phase scores' share of the scoring pass (once per probe, counted as if every epoch).
    update_seconds = median(epoch_update) + scoring_update
    merge_seconds = median(epoch_merge) + scoring_merge
    return {
        "scores": "+".join(names),
        "num_examples": num_examples,
        "batch_size": batch_size,
        "updates_per_s": num_examples / update_seconds,
        "updates_per_s_with_merge": num_examples / (update_seconds + merge_seconds),
        "merge_seconds": merge_seconds,
        "state_bytes_per_example": state_bytes / num_examples,
        "peak_rss_bytes_per_example": (peak - baseline) / num_examples,
        "declared_bytes_per_example": sum(s.bytes_per_example for s in scores),
        "threads": torch.get_num_threads(),
    }


def run_child(num_examples: int, batch_size: int, names: tuple[str, ...], epochs: int, threads: int) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.scale",
        "--child",
        "--num-examples",
        str(num_examples),
        "--batch-size",
        str(batch_size),
        "--epochs",
        str(epochs),
        "--threads",
        str(threads),
        "--scores",
        *names,
    ]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(command, capture_output=True, text=True, cwd=root, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def inertia(x: np.ndarray, centroids: np.ndarray) -> float:
    """Sum of squared distances to the nearest centroid (exact, with a faiss flat index)."""
    import faiss

    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    distances, _ = index.search(x, 1)
    return float(distances.sum(dtype=np.float64))


def kmeans_comparison(num_points: int, dim: int, k: int, passes: int, sklearn_points: int, batch: int) -> dict:
    """faiss.Kmeans vs MiniBatchKMeans: ``passes`` Lloyd iterations vs ``passes`` epochs of mini-batches."""
    import faiss
    from sklearn.cluster import MiniBatchKMeans

    rng = np.random.default_rng(0)
    centers = rng.standard_normal((k, dim), dtype=np.float32) * 2.0
    x = centers[rng.integers(k, size=num_points)] + rng.standard_normal((num_points, dim), dtype=np.float32)

    start = time.perf_counter()
    # max_points_per_centroid large enough that faiss trains on all points (its default subsamples to 256 k).
    faiss_km = faiss.Kmeans(dim, k, niter=passes, seed=0, max_points_per_centroid=num_points // k + 1)
    faiss_km.train(x)
    faiss_seconds = time.perf_counter() - start

    subset = x[:sklearn_points]
    start = time.perf_counter()
    sk = MiniBatchKMeans(
        n_clusters=k,
        init="random",
        n_init=1,
        max_iter=passes,
        batch_size=batch,
        max_no_improvement=None,
        tol=0.0,
        compute_labels=False,
        random_state=0,
    ).fit(subset)
    sklearn_seconds = time.perf_counter() - start
    return {
        "num_points": num_points,
        "dim": dim,
        "k": k,
        "passes": passes,
        "sklearn_points": sklearn_points,
        "sklearn_batch_size": batch,
        "faiss_seconds": faiss_seconds,
        "sklearn_seconds": sklearn_seconds,
        "sklearn_seconds_scaled_to_full": sklearn_seconds * num_points / sklearn_points,
        "faiss_inertia_per_point": inertia(x, faiss_km.centroids) / num_points,
        "sklearn_inertia_per_point": inertia(x, sk.cluster_centers_) / num_points,
    }


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--num-examples", type=int, default=10_000_000)
    # 65,536: the batches DifficultyCallback hands its scores (its PresentationBuffer's size, K <= 64)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4096, 65536])
    parser.add_argument("--batch-size", type=int, default=65536, help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[1, 2],
        help="torch threads of the bookkeeping children: each count is measured (breakdown at the first)",
    )
    parser.add_argument("--scores", nargs="+", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kmeans-points", type=int, default=1_000_000)
    parser.add_argument("--kmeans-dim", type=int, default=128)
    parser.add_argument("--kmeans-k", type=int, default=1000)
    parser.add_argument("--kmeans-passes", type=int, default=5)
    parser.add_argument("--sklearn-points", type=int, default=None, help="subsample for scikit-learn (default all)")
    parser.add_argument("--sklearn-batch-size", type=int, default=4096)
    parser.add_argument("--skip-kmeans", action="store_true")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="what to measure")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each timed comparison (min kept)")
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 10_000], help="class counts of class_balanced")
    parser.add_argument("--memory-child", choices=(*_scale_memory.KINDS, "all"), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.memory_child:
        torch.set_num_threads(1)
        print(json.dumps(_scale_memory.child(args.memory_child, args.num_examples)))
        return {}
    if args.child:
        torch.set_num_threads(args.threads[0])
        print(json.dumps(child(args.num_examples, args.batch_size, list(args.scores), args.epochs)))
        return {}

    if args.quick:
        args.num_examples, args.batch_sizes, args.epochs, args.threads = 100_000, [8192], 2, args.threads[:1]
        args.kmeans_points, args.kmeans_dim, args.kmeans_k, args.kmeans_passes = 5000, 16, 20, 2
        args.rounds, args.classes = 1, [10, 100]
    if args.skip_kmeans and "kmeans" in args.parts:
        args.parts.remove("kmeans")
    out = results_dir(args)
    figures: list[tuple[str, str, str]] = []
    result: dict[str, Any] = {}
    if "selection" in args.parts:
        result["selection"] = _scale_selection.measure(args.num_examples, args.classes, args.rounds)
        write_csv(out / "scale_selection.csv" if out else None, result["selection"])
        figures += _scale_selection.figures(result["selection"], ratio_target=3.0, memory_target=2.5)
    if "memory" in args.parts:
        result["memory"] = _scale_memory.measure(args.num_examples, args.rounds, one_process=args.quick)
        write_csv(out / "scale_memory.csv" if out else None, _memory_rows(result["memory"]))
        figures += _scale_memory.figures(result["memory"], target=1.5)
    if "store" in args.parts:
        result["store"] = _scale_store.measure(args.num_examples, args.rounds)
        write_csv(out / "scale_store.csv" if out else None, [result["store"]])
        figures += _scale_store.figures(result["store"], target=200)
    if "bookkeeping" in args.parts or "kmeans" in args.parts:
        bookkeeping = _bookkeeping_and_kmeans(args, out)
        figures += bookkeeping.pop("figures")
        result.update(bookkeeping)
    print(f"machine load (1-min average) at the end: {os.getloadavg()[0]:.2f}")
    print_figures(f"scale: N={args.num_examples:,}, {args.rounds} alternating rounds (min), threads {args.threads} (T)",
                  figures)  # fmt: skip
    return result


def _memory_rows(memory: dict[str, Any]) -> list[dict[str, Any]]:
    keys = sorted({key for row in memory["per_example"].values() for key in row})
    rows = [{"kind": kind, "num_examples": memory["num_examples"],
             **{f"{key}_bytes_per_example": row.get(key, "") for key in keys}}
            for kind, row in memory["per_example"].items()]  # fmt: skip
    return rows


def _bookkeeping_and_kmeans(args: argparse.Namespace, out: Any) -> dict[str, Any]:
    names, note = available_scores()
    rows = []
    figures: list[tuple[str, str, str]] = []
    if "bookkeeping" not in args.parts:
        args.threads, args.batch_sizes = [], []
    for threads in args.threads:
        for batch_size in args.batch_sizes:
            rows.append(run_child(args.num_examples, batch_size, names, args.epochs, threads))
    main_batch = max(args.batch_sizes, default=0)
    for name in names if not args.quick and rows else ():  # per-score breakdown at the largest batch
        rows.append(run_child(args.num_examples, main_batch, (name,), args.epochs, args.threads[0]))
    write_csv(out / "scale_bookkeeping.csv" if out else None, rows)

    for row in rows:
        tag = f"{row['scores']} B={row['batch_size']} {row['threads']}T"
        figures.append(
            (
                f"updates/s {tag}",
                f"{row['updates_per_s'] / 1e6:.1f} M",
                verdict(row["updates_per_s"] / 1e6, 10, at_most=False) if "+" in row["scores"] else "",
            )
        )
        figures.append(
            (
                f"updates/s incl. epoch-end merge {tag}",
                f"{row['updates_per_s_with_merge'] / 1e6:.1f} M",
                verdict(row["updates_per_s_with_merge"] / 1e6, 10, at_most=False) if "+" in row["scores"] else "",
            )
        )
        figures.append(
            (
                f"state bytes/example {tag}",
                f"{row['state_bytes_per_example']:.1f}",
                f"(declared {row['declared_bytes_per_example']})",
            )
        )
        figures.append(
            (
                f"peak RSS bytes/example {tag}",
                f"{row['peak_rss_bytes_per_example']:.1f}",
                verdict(row["peak_rss_bytes_per_example"], 64) if "+" in row["scores"] else "",
            )
        )

    kmeans = None
    if "kmeans" in args.parts:
        sklearn_points = min(args.sklearn_points or args.kmeans_points, args.kmeans_points)
        kmeans = kmeans_comparison(
            args.kmeans_points,
            args.kmeans_dim,
            args.kmeans_k,
            args.kmeans_passes,
            sklearn_points,
            args.sklearn_batch_size,
        )
        write_csv(out / "scale_kmeans.csv" if out else None, [kmeans])
        scaled = "" if sklearn_points == args.kmeans_points else f" (measured on {sklearn_points:,}, scaled)"
        tag = f"{args.kmeans_points:,}x{args.kmeans_dim} k={args.kmeans_k} {args.kmeans_passes} passes"
        figures += [
            (f"faiss k-means seconds {tag}", f"{kmeans['faiss_seconds']:.1f}", ""),
            (f"MiniBatchKMeans seconds {tag}", f"{kmeans['sklearn_seconds_scaled_to_full']:.1f}", scaled.strip()),
            (
                "MiniBatchKMeans / faiss time",
                f"{kmeans['sklearn_seconds_scaled_to_full'] / kmeans['faiss_seconds']:.2f}",
                scaled.strip(),
            ),
            ("inertia/point faiss", f"{kmeans['faiss_inertia_per_point']:.2f}", ""),
            ("inertia/point MiniBatchKMeans", f"{kmeans['sklearn_inertia_per_point']:.2f}", ""),
        ]
    if note and rows:
        print(note)
    return {"bookkeeping": rows, "kmeans": kmeans, "figures": figures}


if __name__ == "__main__":
    main()
