"""The app with noisy labels: data.label_noise* injects and records them, pruning.mislabelled runs the detector
on the probe's pass, excludes what it flags, and the summary and flagged_examples.csv tell the user."""

import csv

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from _app_overrides import SMALL
from datadiet import ScoreTable
from datadiet.app import config_dir, run
from datadiet.app.plan import RunPlan

NOISY = ["data.label_noise=0.2", "data.label_noise_seed=3", "data.separation=6.0", "max_epochs=4"]


@pytest.fixture(autouse=True)
def _no_regime_guard(monkeypatch):
    """These tiny sets test what auto does once it prunes; the regime guard (which keeps all data on sets this
    small) has its own tests in test_regime_guard.py."""
    from datadiet.callbacks import noisy_labels as _noisy_labels

    monkeypatch.setattr(_noisy_labels, "GUARD_MIN_EXAMPLES_PER_CLASS", 0)
    monkeypatch.setattr(_noisy_labels, "GUARD_MIN_EPOCHS_LEFT", 0)


def compose_small(tmp_path, *overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("config", overrides=[*SMALL, f"paths.output_dir={tmp_path}", *overrides])


@pytest.mark.parametrize("probe_mode", ["in_run", "separate"])
def test_flagged_examples_are_excluded_counted_and_listed(tmp_path, probe_mode, capsys):
    summary = run(
        compose_small(
            tmp_path, *NOISY, f"probe.mode={probe_mode}", "pruning.keep_fraction=0.5", "pruning.mislabelled=exclude"
        )
    )
    table = ScoreTable.load(tmp_path / "scores.npz")
    flagged = table.columns["mislabelled"]
    kept = np.load(tmp_path / "kept_indices.npz", allow_pickle=False)["kept_indices"]
    assert not flagged[kept].any() and len(kept) == round(0.5 * 288)
    assert summary["mislabelled_flagged"] == flagged.sum() == summary["mislabelled_excluded"] > 0
    assert summary["label_noise_estimate"] == pytest.approx(flagged.mean())
    # the injected noise is recorded with the run, and the detector scored against it
    noise = np.load(tmp_path / "label_noise.npz")
    assert len(noise["flipped_indices"]) == round(0.2 * 288) == summary["label_noise"]["num_flipped"]
    hits = np.isin(np.flatnonzero(flagged), noise["flipped_indices"]).sum()
    assert summary["mislabel_precision"] == pytest.approx(hits / flagged.sum())
    rows = list(csv.DictReader(open(tmp_path / "flagged_examples.csv")))
    assert sorted(int(r["original_index"]) for r in rows) == np.flatnonzero(flagged).tolist()
    given = table.labels
    assert all(int(r["given_label"]) == given[int(r["original_index"])] for r in rows)
    assert all(int(r["predicted_label"]) != int(r["given_label"]) for r in rows)
    printed = capsys.readouterr().out
    line = next(row for row in printed.splitlines() if row.startswith("likely mislabelled"))
    assert f"{flagged.sum():,} ({flagged.mean():.1%}): excluded; list in flagged_examples.csv" in line


def test_keep_fraction_one_is_still_all_data_and_clean_runs_say_nothing_about_noise(tmp_path):
    summary = run(compose_small(tmp_path, *NOISY, "pruning.keep_fraction=1.0", "pruning.mislabelled=exclude"))
    assert summary["examples_kept"] == summary["train_examples"] and summary["probe_examples_seen"] == 0
    assert "label_noise_estimate" not in summary and summary["label_noise"]["num_flipped"] == round(0.2 * 288)


def test_a_cleaned_full_data_run_keeps_every_unflagged_example(tmp_path):
    summary = run(
        compose_small(
            tmp_path,
            *NOISY,
            "probe.mode=in_run",
            "pruning.keep_fraction=1.0",
            "probe.skip_when_keeping_all=false",
            "pruning.mislabelled=exclude",
        )
    )
    flagged = ScoreTable.load(tmp_path / "scores.npz").columns["mislabelled"]
    kept = np.load(tmp_path / "kept_indices.npz", allow_pickle=False)["kept_indices"]
    assert kept.tolist() == np.flatnonzero(~flagged).tolist() and summary["mislabelled_excluded"] == flagged.sum() > 0


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.label_noise=1.0", "data.label_noise` must be a share of training labels in [0, 1), got 1.0"),
        ("data.label_noise_kind=uniform", "data.label_noise_kind` can be symmetric, pairwise, got 'uniform'"),
        (
            "pruning.mislabelled=fix",
            "`pruning.mislabelled` can be null, keep, exclude, exclude_disagreeing, auto, got 'fix'",
        ),
        ("pruning.mislabelled=relabel", "`pruning.mislabelled=relabel` is for now a library setting"),
        ("pruning.mislabelled=downweight", "`pruning.mislabelled=downweight` is for now a library setting"),
        ("pruning.detector=magic", "unknown mislabel detector 'magic'"),
        (
            "pruning.mislabelled=exclude probe.seeds=2",
            "averaging `probe.seeds=2` probes' scores has no flags to average: use probe.seeds=1",
        ),
    ],
)
def test_bad_settings_are_refused_when_the_plan_is_built(tmp_path, override, message):
    with pytest.raises(ValueError) as error:
        RunPlan.from_config(compose_small(tmp_path, "data.label_noise=0.1", *override.split()))
    assert message in str(error.value)
    assert not any(tmp_path.iterdir())  # nothing written


