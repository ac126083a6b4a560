"""Can any selection pay at about one pass? Bounds for the frontier's regime (b).

Regime (b) of ``benchmarks/frontier.py`` (MNIST-1D pool of ~196,000 training examples, CNN1D, Adam 5e-3,
batch 256, step-wise cosine, 1.0 = one pass) asks for one-pass accuracy − 0.5 pt at ≤ 0.6 of a pass. No method
of the frontier gets there. This script measures what the best conceivable selection could do, at 0.6 of a
pass, to tell a weak metric from a regime where selection cannot pay:

- **oracle static selection**: examples ranked by the loss of a model trained for three passes (95 % test
  accuracy, far better than any probe could afford); its cost is *not* counted. Hard, easy and random subsets
  of 50 % and 70 %, trained for 0.6 of a pass (the subset seen more than once when it is smaller).
- **online batch selection** (Loshchilov & Hutter 2015; Katharopoulos & Fleuret 2018; RHO-LOSS, Mindermann
  et al. 2022): each step scores a candidate batch of 512 with the current model (one forward each, counted)
  and trains on the 256 with the largest loss, sampled in proportion to it, or with the largest loss minus
  the loss of a model trained on the 4,000 held-out examples (RHO-LOSS; that model's cost not counted).
- **an oracle curriculum**: the all-data run's examples presented easiest first by the oracle's loss
  (curricula are said to help most under a short time budget: Wu et al., ICLR 2021).

It trains with a plain PyTorch loop (no Lightning: the same model, optimizer, schedule and data as the
frontier, ~15× faster on 2 cores); its all-data runs reproduce the frontier's within its seeds' spread.

    python -m benchmarks.one_pass_bound              # 3 seeds, ~3 min on 2 idle cores
    python -m benchmarks.one_pass_bound --quick
"""

from __future__ import annotations

import math
import sys
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks._timing import base_parser, machine, results_dir, write_csv
from datadiet.models import CNN1D

