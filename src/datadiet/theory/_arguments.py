"""Argument checks shared by the perceptron simulation and its large-N theory."""

from __future__ import annotations

import math
from typing import Iterable, Union

from datadiet.selection.registry import validate_keep_fraction

#: The strategies the perceptron model knows; ``auto`` resolves to ``easy`` or ``hard``.
PERCEPTRON_STRATEGIES = ("hard", "easy", "random", "auto")


def check_alpha_tot(alpha_tot: float) -> float:
    """Returns ``alpha_tot`` as a float; it must be a finite number > 0."""
    if isinstance(alpha_tot, bool) or not isinstance(alpha_tot, (int, float)) and not hasattr(alpha_tot, "__float__"):
        raise TypeError(f"`alpha_tot` must be a number > 0 (examples per dimension), got {alpha_tot!r}")
    value = float(alpha_tot)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"`alpha_tot` must be a finite number > 0 (examples per dimension), got {alpha_tot}")
    return value


def check_keep_fraction(keep_fraction: float) -> float:
    """Returns ``keep_fraction`` as a float in (0, 1] (same rule as :func:`datadiet.selection.select`)."""
    return validate_keep_fraction(keep_fraction)


def check_strategy(strategy: str) -> str:
    """Returns ``strategy`` if the perceptron model knows it."""
    if strategy not in PERCEPTRON_STRATEGIES:
        raise ValueError(f"`strategy` can be {', '.join(PERCEPTRON_STRATEGIES)}, got {strategy!r}")
    return strategy


def check_probe_angle(probe_angle_deg: float) -> float:
    """Returns the probe's angle to the teacher in degrees; it must lie in [0, 90]."""
    if (
        isinstance(probe_angle_deg, bool)
        or not isinstance(probe_angle_deg, (int, float))
        and not hasattr(probe_angle_deg, "__float__")
    ):
        raise TypeError(f"`probe_angle_deg` must be a number in [0, 90], got {probe_angle_deg!r}")
    value = float(probe_angle_deg)
    if not (0.0 <= value <= 90.0):
        raise ValueError(f"`probe_angle_deg` must be in [0, 90] degrees, got {probe_angle_deg}")
    return value


def check_n_dim(n_dim: int) -> int:
    """Returns the input dimension N; it must be an integer >= 2."""
    if isinstance(n_dim, bool) or not isinstance(n_dim, int) and not hasattr(n_dim, "__index__"):
        raise TypeError(f"`n_dim` must be an integer >= 2, got {n_dim!r}")
    if int(n_dim) < 2:
        raise ValueError(f"`n_dim` must be an integer >= 2, got {n_dim}")
    return int(n_dim)


def check_seeds(seeds: Union[int, Iterable[int]]) -> tuple[int, ...]:
    """Returns the seeds as a tuple; an integer ``k`` means ``range(k)``.

    Raises:
        ValueError: no seed, a negative count, or a seed that is not an integer.
    """
    if isinstance(seeds, bool):
        raise TypeError(f"`seeds` must be a count or a sequence of integers, got {seeds!r}")
    if isinstance(seeds, int) or hasattr(seeds, "__index__") and not hasattr(seeds, "__iter__"):
        if int(seeds) < 1:
            raise ValueError(f"`seeds` as a count must be >= 1, got {seeds}")
        return tuple(range(int(seeds)))
    values = tuple(seeds)
    if not values:
        raise ValueError("`seeds` must hold at least one seed, got an empty sequence")
    for seed in values:
        if isinstance(seed, bool) or not hasattr(seed, "__index__"):
            raise ValueError(f"every seed must be an integer, got {seed!r} in {values!r}")
    return tuple(int(seed) for seed in values)