def test_the_default_auto_trains_longer_on_noisy_labels_and_keeps_less(tmp_path, capsys):
    summary = run(
        compose_small(
            tmp_path, *NOISY[:-1], "max_epochs=8", "probe.mode=in_run", "probe.epochs=2", "pruning.mislabelled=auto"
        )
    )
    decision = summary["mislabelled_auto"]
    assert summary["mislabelled_handling"] == "auto" and decision["noisy"] and decision["estimate"] > 0.07
    # 8 epochs, 2 before scoring, keep 0.5, one more epoch and a second pass (1/3 of a presentation):
    # 2 + 6 * 0.5 + 1/3 = 3 + 5 k' + 2/3 -> k' = 1/3; 288 / 3 = 96 kept
    assert decision["keep_fraction"] == pytest.approx(1 / 3) and summary["examples_kept"] == 96
    assert summary["mislabelled_scored_after_epochs"] == 3 and summary["probe_examples_seen"] == 2 * 288
    flagged = ScoreTable.load(tmp_path / "scores.npz").columns["mislabelled"]
    kept = np.load(tmp_path / "kept_indices.npz", allow_pickle=False)["kept_indices"]
    assert not flagged[kept].any() and summary["mislabelled_excluded"] == flagged.sum() > 0
    line = next(row for row in capsys.readouterr().out.splitlines() if row.startswith("likely mislabelled"))
    assert (
        f"{flagged.sum():,} ({flagged.mean():.1%}) after 3 epochs: excluded; labels looked noisy after 2 epoch(s) "
        f"(estimate {decision['estimate']:.1%} > 7%), so the probe ran 1 more epoch(s) and kept 33% to stay at "
        "the planned compute; list in flagged_examples.csv"
    ) in line


def test_the_default_auto_changes_nothing_on_clean_labels(tmp_path):
    clean = ["data.separation=6.0", "max_epochs=4", "probe.mode=in_run", "probe.epochs=2"]
    summary = run(compose_small(tmp_path / "auto", *clean, "pruning.mislabelled=auto"))
    plain = run(compose_small(tmp_path / "null", *clean, "pruning.mislabelled=null"))
    assert not summary["mislabelled_auto"]["noisy"] and summary["mislabelled_excluded"] == 0
    assert summary["test_accuracy"] == plain["test_accuracy"] and summary["examples_kept"] == plain["examples_kept"]
    kept = [np.load(tmp_path / name / "kept_indices.npz")["kept_indices"] for name in ("auto", "null")]
    assert kept[0].tolist() == kept[1].tolist()


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "pruning.noise_threshold=2",
            "pruning.noise_threshold` is the noise estimate above which labels count as noisy: "
            "a share in [0, 1) (e.g. 0.07), got 2",
        ),
        ("pruning.noisy_extra_epochs=-1", "pruning.noisy_extra_epochs` is how many more epochs"),
    ],
)
def test_bad_auto_settings_are_refused_when_the_plan_is_built(tmp_path, override, message):
    with pytest.raises(ValueError) as error:
        RunPlan.from_config(compose_small(tmp_path, *override.split()))
    assert message in str(error.value)


def test_auto_is_the_default_and_leaves_all_data_runs_and_score_free_strategies_alone(tmp_path):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        assert compose("config").pruning.mislabelled == "auto"
    assert RunPlan.from_config(compose_small(tmp_path, "pruning.mislabelled=auto")).pruning.mislabelled == "auto"
    for override in ("pruning.keep_fraction=1.0", "pruning.strategy=random", "pruning.mode=dynamic"):
        plan = RunPlan.from_config(compose_small(tmp_path, "pruning.mislabelled=auto", override))
        assert plan.pruning.mislabelled is None, override