BATCH, LR, CANDIDATES = 256, 5e-3, 512
Rule = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (candidates' losses, their indices) -> picked rows


class Pool:
    """The regime's tensors: training pool, held-out set and test set."""

    def __init__(self, quick: bool) -> None:
        from datadiet.data.sources import mnist1d_datamodule

        dm = mnist1d_datamodule(num_samples=3000 if quick else 250000, val_fraction=0.02, seed=42, batch_size=BATCH)
        dm.setup("fit")
        self.x, self.y = dm.train_dataset.tensors
        self.x_held, self.y_held = dm.val_dataset.tensors
        self.x_test, self.y_test = dm.test_dataset.tensors
        self.n = len(self.y)


def _train(
    pool: Pool, seed: int, steps: int, batches: Callable[[int, torch.nn.Module], torch.Tensor]
) -> torch.nn.Module:
    """Adam + step-wise cosine over ``steps`` steps; ``batches(step, model)`` gives each step's rows."""
    torch.manual_seed(seed)
    model = CNN1D((pool.x.shape[-1],), 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    for step in range(steps):
        rows = batches(step, model)
        model.train()
        loss = F.cross_entropy(model(pool.x[rows]), pool.y[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return model


def _accuracy(model: torch.nn.Module, pool: Pool) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(pool.x_test).argmax(1) == pool.y_test).float().mean()) * 100


def _losses(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat(
            [F.cross_entropy(model(x[i : i + 8192]), y[i : i + 8192], reduction="none") for i in range(0, len(y), 8192)]
        )


def _stream(rows: torch.Tensor, seed: int, length: int) -> torch.Tensor:
    """``length`` indices of ``rows``, each pass a fresh permutation (no example twice within a pass)."""
    generator = torch.Generator().manual_seed(seed)
    passes = math.ceil(length / len(rows))
    return torch.cat([rows[torch.randperm(len(rows), generator=generator)] for _ in range(passes)])[:length]


def static_run(
    pool: Pool, rows: torch.Tensor, passes: float, seed: int, difficulty: Optional[torch.Tensor] = None
) -> dict[str, float]:
    """Trains on ``rows`` for ``passes`` × pool-size presentations; compute = passes (selection not counted).
    With ``difficulty``, the presentations are ordered easiest first: an oracle curriculum."""
    steps = max(1, round(passes * pool.n / BATCH))
    order = _stream(rows, seed + 1000, steps * BATCH)
    if difficulty is not None:
        order = order[difficulty[order].argsort()]
    model = _train(pool, seed, steps, lambda step, _: order[step * BATCH : (step + 1) * BATCH])
    return {"test_acc": _accuracy(model, pool), "compute": steps * BATCH / pool.n}


def online_run(pool: Pool, compute: float, seed: int, rule: Rule) -> dict[str, float]:
    """Online batch selection: each step, forward ``CANDIDATES`` (1× each), train on ``BATCH`` of them (3× each)."""
    per_step = (CANDIDATES + 3 * BATCH) / (3 * pool.n)  # in units of one training pass
    steps = max(1, math.floor(compute / per_step))
    order = _stream(torch.arange(pool.n), seed + 1000, steps * CANDIDATES)

    def batches(step: int, model: torch.nn.Module) -> torch.Tensor:
        candidates = order[step * CANDIDATES : (step + 1) * CANDIDATES]
        return candidates[rule(_losses(model, pool.x[candidates], pool.y[candidates]), candidates)]

    model = _train(pool, seed, steps, batches)
    return {"test_acc": _accuracy(model, pool), "compute": steps * per_step}


def main(argv: Optional[list[str]] = None) -> list[dict[str, float]]:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=0.6, help="compute of the selections, in passes")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    seeds = 1 if args.quick else args.seeds
    print(f"machine: {machine()}; seeds {seeds}", flush=True)
    pool = Pool(args.quick)
    everything = torch.arange(pool.n)
    oracle = _train(
        pool,
        7,
        round(3 * pool.n / BATCH),
        lambda step, _: torch.randint(0, pool.n, (BATCH,), generator=torch.Generator().manual_seed(step)),
    )
    print(f"oracle model (3 passes): test accuracy {_accuracy(oracle, pool):.2f} %", flush=True)
    oracle_losses = _losses(oracle, pool.x, pool.y)
    ranked = oracle_losses.argsort(descending=True)  # hardest first
    held = _train(
        pool,
        11,
        round(10 * len(pool.y_held) / 128),
        lambda step, _: torch.randint(0, len(pool.y_held), (BATCH,), generator=torch.Generator().manual_seed(step)),
    )
    # RHO-LOSS's irreducible loss: a model trained on the held-out set only (its rows are looked up by pool index)
    irreducible = _losses(held, pool.x, pool.y)

    def top(losses: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
        return losses.topk(BATCH).indices

    def proportional(losses: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
        return torch.multinomial(losses + 1e-8, BATCH, replacement=False)

    def rho(losses: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return (losses - irreducible[candidates]).topk(BATCH).indices

    budget = args.budget
    methods: list[tuple[str, Callable[[int], dict[str, float]]]] = [
        ("all data, one pass (the target's reference)", lambda s: static_run(pool, everything, 1.0, s)),
        (f"all data, {budget:g} pass (the frontier)", lambda s: static_run(pool, everything, budget, s)),
    ]
    for keep in (0.5, 0.7):
        k = int(keep * pool.n)
        subsets = {
            "hard": ranked[:k],
            "easy": ranked[-k:],
            "random": torch.randperm(pool.n, generator=torch.Generator().manual_seed(3))[:k],
        }
        for name, rows in subsets.items():
            methods.append(
                (f"oracle {name} {keep:.0%}, cost not counted", lambda s, rows=rows: static_run(pool, rows, budget, s))
            )
    methods += [
        (
            f"oracle curriculum: a random {budget:g} pass, easiest first",
            lambda s: static_run(pool, everything, budget, s, difficulty=oracle_losses),
        ),
        ("online: largest loss of 512", lambda s: online_run(pool, budget, s, top)),
        ("online: sampled ∝ loss", lambda s: online_run(pool, budget, s, proportional)),
        ("online: RHO-LOSS (held-out model not counted)", lambda s: online_run(pool, budget, s, rho)),
    ]
    rows_out = []
    for name, method in methods:
        results = [method(seed) for seed in range(seeds)]
        accuracy = np.array([r["test_acc"] for r in results])
        row = {
            "method": name,
            "compute": float(np.mean([r["compute"] for r in results])),
            "test_acc_mean": float(accuracy.mean()),
            "test_acc_std": float(accuracy.std(ddof=1)) if seeds > 1 else 0.0,
            "seeds": seeds,
        }
        rows_out.append(row)
        print(f"{name}: {row['test_acc_mean']:.2f} ± {row['test_acc_std']:.2f} at {row['compute']:.3f}", flush=True)
    out = results_dir(args)
    write_csv(None if out is None else out / "one_pass_bound.csv", rows_out)
    target, frontier = rows_out[0]["test_acc_mean"] - 0.5, rows_out[1]["test_acc_mean"]
    print(f"\n## selection at {budget:g} of a pass (regime b); target: one-pass accuracy − 0.5 = {target:.2f}")
    print(f"| method | compute | test acc % | vs all data for {budget:g} pass | vs target |\n|---|---|---|---|---|")
    for row in rows_out:
        print(
            f"| {row['method']} | {row['compute']:.3f} | {row['test_acc_mean']:.2f} ± {row['test_acc_std']:.2f} | "
            f"{row['test_acc_mean'] - frontier:+.2f} | {row['test_acc_mean'] - target:+.2f} |"
        )
    return rows_out


if __name__ == "__main__":
    main(sys.argv[1:])
