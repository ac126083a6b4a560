"""Large-N theory of the pruned teacher–student perceptron (DESIGN.md §4): the max-margin student's test error.

Gardner-style capacity argument: a student ``a·T̂ + b·e₂ + c·e₃`` (``a² + b² + c² = 1``; ``e₂`` the probe
direction made orthogonal to the teacher ``T̂``, ``e₃`` everything else) reaches margin κ on the kept
examples while keeping some volume iff ``α_prune · E[(κ − a|t₀| − b·y·t₁ − c·z)₊²] ≤ c²``, the expectation
over the kept ``(t₀, t₁) = (T̂·x, e₂·x)`` and ``z ~ N(0, 1)``. The max-margin student has the largest such κ;
its test error is ``arccos(a) / π``. For a perfect probe (θ = 0) ``b = 0`` and only ``u = |t₀|`` matters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

# Gaussian integrals stop this many standard deviations out (past the kept region's edge for keep-easy).
_TAIL = 12.0
_GRADED_OFFSETS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 2.0, 3.5, 5.0, 7.0, 9.5)
_NODES_PER_PIECE = 12
_INNER_NODES = 24
_LOG_EPS_RANGE = (math.log(1e-7), math.log(0.5 - 1e-9))


@dataclass(frozen=True)
class TheoryResult:
    """The large-N prediction for one setting.

    Attributes:
        error: test error ε = arccos(R)/π of the max-margin student.
        margin: its margin κ* on the kept examples (inputs unnormalized, student of unit norm).
        overlap: R, the cosine between student and teacher.
        probe_overlap: b, the student's component along the probe direction made orthogonal to the teacher.
        alpha_prune: kept examples per dimension, ``keep_fraction * alpha_tot``.
        strategy: the strategy the prediction is for (``auto`` resolved to ``easy`` or ``hard``).
    """

    error: float
    margin: float
    overlap: float
    probe_overlap: float
    alpha_prune: float
    strategy: str


def expected_squared_hinge(shift: np.ndarray, scale: float) -> np.ndarray:
    """``E_z[(shift − scale·z)₊²]`` for ``z ~ N(0, 1)``, in closed form.

    Args:
        shift: the hinge's offset ``a``, any shape.
        scale: the noise level ``s >= 0``.

    Returns:
        ``(a² + s²) Φ(a/s) + a s φ(a/s)``, and ``max(a, 0)²`` when ``s == 0``.
    """
    shift = np.asarray(shift, dtype=np.float64)
    if scale <= 0.0:
        return np.maximum(shift, 0.0) ** 2
    ratio = shift / scale
    density = np.exp(-0.5 * ratio**2) / math.sqrt(2.0 * math.pi)
    return (shift**2 + scale**2) * special.ndtr(ratio) + shift * scale * density


def kept_threshold(keep_fraction: float, strategy: str) -> float:
    """The probe-margin threshold γ: keep-hard keeps ``|J·x| < γ``, keep-easy ``|J·x| > γ``.

    Args:
        keep_fraction: fraction f of the examples kept.
        strategy: ``hard`` (``f = erf(γ/√2)``) or ``easy`` (``f = erfc(γ/√2)``).

    Returns:
        γ (``inf`` for keep-hard at f = 1).
    """
    if strategy == "hard":
        return math.inf if keep_fraction >= 1.0 else math.sqrt(2.0) * float(special.erfinv(keep_fraction))
    return math.sqrt(2.0) * float(special.erfcinv(keep_fraction))


def _gauss_legendre(low: float, high: float, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.legendre.leggauss(num_nodes)
    half = 0.5 * (high - low)
    return low + half * (nodes + 1.0), half * weights


def _graded_nodes(low: float, high: float, extra_edges: tuple[float, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss–Legendre on [low, high], refined geometrically near ``low`` and split at ``extra_edges``.

    At large α the margin κ is tiny and everything happens within κ of the kept region's lower edge,
    which a single Gauss–Legendre rule would step over; ``extra_edges`` are kinks of the integrand.
    """
    inner = {low + offset for offset in _GRADED_OFFSETS} | set(extra_edges)
    edges = [low] + sorted(edge for edge in inner if low < edge < high) + [high]
    pieces = [_gauss_legendre(left, right, _NODES_PER_PIECE) for left, right in zip(edges[:-1], edges[1:])]
    return np.concatenate([p[0] for p in pieces]), np.concatenate([p[1] for p in pieces])


