"""The ``auto`` strategy: keep the easy or the hard examples, whichever the perceptron theory predicts is better.

Rule (Sorscher et al. 2022, "Beyond neural scaling laws", §2): with few examples per dimension keeping the
*easiest* examples generalizes better; with many, keeping the *hardest* does. ``auto`` makes this
quantitative with the large-N theory of the pruned teacher–student perceptron
(:func:`datadiet.theory.predict`, DESIGN.md §4): at the data regime ``α_tot`` (examples per effective
dimension), keep fraction ``f`` and probe angle θ, it predicts the max-margin student's test error for
keep-easy and keep-hard and picks the smaller. At f = 0.5 and a perfect probe the switch is at
``α_tot ≈ 5`` (see :func:`crossover_alpha_tot`).

Label noise: the theory assumes correct labels, and the hardest examples are first of all the mislabelled
ones. With ``label_noise`` (the estimated share of wrong labels among the examples ``auto`` chooses from:
the score table's ``label_noise_estimate`` when flagged examples are kept, ~0 once they are excluded)
``α_tot`` counts only the correct labels, and above :data:`NOISE_LIMIT` ``auto`` keeps a random subset
(neither end of the ranking is safe: the hard end holds the wrong labels, the easy end the redundant).

On real data ``α_tot`` is not known and must be supplied: either directly (``alpha_tot``) or as an
effective dimension (``effective_dim``; ``α_tot = num_examples / effective_dim``). A usable estimate of the
effective dimension is the participation ratio of the probe model's penultimate-layer features
(:func:`participation_ratio`); the rule is only as good as that estimate, and the perceptron is a model of
real data, not a guarantee.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from datadiet.selection.registry import num_to_keep, register_strategy, validate_keep_fraction
from datadiet.selection.strategies import keep_easy, keep_hard, keep_random
from datadiet.theory._arguments import check_alpha_tot, check_probe_angle
from datadiet.theory.large_n import _predict

_FRACTION_STEP = 0.05
#: Above this share of wrong labels among its candidates ``auto`` keeps a random subset.
NOISE_LIMIT = 0.05


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
    easy = _predict(alpha_tot, keep_fraction, "easy", probe_angle_deg).error
    hard = _predict(alpha_tot, keep_fraction, "hard", probe_angle_deg).error
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


def participation_ratio(features: np.ndarray) -> float:
    """Effective dimension ``(Σλ)² / Σλ²`` of the features' covariance spectrum λ.

    Args:
        features: ``(num_examples, num_features)`` array, e.g. a probe model's penultimate layer.

    Returns:
        A number between 1 and ``num_features``; ``N`` for isotropic data in N dimensions.

    Raises:
        ValueError: ``features`` is not 2-D with at least two rows, or is constant.
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"`features` must be 2-D (num_examples >= 2, num_features), got shape {features.shape}")
    centred = features - features.mean(axis=0)
    singular_values = np.linalg.svd(centred, compute_uv=False)
    spectrum = singular_values**2
    if spectrum.sum() == 0.0:
        raise ValueError("`features` are constant; their covariance has no spectrum")
    return float(spectrum.sum() ** 2 / (spectrum**2).sum())


_OPTIONS = (
    "alpha_tot", "effective_dim", "num_examples", "probe_angle_deg", "choose_fraction", "tolerance", "label_noise",
)


@register_strategy("auto")
def keep_auto(
    scores: np.ndarray,
    num_keep: int,
    rng: np.random.Generator,
    *,
    alpha_tot: Optional[float] = None,
    effective_dim: Optional[float] = None,
    num_examples: Optional[int] = None,
    probe_angle_deg: float = 0.0,
    choose_fraction: bool = False,
    tolerance: float = 0.05,
    label_noise: float = 0.0,
    **unknown,
) -> np.ndarray:
    """Keeps the easy or the hard examples according to :func:`auto_decision`.

    Pass the data regime through ``select(..., strategy="auto", **options)`` (or ``pruning.options`` in the
    Hydra config): exactly one of ``alpha_tot`` or ``effective_dim``.

    Args:
        scores: per-example difficulty, larger = harder.
        num_keep: how many to keep (``round(keep_fraction * len(scores))``).
        rng: breaks ties.
        alpha_tot: examples per effective dimension of the whole training set.
        effective_dim: effective dimension D of the data; then ``alpha_tot = num_examples / D``.
        num_examples: examples in the whole training set (defaults to ``len(scores)``; give it with
            ``class_balanced=True``, where each call sees one class).
        probe_angle_deg: assumed imperfection of the score, see :func:`auto_decision`.
        choose_fraction: let theory lower the kept fraction, see :func:`auto_decision`.
        tolerance: relative error increase accepted by ``choose_fraction``.
        label_noise: estimated share of wrong labels among ``scores``' examples, in [0, 1): ``α_tot`` counts
            the others, and above :data:`NOISE_LIMIT` a random subset is kept.

    Returns:
        Positions of the kept examples.

    Raises:
        ValueError: an unknown option, neither or both of ``alpha_tot`` and ``effective_dim``, or a bad value.
    """
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)} for strategy 'auto'; allowed: {', '.join(_OPTIONS)}")
    num_scores = len(scores)
    if num_scores == 0:
        return np.zeros(0, dtype=np.int64)
    if isinstance(label_noise, bool) or not isinstance(label_noise, (int, float)) or not 0.0 <= label_noise < 1.0:
        raise ValueError(f"`label_noise` must be a share in [0, 1), got {label_noise!r}")
    if label_noise > NOISE_LIMIT:
        return keep_random(scores, num_keep, rng)
    if (alpha_tot is None) == (effective_dim is None):
        raise ValueError(
            "strategy 'auto' needs the data regime: pass exactly one of `alpha_tot` (examples per effective "
            f"dimension) or `effective_dim`, got alpha_tot={alpha_tot!r}, effective_dim={effective_dim!r}"
        )
    if alpha_tot is None:
        if not (isinstance(effective_dim, (int, float)) and effective_dim > 0):
            raise ValueError(f"`effective_dim` must be a number > 0, got {effective_dim!r}")
        total = num_scores if num_examples is None else num_examples
        if isinstance(total, bool) or not isinstance(total, (int, np.integer)) or total < 1:
            raise ValueError(f"`num_examples` must be an integer >= 1, got {num_examples!r}")
        alpha_tot = total / effective_dim
    decision = auto_decision(
        alpha_tot * (1.0 - label_noise),
        num_keep / num_scores,
        probe_angle_deg=probe_angle_deg,
        choose_fraction=choose_fraction,
        tolerance=tolerance,
    )
    if choose_fraction:
        num_keep = num_to_keep(num_scores, decision.keep_fraction)
    keep = keep_easy if decision.strategy == "easy" else keep_hard
    return keep(scores, num_keep, rng)
