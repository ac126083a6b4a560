"""The app's compute accounting: no probe for score-free strategies, the in-run and selector probes,
the pruned run's budget, and the comparison with a full-data reference (checked by hand counts)."""

import json
import math

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from _app_overrides import SMALL
from datadiet import ScoreTable, select
from datadiet.app import config_dir, run
from datadiet.app.budget import Budget
from datadiet.scores import get_score

N = 288  # synthetic, 400 examples: 20 % test, 10 % validation
FEATURES, CLASSES = 20, 4
MLP32 = 2 * (FEATURES * 32 + 32 * CLASSES)  # forward FLOPs per example of the [32] MLP (matmuls only)


def compose_small(tmp_path, *overrides, base=SMALL):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("config", overrides=[*base, f"paths.output_dir={tmp_path}", *overrides])


# Budget arithmetic (no training) -------------------------------------------------------------------
def budget_cfg(
    budget, max_epochs=10, mode="separate", probe_epochs=2, compute_fraction=None, score="el2n", epochs_scale=1.0
):
    in_run = mode == "in_run"
    return Budget(
        kind=budget,
        max_epochs=max_epochs,
        epochs_scale=epochs_scale,
        compute_fraction=compute_fraction,
        in_run_epochs=probe_epochs if in_run else 0,
        in_run_scoring=in_run and get_score(score).phase == "eval",
    )


def train_epochs(budget, *arguments, **keywords):
    return budget.train_epochs(*arguments, **keywords)


def test_epochs_scale_rounds_half_up():
    assert train_epochs(budget_cfg("epochs", epochs_scale=1.25), 1000, 300, 5.0) == 13  # 12.5 -> 13
    assert train_epochs(budget_cfg("epochs", max_epochs=15, epochs_scale=1.25), 1000, 1000, 5.0) == 19  # 18.75
    assert train_epochs(budget_cfg("epochs", epochs_scale=0.5), 1000, 300, 5.0) == 5
    assert train_epochs(budget_cfg("epochs", epochs_scale=0.01), 1000, 300, 5.0) == 1
    # in-run: the scaled epochs include the first probe.epochs on all data, as max_epochs does
    assert train_epochs(budget_cfg("epochs", mode="in_run", epochs_scale=1.25), 1000, 300, 5.0) == 13


def test_budget_epochs_and_steps():
    assert train_epochs(budget_cfg("epochs"), 1000, 300, 5.0) == 10
    assert train_epochs(budget_cfg("steps"), 1000, 300, 5.0) == 33  # round(10 / 0.3) = round(33.3)
    assert train_epochs(budget_cfg("steps"), 1000, 400, 5.0) == 25
    # in-run: 2 epochs on all data, then the 8 remaining full-data epochs' steps on 40 %: 2 + 20
    assert train_epochs(budget_cfg("steps", mode="in_run"), 1000, 400, 5.0) == 22