def _kept_teacher_margins(keep_fraction: float, strategy: str) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and normalized weights for ``u = |T̂·x|`` over the kept examples of a perfect probe."""
    if strategy == "random" or keep_fraction >= 1.0:
        low, high = 0.0, _TAIL
    elif strategy == "hard":
        low, high = 0.0, min(kept_threshold(keep_fraction, "hard"), _TAIL)
    else:
        low = kept_threshold(keep_fraction, "easy")
        high = low + _TAIL
    nodes, weights = _graded_nodes(low, high)
    weights = weights * np.exp(-0.5 * nodes**2)
    return nodes, weights / weights.sum()


def _kept_plane(keep_fraction: float, strategy: str, theta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nodes ``(t₀ >= 0, t₁)`` and normalized weights over the kept examples of a probe at angle θ.

    ``t₀ = T̂·x``, ``t₁ = e₂·x``; the probe margin is ``|cos θ t₀ + sin θ t₁|``. Flipping ``x → −x`` maps
    the kept set to itself and ``(|t₀|, y t₁)`` to itself, so half the plane (``t₀ >= 0``, ``y = +1``) suffices.
    """
    gamma = kept_threshold(keep_fraction, strategy)  # finite: f < 1 here
    cos_t, sin_t = math.cos(theta), math.sin(theta)
    # Where the kept t₁ interval meets the truncation ±_TAIL its length changes slope in t₀: split there.
    kinks = tuple((sign * gamma + side * _TAIL * sin_t) / cos_t for sign in (-1, 1) for side in (-1, 1))
    t0, t0_weights = _graded_nodes(0.0, _TAIL + (0.0 if strategy == "hard" else gamma), kinks)
    # For a given t₀ the probe margin is below γ for t₁ in (lower, upper).
    lower = np.clip((-gamma - cos_t * t0) / sin_t, -_TAIL, _TAIL)
    upper = np.clip((gamma - cos_t * t0) / sin_t, -_TAIL, _TAIL)
    if strategy == "hard":
        intervals = [(lower, upper)]
    else:
        intervals = [(np.full_like(t0, -_TAIL), lower), (upper, np.full_like(t0, _TAIL))]
    unit_nodes, unit_weights = np.polynomial.legendre.leggauss(_INNER_NODES)
    t1_parts, weight_parts = [], []
    for left, right in intervals:
        half = 0.5 * np.maximum(right - left, 0.0)
        t1_parts.append(left[:, None] + half[:, None] * (unit_nodes[None, :] + 1.0))
        weight_parts.append(half[:, None] * unit_weights[None, :])
    t1 = np.concatenate(t1_parts, axis=1)
    weights = np.concatenate(weight_parts, axis=1) * np.exp(-0.5 * (t0[:, None] ** 2 + t1**2)) * t0_weights[:, None]
    t0 = np.broadcast_to(t0[:, None], t1.shape)
    # Nodes far in the Gaussian tails cost time and contribute nothing.
    keep = weights.ravel() > 1e-15 * weights.max()
    return t0.ravel()[keep], t1.ravel()[keep], weights.ravel()[keep] / weights.sum()


