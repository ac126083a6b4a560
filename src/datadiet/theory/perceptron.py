"""Finite-N simulation of the pruned teacher–student perceptron, pruning through :func:`datadiet.selection.select`.

x ~ N(0, I_N), labels y = sign(T·x); a probe J at angle θ to the teacher scores each example by −|J·x|
(larger = harder, the project's convention); the kept set trains a max-margin student (hard-margin SVM
without bias) whose test error is ε = arccos(R)/π, R the cosine between student and teacher.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Union

import numpy as np
from scipy import optimize

from datadiet.selection import select
from datadiet.theory._arguments import (
    check_alpha_tot,
    check_keep_fraction,
    check_n_dim,
    check_probe_angle,
    check_seeds,
    check_strategy,
)
from datadiet.theory.decision import auto_decision


@dataclass(frozen=True)
class SimulationResult:
    """Test errors of the max-margin student over several seeds.

    Attributes:
        mean_error: mean test error ε over seeds.
        std_error: standard deviation of ε over seeds (``ddof=1``; 0 for one seed).
        sem_error: standard error of the mean, ``std_error / sqrt(len(errors))``.
        errors: ε of each seed.
        margins: the student's margin on its kept set for each seed (unit-norm student, raw inputs).
        num_kept: examples the student trained on (the same for every seed).
        alpha_prune: ``num_kept / n_dim``.
        strategy: the strategy used; for ``auto`` the one it chose (``easy`` or ``hard``).
    """

    mean_error: float
    std_error: float
    sem_error: float
    errors: tuple[float, ...]
    margins: tuple[float, ...]
    num_kept: int
    alpha_prune: float
    strategy: str


def max_margin_direction(inputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The hard-margin SVM without bias: ``argmin ||w||`` subject to ``y_i w·x_i >= 1``, normalized.

    Solved exactly (active set) as the non-negative least squares problem
    ``min_{λ>=0} ||Zᵀλ||² + (1 − Σλ)²`` with rows ``z_i = y_i x_i``: its KKT conditions are the SVM's
    with dual variables ``λ / (1 − Σλ)``.

    Args:
        inputs: ``(P, N)`` examples.
        labels: ``(P,)`` labels in {−1, +1}.

    Returns:
        The unit-norm max-margin direction ``w / ||w||``.

    Raises:
        ValueError: shapes that do not match, labels other than ±1, or data not separable through the origin.
    """
    inputs = np.asarray(inputs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    if inputs.ndim != 2 or labels.shape != (inputs.shape[0],):
        raise ValueError(f"need `inputs` (P, N) and `labels` (P,), got {inputs.shape} and {labels.shape}")
    if not np.all(np.abs(labels) == 1.0):
        raise ValueError(f"`labels` must be -1 or +1, got values {np.unique(labels)}")
    signed = labels[:, None] * inputs
    num_examples, n_dim = signed.shape
    design = np.vstack([signed.T, np.ones((1, num_examples))])
    target = np.zeros(n_dim + 1)
    target[-1] = 1.0
    weights, _ = optimize.nnls(design, target, maxiter=50 * max(num_examples, n_dim + 1))
    slack = 1.0 - weights.sum()
    if slack <= 1e-12:
        raise ValueError("the examples are not linearly separable through the origin")
    direction = signed.T @ weights
    return direction / np.linalg.norm(direction)


def _probe(teacher: np.ndarray, probe_angle_deg: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector at ``probe_angle_deg`` to the unit ``teacher``, in a random orthogonal direction."""
    orthogonal = rng.standard_normal(teacher.shape[0])
    orthogonal -= (orthogonal @ teacher) * teacher
    orthogonal /= np.linalg.norm(orthogonal)
    theta = math.radians(probe_angle_deg)
    return math.cos(theta) * teacher + math.sin(theta) * orthogonal


def simulate(
    n_dim: int = 200,
    *,
    alpha_tot: float,
    keep_fraction: float,
    strategy: str = "hard",
    probe_angle_deg: float = 0.0,
    seeds: Union[int, Iterable[int]] = 5,
) -> SimulationResult:
    """Simulates pruning then max-margin training on the teacher–student perceptron.

    Each seed draws a teacher, a probe at ``probe_angle_deg`` to it and ``round(alpha_tot * n_dim)``
    examples; scores every example by ``−|J·x|`` (larger = harder); keeps examples with
    :func:`datadiet.selection.select` (the code path used on real data); trains the max-margin student
    and measures ε = arccos(R)/π exactly (no test set needed).

    Args:
        n_dim: input dimension N (>= 2).
        alpha_tot: examples per dimension before pruning, P/N > 0.
        keep_fraction: fraction f in (0, 1] kept.
        strategy: ``hard``, ``easy``, ``random`` or ``auto`` (given ``effective_dim=n_dim`` and
            ``probe_angle_deg``, see :mod:`datadiet.theory.auto`).
        probe_angle_deg: angle θ between probe and teacher in degrees, in [0, 90].
        seeds: seeds to average over; an integer k means ``range(k)``.

    Returns:
        A :class:`SimulationResult`.

    Raises:
        ValueError: ``alpha_tot <= 0``, ``keep_fraction`` outside (0, 1], an unknown ``strategy``,
            ``probe_angle_deg`` outside [0, 90], ``n_dim < 2``, or no seeds.

    Example::

        simulate(200, alpha_tot=4.0, keep_fraction=0.5, strategy="hard", seeds=3).mean_error
    """
    n_dim = check_n_dim(n_dim)
    alpha_tot = check_alpha_tot(alpha_tot)
    keep_fraction = check_keep_fraction(keep_fraction)
    strategy = check_strategy(strategy)
    probe_angle_deg = check_probe_angle(probe_angle_deg)
    seeds = check_seeds(seeds)
    num_examples = max(1, int(round(alpha_tot * n_dim)))
    options = {"effective_dim": n_dim, "probe_angle_deg": probe_angle_deg} if strategy == "auto" else {}
    used_strategy = strategy
    if strategy == "auto":
        decision = auto_decision(num_examples / n_dim, keep_fraction, probe_angle_deg=probe_angle_deg)
        used_strategy = decision.strategy

    errors, margins, num_kept = [], [], 0
    for seed in seeds:
        rng = np.random.default_rng(seed)
        teacher = rng.standard_normal(n_dim)
        teacher /= np.linalg.norm(teacher)
        probe = _probe(teacher, probe_angle_deg, rng)
        inputs = rng.standard_normal((num_examples, n_dim))
        labels = np.where(inputs @ teacher >= 0.0, 1.0, -1.0)
        kept = select(-np.abs(inputs @ probe), keep_fraction, strategy, seed=seed, **options)
        student = max_margin_direction(inputs[kept], labels[kept])
        overlap = float(np.clip(student @ teacher, -1.0, 1.0))
        errors.append(math.acos(overlap) / math.pi)
        margins.append(float(np.min(labels[kept] * (inputs[kept] @ student))))
        num_kept = len(kept)

    errors_array = np.asarray(errors)
    std = float(errors_array.std(ddof=1)) if len(errors) > 1 else 0.0
    return SimulationResult(
        mean_error=float(errors_array.mean()),
        std_error=std,
        sem_error=std / math.sqrt(len(errors)),
        errors=tuple(errors),
        margins=tuple(margins),
        num_kept=num_kept,
        alpha_prune=num_kept / n_dim,
        strategy=used_strategy,
    )
