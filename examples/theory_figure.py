"""Draws the perceptron figure of Sorscher et al. (2022): test error vs kept examples per dimension α_prune.

(a) perfect probe (θ = 0): keep-hard (solid) and keep-easy (dashed) for several keep fractions f; theory
    lines from :func:`datadiet.theory.predict`, simulation dots (N = 200, mean ± s.e.m.) from
    :func:`datadiet.theory.simulate`. Keep-easy wins at small α, keep-hard at large α.
(b) imperfect probe (θ = 10°), keep-hard: the best fraction's error (Pareto frontier over f) falls faster than
    a power law with a perfect probe but returns to power-law scaling, ∝ 1/α_prune, with an imperfect one.

Usage::

    python examples/theory_figure.py                      # writes docs/figures/theory.png (~2-3 min, 1 core)
    python examples/theory_figure.py --seeds 2 --output /tmp/theory.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from datadiet.theory import predict, simulate  # noqa: E402

N_DIM = 200
FRACTIONS_A = (1.0, 0.8, 0.6, 0.4, 0.2)
FRACTIONS_B = (1.0, 0.5, 0.2, 0.1, 0.05)
FRONTIER_FRACTIONS = (1.0, 0.7, 0.5, 0.35, 0.25, 0.17, 0.12, 0.08, 0.05, 0.03, 0.02)
PROBE_ANGLE_B = 10.0


def _theory_curve(alphas_prune, keep_fraction, strategy, probe_angle_deg=0.0):
    return np.array(
        [
            predict(
                alpha_tot=a / keep_fraction,
                keep_fraction=keep_fraction,
                strategy=strategy,
                probe_angle_deg=probe_angle_deg,
            ).error
            for a in alphas_prune
        ]
    )


def _simulated_points(alphas_prune, keep_fraction, strategy, seeds, probe_angle_deg=0.0):
    means, sems = [], []
    for alpha_prune in alphas_prune:
        result = simulate(
            N_DIM,
            alpha_tot=alpha_prune / keep_fraction,
            keep_fraction=keep_fraction,
            strategy=strategy,
            probe_angle_deg=probe_angle_deg,
            seeds=seeds,
        )
        means.append(result.mean_error)
        sems.append(result.sem_error)
    return np.array(means), np.array(sems)


def _panel_a(axis, seeds):
    alphas = np.geomspace(0.3, 20.0, 30)
    sim_alphas = np.array([0.5, 1.0, 2.0, 5.0, 10.0])
    colors = plt.cm.viridis(np.linspace(0.0, 0.85, len(FRACTIONS_A)))
    for keep_fraction, color in zip(FRACTIONS_A, colors):
        strategies = ("random",) if keep_fraction == 1.0 else ("hard", "easy")
        for strategy in strategies:
            style = "--" if strategy == "easy" else "-"
            label = "f = 1 (no pruning)" if keep_fraction == 1.0 else f"f = {keep_fraction:g} {strategy}"
            axis.plot(alphas, _theory_curve(alphas, keep_fraction, strategy), style, color=color, label=label)
            means, sems = _simulated_points(sim_alphas, keep_fraction, strategy, seeds)
            marker = "s" if strategy == "easy" else "o"
            axis.errorbar(
                sim_alphas,
                means,
                yerr=sems,
                fmt=marker,
                color=color,
                ms=4,
                mfc="none" if strategy == "easy" else color,
                capsize=0,
            )
    axis.set(
        xscale="log",
        yscale="log",
        xlabel=r"$\alpha_{prune}$ = kept examples / N",
        ylabel=r"test error $\varepsilon$",
        title=r"(a) perfect probe ($\theta=0$): hard —, easy - -",
    )
    axis.legend(fontsize=7, ncol=2, loc="lower left")


def _frontier(alphas, probe_angle_deg):
    errors = np.array([_theory_curve(alphas, f, "hard", probe_angle_deg) for f in FRONTIER_FRACTIONS])
    return errors.min(axis=0)


def _panel_b(axis, seeds):
    alphas = np.geomspace(0.5, 100.0, 22)
    sim_alphas = np.array([1.0, 2.0, 5.0, 10.0, 20.0])
    colors = plt.cm.plasma(np.linspace(0.0, 0.85, len(FRACTIONS_B)))
    for keep_fraction, color in zip(FRACTIONS_B, colors):
        strategy = "random" if keep_fraction == 1.0 else "hard"
        label = "f = 1 (no pruning)" if keep_fraction == 1.0 else f"f = {keep_fraction:g} hard"
        axis.plot(alphas, _theory_curve(alphas, keep_fraction, strategy, PROBE_ANGLE_B), color=color, label=label)
        means, sems = _simulated_points(sim_alphas, keep_fraction, strategy, seeds, PROBE_ANGLE_B)
        axis.errorbar(sim_alphas, means, yerr=sems, fmt="o", color=color, ms=4, capsize=0)
    axis.plot(
        alphas,
        _frontier(alphas, PROBE_ANGLE_B),
        "k-",
        lw=2.5,
        alpha=0.35,
        label=rf"best f, $\theta={PROBE_ANGLE_B:g}°$",
    )
    axis.plot(alphas, _frontier(alphas, 0.0), "k:", lw=1.5, label=r"best f, $\theta=0$")
    reference = 0.5 / alphas
    axis.plot(
        alphas,
        reference / (1.0 / np.sin(np.radians(PROBE_ANGLE_B))),
        color="gray",
        lw=0.8,
        ls="-.",
        label=r"$\propto 1/\alpha_{prune}$",
    )
    axis.set(
        xscale="log",
        yscale="log",
        xlabel=r"$\alpha_{prune}$ = kept examples / N",
        ylim=(3e-4, 0.6),
        title=rf"(b) imperfect probe ($\theta={PROBE_ANGLE_B:g}°$), keep hard",
    )
    axis.legend(fontsize=7, loc="lower left")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("docs/figures/theory.png"))
    parser.add_argument("--seeds", type=int, default=3, help="simulation seeds per point (N = 200)")
    args = parser.parse_args()
    start = time.perf_counter()
    figure, (axis_a, axis_b) = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
    _panel_a(axis_a, args.seeds)
    _panel_b(axis_b, args.seeds)
    figure.suptitle(
        "Perceptron teacher–student: max-margin student on the pruned set (lines: large-N theory, "
        f"dots: simulation N={N_DIM})",
        fontsize=10,
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.output, dpi=130)
    print(f"wrote {args.output} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