class _MarginProblem:
    """Evaluates the capacity condition for one kept-margin distribution and finds the max-margin student."""

    def __init__(self, alpha_prune: float, keep_fraction: float, strategy: str, probe_angle_deg: float) -> None:
        self.alpha_prune = alpha_prune
        theta = math.radians(probe_angle_deg)
        self.one_dimensional = strategy == "random" or keep_fraction >= 1.0 or theta == 0.0
        if self.one_dimensional:
            # The probe is the teacher (or ignored): e₂ carries nothing, so b = 0 and only u = |t₀| matters.
            self.teacher_margin, self.weights = _kept_teacher_margins(keep_fraction, strategy)
            self.probe_field = np.zeros_like(self.teacher_margin)
        else:
            self.teacher_margin, self.probe_field, self.weights = _kept_plane(keep_fraction, strategy, theta)

    def excess(self, margin: float, a: float, b: float, c: float) -> float:
        """``α E[(κ − a|t₀| − b y t₁ − c z)₊²] − c²``: negative iff margin κ is reachable."""
        shift = margin - a * self.teacher_margin - b * self.probe_field
        return self.alpha_prune * float(self.weights @ expected_squared_hinge(shift, c)) - c * c

    def best_margin(self, a: float, b: float) -> float:
        """The largest κ reachable by the student with components (a, b) — a root of :meth:`excess`."""
        c = math.sqrt(max(1.0 - a * a - b * b, 0.0))
        low, high = -1.0, 1.0
        while self.excess(low, a, b, c) > 0.0:
            low *= 2.0
        while self.excess(high, a, b, c) < 0.0:
            high *= 2.0
        return optimize.brentq(self.excess, low, high, args=(a, b, c), xtol=1e-13, rtol=1e-13)

    def solve(self) -> tuple[float, float, float]:
        """Returns (κ*, a, b) of the max-margin student."""

        def components(log_error: float, tilt: float) -> tuple[float, float]:
            angle = math.pi * math.exp(log_error)
            return math.cos(angle), math.sin(angle) * math.sin(tilt)

        def negative_margin_no_tilt(log_error: float) -> float:
            return -self.best_margin(*components(log_error, 0.0))

        log_error = _maximize_unimodal(negative_margin_no_tilt, *_LOG_EPS_RANGE)
        if self.one_dimensional:
            a, b = components(log_error, 0.0)
            return self.best_margin(a, b), a, b

        def negative_margin(params: np.ndarray) -> float:
            log_err, tilt = params
            if not (_LOG_EPS_RANGE[0] <= log_err <= _LOG_EPS_RANGE[1]) or abs(tilt) >= 0.5 * math.pi:
                return math.inf
            return -self.best_margin(*components(log_err, tilt))

        simplex = np.array([[log_error, 0.0], [log_error + 0.3, 0.0], [log_error, 0.3]])
        result = optimize.minimize(
            negative_margin,
            simplex[0],
            method="Nelder-Mead",
            options={"initial_simplex": simplex, "xatol": 1e-7, "fatol": 1e-12, "maxiter": 2000},
        )
        a, b = components(*result.x)
        return -float(result.fun), a, b


def _maximize_unimodal(negative, low: float, high: float, num_grid: int = 25) -> float:
    """Minimizes a unimodal function of one variable: a grid to bracket the minimum, then bounded Brent."""
    grid = np.linspace(low, high, num_grid)
    values = np.array([negative(x) for x in grid])
    best = int(np.argmin(values))
    left, right = grid[max(best - 1, 0)], grid[min(best + 1, num_grid - 1)]
    result = optimize.minimize_scalar(negative, bounds=(left, right), method="bounded", options={"xatol": 1e-10})
    return float(result.x) if result.fun <= values[best] else float(grid[best])


def predict_strategy(alpha_tot: float, keep_fraction: float, strategy: str, probe_angle_deg: float) -> TheoryResult:
    """The large-N prediction for ``easy``, ``hard`` or ``random`` (arguments already checked; see
    :func:`datadiet.theory.predict`, which also resolves ``auto``)."""
    if keep_fraction >= 1.0:
        strategy_for_margins = "random"
    else:
        strategy_for_margins = strategy
    alpha_prune = keep_fraction * alpha_tot
    problem = _MarginProblem(alpha_prune, keep_fraction, strategy_for_margins, probe_angle_deg)
    margin, a, b = problem.solve()
    return TheoryResult(
        error=math.acos(min(max(a, -1.0), 1.0)) / math.pi,
        margin=margin,
        overlap=a,
        probe_overlap=b,
        alpha_prune=alpha_prune,
        strategy=strategy,
    )
