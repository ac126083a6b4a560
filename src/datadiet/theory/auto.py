"""The ``auto`` strategy: keep the easy or the hard examples, whichever the perceptron theory predicts is better.

Rule (Sorscher et al. 2022, "Beyond neural scaling laws", §2): with few examples per dimension keeping the
*easiest* examples generalizes better; with many, keeping the *hardest* does. ``auto`` makes this
quantitative with the large-N theory of the pruned teacher–student perceptron
(:mod:`datadiet.theory.decision`, DESIGN.md §4): at the data regime ``α_tot`` (examples per effective
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

from typing import Optional

import numpy as np

from datadiet.selection.registry import num_to_keep, register_strategy
from datadiet.selection.strategies import keep_easy, keep_hard, keep_random
from datadiet.theory.decision import AutoDecision, auto_decision, crossover_alpha_tot

__all__ = ["AutoDecision", "auto_decision", "crossover_alpha_tot", "keep_auto", "participation_ratio"]

#: Above this share of wrong labels among its candidates ``auto`` keeps a random subset.
NOISE_LIMIT = 0.05


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
    "alpha_tot",
    "effective_dim",
    "num_examples",
    "probe_angle_deg",
    "choose_fraction",
    "tolerance",
    "label_noise",
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