def test_budget_compute_rounds_down():
    # full data: 3 · F · 1000 · 10 = 30,000 F. Half of it, minus a probe of 3,000 F, leaves 12,000 F;
    # one epoch on 400 examples costs 1,200 F: 10 epochs.
    assert train_epochs(budget_cfg("compute", compute_fraction=0.5), 1000, 400, 1.0, probe_flops=3000.0) == 10
    # 12,500 F left → 10.4 epochs → 10 (never over the budget)
    assert train_epochs(budget_cfg("compute", compute_fraction=0.5), 1000, 400, 1.0, probe_flops=2500.0) == 10
    # in-run: 2 full epochs (6,000 F) + a scoring pass (1,000 F) out of 15,000 F leaves 8,000 F: 6 more epochs
    assert train_epochs(budget_cfg("compute", mode="in_run", compute_fraction=0.5), 1000, 400, 1.0) == 8
    # a training-phase score needs no scoring pass: 9,000 F left → 7 more epochs
    in_run_forgetting = budget_cfg("compute", mode="in_run", compute_fraction=0.5, score="forgetting")
    assert train_epochs(in_run_forgetting, 1000, 400, 1.0) == 9
    with pytest.raises(ValueError, match=r"compute_fraction=0.1.*spent before the pruned training"):
        train_epochs(budget_cfg("compute", compute_fraction=0.1), 1000, 400, 1.0, probe_flops=3000.0)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["probe.mode=cheap"], r"`probe.mode` can be separate or in_run, got 'cheap'"),
        (["pruning.budget=time"], r"`pruning.budget` can be epochs, steps, compute, got 'time'"),
        (["pruning.budget=compute"], r"needs `pruning.compute_fraction`"),
        (["pruning.budget=compute", "pruning.compute_fraction=-0.5"], r"needs `pruning.compute_fraction`.*-0.5"),
        (["pruning.compute_fraction=0.5"], r"only applies with `pruning.budget=compute`"),
        (["pruning.epochs_scale=0"], r"`pruning.epochs_scale` must be a number > 0 \(e.g. 1.25\), got 0"),
        (["pruning.budget=steps", "pruning.epochs_scale=1.5"], r"epochs_scale=1.5` only applies with .*budget=steps"),
        (
            ["probe.mode=in_run", "max_epochs=4", "probe.epochs=2", "pruning.epochs_scale=0.5"],
            r"epochs_scale=0.5` trains 2 epochs, not more than .*probe.epochs=2",
        ),
        (["probe.mode=in_run", "probe.epochs=2", "max_epochs=2"], r"probe.epochs.*\[1, max_epochs=2\), got 2"),
        (["probe.mode=in_run", "probe.seeds=2", "max_epochs=3", "probe.epochs=1"], r"probe.seeds=2"),
    ],
)
def test_bad_compute_settings_fail_before_training(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        run(compose_small(tmp_path, *overrides))
    assert not (tmp_path / "train").exists()


# App runs --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_random_runs_no_probe_and_costs_only_its_training(tmp_path):
    summary = run(compose_small(tmp_path, "pruning.strategy=random", "pruning.keep_fraction=0.25", "max_epochs=1"))
    assert not (tmp_path / "scores.npz").exists() and not (tmp_path / "probe").exists()
    kept = np.load(tmp_path / "kept_indices.npz")["kept_indices"]
    np.testing.assert_array_equal(kept, select(np.zeros(N), 0.25, "random", seed=0))
    assert summary["strategy"] == "random" and summary["probe_examples_seen"] == 0
    assert summary["probe_flops"] == 0 and summary["probe_flops_per_example"] == 0
    assert summary["flops_per_example"] == MLP32
    assert summary["train_flops"] == 3 * MLP32 * 72
    assert summary["compute_ratio"] == pytest.approx(0.25)


@pytest.mark.slow
def test_in_run_probe_scores_with_the_main_model_and_continues(tmp_path):
    summary = run(compose_small(tmp_path, "probe.mode=in_run", "probe.epochs=1", "max_epochs=3"))
    assert not (tmp_path / "probe").exists(), "no separate probe"
    table = ScoreTable.load(tmp_path / "scores.npz")
    kept = np.load(tmp_path / "kept_indices.npz")["kept_indices"]
    np.testing.assert_array_equal(kept, select(table["el2n"], 0.5, "hard", seed=0))
    # 1 epoch on all 288, then 2 on the kept 144; one scoring pass of 288 with the main model
    assert summary["train_examples_seen"] == 288 + 2 * 144 and summary["probe_examples_seen"] == 288
    assert summary["train_epochs"] == 3 and summary["probe_mode"] == "in_run"
    assert summary["probe_flops"] == MLP32 * 288 and summary["train_flops"] == 3 * MLP32 * 576
    assert summary["compute_ratio"] == pytest.approx((3 * 576 + 288) / (3 * 3 * 288))


@pytest.mark.slow
def test_selector_probe_is_a_tiny_model_for_one_epoch(tmp_path):
    base = [o for o in SMALL if not o.startswith(("model@probe.model", "probe.model", "probe.epochs"))]
    summary = run(compose_small(tmp_path, "probe=selector", "model.net.hidden_sizes=[64]", "max_epochs=1", base=base))
    main = 2 * (FEATURES * 64 + 64 * CLASSES)
    assert summary["flops_per_example"] == main and summary["probe_flops_per_example"] == MLP32
    # one probe epoch (3 forwards each) and the scoring pass (1) over 288, at the tiny model's cost
    assert summary["probe_flops"] == MLP32 * (3 * 288 + 288)
    assert summary["compute_ratio"] == pytest.approx((MLP32 * 4 * 288 + main * 3 * 144) / (main * 3 * 288))


@pytest.mark.slow
def test_budgets_set_the_training_epochs(tmp_path):
    steps = run(compose_small(tmp_path / "steps", "pruning.strategy=random", "pruning.budget=steps", "max_epochs=1"))
    assert steps["train_epochs"] == 2 and steps["train_examples_seen"] == 2 * 144
    # compute: the same-size probe costs 2 · 3 · 288 + 288 = 2,016 presentations' forwards of 4 · 3 · 288 = 3,456;
    # 0.9 of it leaves 1,094.4 / (3 · 144) = 2.53 → 2 epochs
    compute = run(
        compose_small(tmp_path / "compute", "pruning.budget=compute", "pruning.compute_fraction=0.9", "max_epochs=4")
    )
    assert compute["train_epochs"] == 2
    assert compute["compute_ratio"] == pytest.approx((2016 + 2 * 3 * 144) / 3456) and compute["compute_ratio"] <= 0.9


@pytest.mark.slow
def test_baseline_runs_the_full_data_reference_and_the_summary_says_the_difference(tmp_path, capsys):
    summary = run(compose_small(tmp_path, "baseline=true", "pruning.strategy=random", "max_epochs=1"))
    baseline = json.loads((tmp_path / "baseline" / "summary.json").read_text())
    assert baseline["examples_kept"] == N and baseline["compute_ratio"] == 1.0
    assert baseline["vs_full_data"].startswith("this run is the full-data reference")
    difference = 100 * (summary["test_accuracy"] - baseline["test_accuracy"])
    assert summary["reference_test_accuracy"] == baseline["test_accuracy"]
    assert summary["accuracy_vs_reference_pt"] == pytest.approx(difference)
    sign = "−" if round(difference, 1) < 0 else "+"
    expected_words = f"{abs(difference):.1f} pt at 0.50× compute"
    assert summary["vs_full_data"] in (sign + expected_words, "±0.0 pt at 0.50× compute")
    printed = capsys.readouterr().out.rstrip().splitlines()
    assert printed[-1].startswith("run directory") and any(summary["vs_full_data"] in line for line in printed[-5:])
    # the reference is cached: a second pruned run of the same data/model/trainer/epochs/seed finds it
    again = run(compose_small(tmp_path / "again", f"paths.cache_dir={tmp_path / 'probe_cache'}",
                              "pruning.strategy=random", "pruning.keep_fraction=0.75", "max_epochs=1"))  # fmt: skip
    assert again["reference_test_accuracy"] == baseline["test_accuracy"]
    assert again["vs_full_data"].endswith("at 0.75× compute")


@pytest.mark.slow
def test_without_reference_the_summary_says_how_to_get_one(tmp_path):
    summary = run(compose_small(tmp_path, "pruning.strategy=random", "max_epochs=1"))
    assert summary["vs_full_data"] == "no full-data reference: run with baseline=true"
    assert summary["reference_test_accuracy"] is None and math.isfinite(summary["total_flops"])


def test_early_stopped_epochs_never_give_the_full_data_run_less_compute():
    from datadiet.app.accounting import early_stopped_epochs

    assert early_stopped_epochs(0.589, 15) == 9  # 8.8 epochs of compute → 9 (0.60×), not 8 (0.53×)
    assert early_stopped_epochs(0.5, 4) == 2
    assert early_stopped_epochs(0.6, 15) == 9  # exactly 9.0 (up to float error) stays 9
    assert early_stopped_epochs(0.01, 15) == 1


@pytest.mark.slow
def test_baseline_also_runs_full_data_stopped_early_at_the_same_compute(tmp_path, capsys):
    summary = run(compose_small(tmp_path, "baseline=true", "pruning.strategy=random", "max_epochs=4"))
    assert summary["compute_ratio"] == pytest.approx(0.5)  # random 50 %: no probe, half the presentations
    assert summary["early_stopped_epochs"] == 2 and summary["early_stopped_compute_ratio"] == 0.5
    early = json.loads((tmp_path / "early_stopped" / "summary.json").read_text())
    assert early["examples_kept"] == N and early["train_epochs"] == 2 and early["train_examples_seen"] == 2 * N
    printed = capsys.readouterr().out.rstrip().splitlines()
    assert printed[-1].startswith("run directory") and printed[-2].startswith("vs early-stopped")
    # the same run made independently: all data, 2 epochs, same seed
    alone = run(compose_small(tmp_path / "alone", "pruning.keep_fraction=1.0", "max_epochs=2", "logger=none"))
    assert summary["early_stopped_test_accuracy"] == alone["test_accuracy"] == early["test_accuracy"]
    difference = 100 * (summary["test_accuracy"] - alone["test_accuracy"])
    assert summary["accuracy_vs_early_stopped_pt"] == pytest.approx(difference)
    assert summary["pruning_paid"] == (difference > 0)
    words = "pruning paid" if difference > 0 else "pruning did not pay: all data for 2 epochs (0.50× compute)"
    assert summary["vs_early_stopped"].startswith(words)
