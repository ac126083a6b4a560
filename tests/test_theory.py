"""The perceptron theory of data pruning: simulation vs large-N theory, the easy/hard crossover, and ``auto``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from datadiet.selection import list_strategies, select
from datadiet.theory import max_margin_direction, predict, simulate
from datadiet.theory.auto import auto_decision, crossover_alpha_tot, participation_ratio
from datadiet.theory.large_n import expected_squared_hinge, kept_threshold

# --- building blocks against closed forms and hand-worked cases -------------------------------------


@pytest.mark.parametrize("shift, scale", [(0.7, 0.3), (-0.4, 0.9), (1.5, 1e-3), (-2.0, 0.2)])
def test_expected_squared_hinge_matches_numerical_integral(shift, scale):
    reference, _ = integrate.quad(
        lambda z: max(shift - scale * z, 0.0) ** 2 * stats.norm.pdf(z), -12, 12, points=[shift / scale], limit=200
    )
    assert expected_squared_hinge(np.array(shift), scale) == pytest.approx(reference, rel=1e-7, abs=1e-14)


@pytest.mark.parametrize("keep_fraction", [0.1, 0.5, 0.9])
def test_kept_threshold_keeps_the_fraction(keep_fraction):
    # |z| < γ has probability 2Φ(γ) − 1 for keep-hard, |z| > γ has 2(1 − Φ(γ)) for keep-easy.
    assert 2 * stats.norm.cdf(kept_threshold(keep_fraction, "hard")) - 1 == pytest.approx(keep_fraction)
    assert 2 * stats.norm.sf(kept_threshold(keep_fraction, "easy")) == pytest.approx(keep_fraction)


def test_max_margin_direction_hand_worked():
    # min |w|² s.t. w₁ >= 1, w₁ + w₂ >= 1 (the point (3, 3) and the mirrored negative are inactive): w = (1, 0).
    inputs = np.array([[1.0, 0.0], [-1.0, -1.0], [3.0, 3.0], [1.0, 1.0]])
    labels = np.array([1.0, -1.0, 1.0, 1.0])
    np.testing.assert_allclose(max_margin_direction(inputs, labels), [1.0, 0.0], atol=1e-10)
    # Two orthogonal unit examples: the bisector.
    np.testing.assert_allclose(max_margin_direction(np.eye(2), np.ones(2)), [2**-0.5, 2**-0.5], atol=1e-10)


def test_max_margin_direction_matches_liblinear_hard_margin():
    from sklearn.svm import LinearSVC

    rng = np.random.default_rng(3)
    inputs = rng.standard_normal((80, 10))
    labels = np.sign(inputs @ rng.standard_normal(10))
    reference = LinearSVC(loss="hinge", C=1e5, fit_intercept=False, tol=1e-10, max_iter=10**6, dual=True)
    reference = reference.fit(inputs, labels).coef_[0]
    direction = max_margin_direction(inputs, labels)
    assert direction @ reference / np.linalg.norm(reference) == pytest.approx(1.0, abs=1e-6)


def test_max_margin_direction_rejects_non_separable():
    with pytest.raises(ValueError, match="not linearly separable"):
        max_margin_direction(np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([1.0, -1.0]))


def test_participation_ratio_hand_worked():
    # Covariance spectra (2, 2, 0) and (8, 2) up to a common factor: (Σλ)²/Σλ² = 2 and 100/68.
    assert participation_ratio([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]]) == pytest.approx(2.0)
    assert participation_ratio([[2, 0], [-2, 0], [0, 1], [0, -1]]) == pytest.approx(100 / 68)


# --- theory against independent references ---------------------------------------------------------


def test_unpruned_theory_reproduces_maximal_stability_asymptote():
    # Opper, Kinzel, Kleinz & Nehl (1990): the maximally stable perceptron has ε ≈ 0.5005/α at large α.
    error = predict(alpha_tot=1000.0, keep_fraction=1.0, strategy="random").error
    assert error * 1000 == pytest.approx(0.5005, rel=2e-3)


@pytest.mark.parametrize("strategy", ["hard", "easy"])
def test_imperfect_probe_theory_tends_to_perfect_probe(strategy):
    # θ → 0 goes through the two-dimensional (t₀, t₁) integral; θ = 0 through the one-dimensional one.
    tiny = predict(alpha_tot=4.0, keep_fraction=0.4, strategy=strategy, probe_angle_deg=0.01).error
    exact = predict(alpha_tot=4.0, keep_fraction=0.4, strategy=strategy).error
    assert tiny == pytest.approx(exact, rel=1e-3)


@pytest.mark.parametrize(
    "alpha_tot, keep_fraction, strategy, probe_angle_deg",
    [
        (1.0, 0.5, "easy", 0.0),
        (1.0, 0.5, "hard", 0.0),
        (4.0, 1.0, "random", 0.0),
        (10.0, 0.5, "hard", 0.0),
        (10.0, 0.5, "easy", 0.0),
        (4.0, 0.5, "easy", 10.0),
        (20.0, 0.2, "hard", 10.0),
    ],
)
def test_theory_agrees_with_simulation(alpha_tot, keep_fraction, strategy, probe_angle_deg):
    kwargs = dict(alpha_tot=alpha_tot, keep_fraction=keep_fraction, strategy=strategy, probe_angle_deg=probe_angle_deg)
    simulated = simulate(200, seeds=4, **kwargs)
    predicted = predict(200, seeds=4, **kwargs)
    # N = 200 is finite: allow a few percent plus three standard errors of the seed average.
    assert abs(simulated.mean_error - predicted.error) <= 0.06 * predicted.error + 3 * simulated.sem_error
    assert np.mean(simulated.margins) == pytest.approx(predicted.margin, rel=0.1)


def test_simulation_keeps_round_f_p_examples_through_select():
    result = simulate(50, alpha_tot=2.0, keep_fraction=0.3, strategy="hard", seeds=[7])
    assert result.num_kept == round(0.3 * 100)
    assert result.alpha_prune == pytest.approx(0.6)
    assert result.std_error == 0.0 and len(result.errors) == 1


# --- the easy / hard crossover and ``auto`` -----------------------------------------------------------


def test_crossover_direction_in_simulation():
    # Independent of the theory: scarce data favours keep-easy, abundant data keep-hard.
    def error(alpha_tot, strategy):
        return simulate(200, alpha_tot=alpha_tot, keep_fraction=0.5, strategy=strategy, seeds=3).mean_error

    scarce = {strategy: error(1.0, strategy) for strategy in ("easy", "hard")}
    abundant = {strategy: error(10.0, strategy) for strategy in ("easy", "hard")}
    assert scarce["easy"] < scarce["hard"]
    assert abundant["hard"] < abundant["easy"]


def test_auto_decision_follows_the_regime():
    assert auto_decision(1.0, 0.5).strategy == "easy"
    assert auto_decision(10.0, 0.5).strategy == "hard"
    assert "easy" in auto_decision(1.0, 0.5).reason
    crossover = crossover_alpha_tot(0.5)
    assert 1.0 < crossover < 10.0
    assert auto_decision(0.9 * crossover, 0.5).strategy == "easy"
    assert auto_decision(1.1 * crossover, 0.5).strategy == "hard"


def test_simulate_auto_picks_easy_then_hard():
    scarce = simulate(200, alpha_tot=1.0, keep_fraction=0.5, strategy="auto", seeds=2)
    abundant = simulate(200, alpha_tot=10.0, keep_fraction=0.5, strategy="auto", seeds=2)
    assert (scarce.strategy, abundant.strategy) == ("easy", "hard")
    assert scarce.errors == simulate(200, alpha_tot=1.0, keep_fraction=0.5, strategy="easy", seeds=2).errors
    assert predict(alpha_tot=10.0, keep_fraction=0.5, strategy="auto").strategy == "hard"


def test_auto_strategy_on_plain_scores():
    assert "auto" in list_strategies()
    scores = np.random.default_rng(0).standard_normal(1000)
    easiest = np.sort(np.argsort(scores)[:300])
    hardest = np.sort(np.argsort(scores)[-300:])
    np.testing.assert_array_equal(select(scores, 0.3, "auto", effective_dim=1000), easiest)  # α_tot = 1
    np.testing.assert_array_equal(select(scores, 0.3, "auto", alpha_tot=50.0), hardest)


def test_auto_strategy_class_balanced_uses_the_whole_dataset_size():
    rng = np.random.default_rng(1)
    scores, labels = rng.standard_normal(400), np.repeat([0, 1], 200)
    kept = select(scores, 0.5, "auto", labels=labels, class_balanced=True, effective_dim=20, num_examples=400)
    for label in (0, 1):  # α_tot = 400 / 20 = 20: keep the hardest half of each class.
        members = np.flatnonzero(labels == label)
        hardest_half = np.sort(members[np.argsort(scores[members])[100:]])
        np.testing.assert_array_equal(np.intersect1d(kept, members), hardest_half)


def test_auto_choose_fraction_stays_within_budget():
    decision = auto_decision(10.0, 0.5, choose_fraction=True, tolerance=0.05)
    assert decision.keep_fraction <= 0.5
    assert decision.predicted_error[decision.strategy] <= 1.05 * min(auto_decision(10.0, 0.5).predicted_error.values())
    kept = select(np.arange(1000.0), 0.5, "auto", alpha_tot=10.0, choose_fraction=True)
    assert len(kept) == round(decision.keep_fraction * 1000)


@pytest.mark.parametrize(
    "options, match",
    [
        ({}, "exactly one of `alpha_tot`"),
        ({"alpha_tot": 1.0, "effective_dim": 10}, "exactly one of `alpha_tot`"),
        ({"alpha_tot": -1.0}, "alpha_tot"),
        ({"effective_dim": 0}, "effective_dim"),
        ({"alpha_tot": 1.0, "regime": "small"}, "unknown option"),
        ({"alpha_tot": 1.0, "probe_angle_deg": 120}, "probe_angle_deg"),
    ],
)
def test_auto_strategy_rejects_bad_options(options, match):
    with pytest.raises(ValueError, match=match):
        select(np.arange(10.0), 0.5, "auto", **options)


# --- argument validation -----------------------------------------------------------------------------


@pytest.mark.parametrize("function", [simulate, predict])
@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"strategy": "medium"}, "`strategy` can be hard, easy, random, auto, got 'medium'"),
        ({"keep_fraction": 0.0}, r"`keep_fraction` must be in \(0, 1\], got 0.0"),
        ({"keep_fraction": 1.5}, r"`keep_fraction` must be in \(0, 1\], got 1.5"),
        ({"alpha_tot": 0.0}, "`alpha_tot` must be a finite number > 0.*got 0.0"),
        ({"alpha_tot": -2}, "got -2"),
        ({"probe_angle_deg": 91.0}, r"`probe_angle_deg` must be in \[0, 90\] degrees, got 91.0"),
        ({"seeds": []}, "at least one seed"),
        ({"n_dim": 1}, "`n_dim` must be an integer >= 2, got 1"),
    ],
)
def test_bad_arguments_are_named(function, overrides, match):
    kwargs = dict(n_dim=20, alpha_tot=1.0, keep_fraction=0.5, strategy="hard", seeds=1) | overrides
    with pytest.raises(ValueError, match=match):
        function(**kwargs)


def test_theory_is_independent_of_n_dim_and_seeds():
    base = predict(alpha_tot=2.0, keep_fraction=0.6, strategy="easy")
    assert predict(50, alpha_tot=2.0, keep_fraction=0.6, strategy="easy", seeds=[1, 2]) == base
    assert math.isclose(base.alpha_prune, 1.2)
