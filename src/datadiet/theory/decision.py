"""The easy-or-hard decision rule of the perceptron theory and the public large-N :func:`predict`.

Sorscher et al. 2022, "Beyond neural scaling laws", §2: with few examples per dimension keeping the
*easiest* examples generalizes better; with many, keeping the *hardest* does. :func:`auto_decision`
makes this quantitative with the large-N theory (:mod:`datadiet.theory.large_n`, DESIGN.md §4): it
predicts the max-margin student's test error for keep-easy and keep-hard and picks the smaller. The
``auto`` selection strategy (:mod:`datadiet.theory.auto`) applies it to real data; this module only
depends on the solver, so the rule and the prediction sit on one side of the line.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Iterable, Optional, Union

import numpy as np

from datadiet.selection.registry import validate_keep_fraction
from datadiet.theory._arguments import (
    check_alpha_tot,
    check_keep_fraction,
    check_n_dim,
    check_probe_angle,
    check_seeds,
    check_strategy,
)
from datadiet.theory.large_n import TheoryResult, predict_strategy

_FRACTION_STEP = 0.05


@dataclass(frozen=True)
class AutoDecision:
    """What ``auto`` chose and why.

    Attributes:
        strategy: ``easy`` or ``hard``.
        keep_fraction: the fraction to keep (the one asked for unless ``choose_fraction``).
        alpha_tot: the data regime the decision was made for (examples per effective dimension).
        predicted_error: the theory's test error of ``easy`` and ``hard`` at ``keep_fraction``.
        reason: one sentence a user can log.
    """

    strategy: str
    keep_fraction: float
    alpha_tot: float
    predicted_error: dict
    reason: str


@functools.lru_cache(maxsize=256)
def _predicted_errors(alpha_tot: float, keep_fraction: float, probe_angle_deg: float) -> tuple[float, float]:
    easy = predict_strategy(alpha_tot, keep_fraction, "easy", probe_angle_deg).error
    hard = predict_strategy(alpha_tot, keep_fraction, "hard", probe_angle_deg).error
    return easy, hard


def auto_decision(
    alpha_tot: float,
    keep_fraction: float,
    *,
    probe_angle_deg: float = 0.0,
    choose_fraction: bool = False,
    tolerance: float = 0.05,
) -> AutoDecision:
    """Decides between keep-easy and keep-hard (and, if asked, how much to keep) from the data regime.

    Args:
        alpha_tot: examples per effective dimension before pruning, > 0.
        keep_fraction: fraction to keep, in (0, 1]; with ``choose_fraction`` the largest fraction allowed.
        probe_angle_deg: how far the difficulty score is assumed to be from the ideal one, as the angle in
            degrees (in [0, 90]) between probe and teacher in the perceptron model; 0 trusts it fully.
        choose_fraction: also choose the fraction: the smallest multiple of 0.05 (or ``keep_fraction``
            itself) whose predicted error is within ``tolerance`` (relative) of the error at ``keep_fraction``.
        tolerance: relative error increase accepted by ``choose_fraction``, >= 0.

    Returns:
        An :class:`AutoDecision`. At ``keep_fraction = 1`` nothing is pruned and the strategy is moot
        (reported as ``hard``).

    Raises:
        ValueError: ``alpha_tot <= 0``, ``keep_fraction`` outside (0, 1], ``probe_angle_deg`` outside [0, 90],
            or ``tolerance < 0``.

    Example::

        auto_decision(1.0, 0.5).strategy   # "easy": scarce data
        auto_decision(10.0, 0.5).strategy  # "hard": abundant data
    """
    alpha_tot = check_alpha_tot(alpha_tot)
    keep_fraction = validate_keep_fraction(keep_fraction)
    probe_angle_deg = check_probe_angle(probe_angle_deg)
    if not (isinstance(tolerance, (int, float)) and tolerance >= 0.0):
        raise ValueError(f"`tolerance` must be a number >= 0, got {tolerance!r}")
    budget = keep_fraction
    if choose_fraction:
        keep_fraction = _smallest_good_fraction(alpha_tot, budget, probe_angle_deg, float(tolerance))
    easy, hard = _predicted_errors(alpha_tot, keep_fraction, probe_angle_deg)
    strategy = "easy" if easy < hard else "hard"
    if keep_fraction == 1.0:
        regime = "keep_fraction=1 keeps every example, easy or hard alike"
    else:
        regime = "scarce data: keep easy" if strategy == "easy" else "abundant data: keep hard"
    reason = (
        f"{regime} (perceptron theory at alpha_tot={alpha_tot:.3g}, keep_fraction={keep_fraction:.3g}, "
        f"probe angle {probe_angle_deg:g} deg: predicted error easy={easy:.4f}, hard={hard:.4f})"
    )
    if keep_fraction != budget:
        reason += f"; keep_fraction lowered from {budget:.3g} at a predicted cost under {tolerance:.0%}"
    return AutoDecision(strategy, keep_fraction, alpha_tot, {"easy": easy, "hard": hard}, reason)


def _smallest_good_fraction(alpha_tot: float, budget: float, probe_angle_deg: float, tolerance: float) -> float:
    target = (1.0 + tolerance) * min(_predicted_errors(alpha_tot, budget, probe_angle_deg))
    steps = int(math.floor(budget / _FRACTION_STEP + 1e-9))
    for fraction in [round(k * _FRACTION_STEP, 10) for k in range(1, steps + 1)]:
        if fraction < budget and min(_predicted_errors(alpha_tot, fraction, probe_angle_deg)) <= target:
            return fraction
    return budget


def crossover_alpha_tot(keep_fraction: float, *, probe_angle_deg: float = 0.0) -> float:
    """The data regime where keep-easy and keep-hard are predicted to do equally well.

    Below it ``auto`` keeps easy examples, above it hard ones.

    Args:
        keep_fraction: fraction kept, in (0, 1).
        probe_angle_deg: probe angle in degrees, in [0, 90].

    Returns:
        ``α_tot`` at the crossover (searched in [0.05, 1000]); ``inf`` if keep-easy wins throughout.

    Raises:
        ValueError: ``keep_fraction`` outside (0, 1) or ``probe_angle_deg`` outside [0, 90].
    """
    keep_fraction = validate_keep_fraction(keep_fraction)
    if keep_fraction == 1.0:
        raise ValueError("`keep_fraction` must be in (0, 1) for a crossover; at 1 nothing is pruned, got 1.0")
    probe_angle_deg = check_probe_angle(probe_angle_deg)

    def easy_minus_hard(log_alpha: float) -> float:
        easy, hard = _predicted_errors(math.exp(log_alpha), keep_fraction, probe_angle_deg)
        return easy - hard

    grid = np.linspace(math.log(0.05), math.log(1000.0), 25)
    values = [easy_minus_hard(x) for x in grid]
    for left, right, value_left, value_right in zip(grid[:-1], grid[1:], values[:-1], values[1:]):
        if value_left < 0.0 <= value_right:
            from scipy import optimize  # noqa: PLC0415

            return math.exp(optimize.brentq(easy_minus_hard, left, right, xtol=1e-6))
    return math.inf


def predict(
    n_dim: Optional[int] = None,
    *,
    alpha_tot: float,
    keep_fraction: float,
    strategy: str = "hard",
    probe_angle_deg: float = 0.0,
    seeds: Union[int, Iterable[int], None] = None,
) -> TheoryResult:
    """Large-N test error of the max-margin student trained on the pruned teacher–student perceptron.

    Takes the same arguments as :func:`datadiet.theory.simulate` so one set of keyword arguments drives
    both; ``n_dim`` and ``seeds`` are checked but do not enter the N → ∞ theory.

    Args:
        n_dim: input dimension N of the matching simulation (unused by the theory).
        alpha_tot: examples per dimension before pruning, P/N > 0.
        keep_fraction: fraction f in (0, 1] kept; the student sees ``α_prune = f·α_tot``.
        strategy: ``hard`` keeps the smallest probe margins ``|J·x|``, ``easy`` the largest, ``random``
            a uniform subset, ``auto`` whichever of easy/hard :func:`auto_decision`
            picks.
        probe_angle_deg: angle θ in degrees between the pruning probe J and the teacher, in [0, 90].
        seeds: seeds of the matching simulation (unused by the theory).

    Returns:
        A :class:`TheoryResult` with the test error, margin and overlaps.

    Raises:
        ValueError: ``alpha_tot <= 0``, ``keep_fraction`` outside (0, 1], an unknown ``strategy``, or
            ``probe_angle_deg`` outside [0, 90].

    Example::

        predict(alpha_tot=4.0, keep_fraction=0.5, strategy="hard").error
    """
    if n_dim is not None:
        check_n_dim(n_dim)
    if seeds is not None:
        check_seeds(seeds)
    alpha_tot = check_alpha_tot(alpha_tot)
    keep_fraction = check_keep_fraction(keep_fraction)
    strategy = check_strategy(strategy)
    probe_angle_deg = check_probe_angle(probe_angle_deg)
    if strategy == "auto":
        strategy = auto_decision(alpha_tot, keep_fraction, probe_angle_deg=probe_angle_deg).strategy
    return predict_strategy(alpha_tot, keep_fraction, strategy, probe_angle_deg)
