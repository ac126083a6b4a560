"""The app's `pruning.mode=dynamic|both`: DynamicPruning in the full training, compute counted in the summary."""

import json

import pytest
from hydra import compose, initialize_config_dir

from _app_overrides import SMALL
from datadiet.app import config_dir, run


def compose_small(tmp_path, *overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("config", overrides=[*SMALL, f"paths.output_dir={tmp_path}", *overrides])


@pytest.mark.slow
def test_dynamic_mode_trains_all_data_without_a_probe(tmp_path):
    summary = run(
        compose_small(
            tmp_path, "pruning.mode=dynamic", "pruning.prune_ratio=0.7", "max_epochs=4", "pruning.anneal_fraction=0.25"
        )
    )
    assert not (tmp_path / "scores.npz").exists() and summary["probe_examples_seen"] == 0
    presented = summary["presentations_per_epoch"]
    assert presented[0] == presented[3] == 288  # first epoch: nothing scored yet; last ⌊0.25 * 4⌋ = 1 annealed
    assert all(count < 288 for count in presented[1:3])
    assert summary["train_examples_seen"] == sum(presented) < 4 * 288
    assert summary["examples_kept"] == 288 and summary["keep_fraction"] == 1.0
    assert summary["pruning_mode"] == "dynamic" and summary["strategy"] == "dynamic"
    assert summary["probe_mode"] == "none"
    assert json.loads((tmp_path / "summary.json").read_text())["presentations_per_epoch"] == presented


@pytest.mark.slow
def test_epochs_scale_trains_longer_and_counts_compute_against_max_epochs(tmp_path, capsys):
    summary = run(
        compose_small(
            tmp_path,
            "pruning.mode=dynamic",
            "pruning.prune_ratio=0.7",
            "max_epochs=2",
            "pruning.epochs_scale=1.5",
            "pruning.anneal_fraction=0",
        )
    )
    presented = summary["presentations_per_epoch"]
    assert summary["train_epochs"] == len(presented) == 3 and presented[0] == 288  # round(1.5 * 2)
    assert summary["max_epochs"] == 2 and summary["epochs_scale"] == 1.5
    # compute against all data for max_epochs = 2, not for the 3 epochs trained (one model: FLOPs ∝ presentations)
    assert summary["compute_ratio"] == pytest.approx(sum(presented) / (2 * 288))
    assert "3 (budget: epochs × 1.5 of max_epochs=2" in capsys.readouterr().out


@pytest.mark.slow
def test_both_mode_prunes_dynamically_inside_the_static_subset(tmp_path):
    summary = run(
        compose_small(
            tmp_path, "pruning.mode=both", "pruning.keep_fraction=0.5", "max_epochs=3", "pruning.anneal_fraction=0"
        )
    )
    presented = summary["presentations_per_epoch"]
    assert summary["examples_kept"] == presented[0] == 144
    assert all(count < 144 for count in presented[1:])
    assert summary["train_examples_seen"] == sum(presented)
    assert summary["strategy"] == "hard" and (tmp_path / "scores.npz").exists()


@pytest.mark.slow
def test_both_mode_with_the_in_run_probe_prunes_dynamically_inside_the_subset_once_chosen(tmp_path):
    summary = run(
        compose_small(
            tmp_path,
            "pruning.mode=both",
            "probe.mode=in_run",
            "probe.epochs=1",
            "pruning.keep_fraction=0.5",
            "max_epochs=3",
            "pruning.anneal_fraction=0",
        )
    )
    presented = summary["presentations_per_epoch"]
    assert presented[0] == 288 and summary["examples_kept"] == 144  # all data, then the in-run half
    assert all(count < 144 for count in presented[1:])  # InfoBatch skips part of the kept half
    assert summary["train_examples_seen"] == sum(presented)
    assert summary["probe_mode"] == "in_run" and (tmp_path / "scores.npz").exists()


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["pruning.mode=sometimes"], r"`pruning.mode` can be static, dynamic, both, got 'sometimes'"),
        (["pruning.mode=dynamic", "pruning.prune_ratio=1.0"], r"`prune_ratio` must be a number in \[0, 1\), got 1.0"),
        (["pruning.mode=dynamic", "pruning.budget=steps"], r"pruning.budget=steps.*use pruning.budget=epochs"),
    ],
)
def test_bad_dynamic_settings_fail_before_training(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        run(compose_small(tmp_path, *overrides))
    assert not (tmp_path / "summary.json").exists()
