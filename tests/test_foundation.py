"""Choose once, train many: ``task=select`` writes a subset with a complete card; runs on it need no probe, refuse
other data by fingerprint, and account the selection's cost shared over the runs that use it."""

import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from datadiet import ScoreTable, export_foundation_subset, load_foundation_subset
from datadiet.app import run
from datadiet.app.plan import RunPlan
from test_app import compose_small

# SMALL: synthetic data (400 samples -> 288 training examples, 20 features, 4 classes), probe = MLP [32], 2 epochs
TRAIN_EXAMPLES, FEATURES, HIDDEN, CLASSES, PROBE_EPOCHS = 288, 20, 32, 4, 2


def _forward_flops_mlp(sizes):
    return sum(2 * a * b for a, b in itertools.pairwise(sizes))  # one multiply-add per weight


def test_select_writes_subset_and_a_complete_card(tmp_path):
    summary = run(compose_small(tmp_path, "task=select", "pruning.keep_fraction=0.4"))
    card = json.loads((tmp_path / "subset_card.json").read_text())
    readme = (tmp_path / "README.md").read_text()
    subset = load_foundation_subset(tmp_path / "subset.npz")
    table = ScoreTable.load(tmp_path / "scores.npz")

    # the kept set: the hardest 40 % by the probe's EL2N (numpy, by hand)
    expected = np.sort(np.argsort(-table["el2n"], kind="stable")[: round(0.4 * TRAIN_EXAMPLES)])
    np.testing.assert_array_equal(subset.kept_indices, expected)
    np.testing.assert_allclose(subset.kept_scores, table["el2n"][expected])
    assert not (tmp_path / "train").exists() and summary["task"] == "select"

    # what data
    assert card["dataset"]["name"] == "synthetic" and card["dataset"]["num_examples"] == TRAIN_EXAMPLES
    assert (
        card["dataset"]["fingerprint"]
        == table.metadata["dataset"]["fingerprint"]
        == subset.metadata["dataset_fingerprint"]
    )
    # how chosen
    selection = card["selection"]
    selector = selection["selector"]
    assert selector["kind"] == "separate" and "MLP" in selector["model"] and selector["epochs"] == PROBE_EPOCHS
    assert selector["parameters"] == FEATURES * HIDDEN + HIDDEN + HIDDEN * CLASSES + CLASSES
    assert (selection["score"], selection["strategy"], selection["keep_fraction"]) == ("el2n", "hard", 0.4)
    assert selection["class_balanced"] is False and selection["seed"] == 0
    assert selection["label_noise"] == {"handling": "none (no mislabel detection)"}
    # what it cost: 3 forwards per training presentation, 1 per scored example
    forward = _forward_flops_mlp([FEATURES, HIDDEN, CLASSES])
    assert selector["flops_per_example"] == forward
    assert card["cost"]["flops"] == forward * (3 * PROBE_EPOCHS * TRAIN_EXAMPLES + TRAIN_EXAMPLES)
    assert card["cost"]["wall_time_s"] > 0 and card["cost"]["examples_seen"] == 3 * TRAIN_EXAMPLES
    # per-class counts and the histogram
    labels = table.labels
    assert card["class_counts"] == [
        {"class": c, "total": int((labels == c).sum()), "kept": int((labels[expected] == c).sum())}
        for c in range(CLASSES)
    ]
    histogram = card["score_histogram"]
    all_counts, edges = np.histogram(table["el2n"], bins=10)
    assert histogram["all"] == all_counts.tolist() and np.allclose(histogram["bin_edges"], edges)
    assert histogram["kept"] == np.histogram(table["el2n"][expected], bins=edges)[0].tolist()
    # how to train on it
    assert (
        card["train_command"].startswith("datadiet ")
        and f"pruning.subset_path={tmp_path / 'subset.npz'}" in card["train_command"]
    )
    for section in (
        "## Data",
        "## How it was chosen",
        "## What choosing cost",
        "## Examples per class",
        "## Histogram of the score",
        "## Train on it",
        card["dataset"]["fingerprint"],
        card["train_command"],
    ):
        assert section in readme, section


def test_select_in_run_scores_with_the_models_own_first_epochs(tmp_path):
    plan = RunPlan.from_config(compose_small(tmp_path, "task=select", "probe.mode=in_run", "probe.epochs=1"))
    assert plan.selector == "in_run" and plan.probe.model == plan.model and plan.probe.epochs == 1


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["task=fit"], r"`task` can be train or select, got 'fit'"),
        (["task=select", "pruning.keep_fraction=1.0"], r"`task=select` with `pruning.keep_fraction=1.0`"),
        (["task=select", "pruning.mode=dynamic"], r"`pruning.mode=dynamic` selects none"),
        (["task=select", "baseline=true"], r"`task=select` trains no model to compare or resume, so `baseline=True`"),
    ],
)
def test_select_refuses_what_cannot_choose(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        RunPlan.from_config(compose_small(tmp_path, *overrides))


def test_subset_trains_with_the_default_in_run_probe_setting(tmp_path):
    path = export_foundation_subset(
        tmp_path / "given.npz", np.arange(0, TRAIN_EXAMPLES, 2), num_examples=TRAIN_EXAMPLES
    )
    plan = RunPlan.from_config(compose_small(tmp_path / "run", "probe.mode=in_run", f"pruning.subset_path={path}"))
    assert plan.probe_mode == "none" and plan.budget.in_run_epochs == 0


def test_subset_of_other_data_is_refused_before_training_naming_both_fingerprints(tmp_path):
    made_for = "0123456789abcdef"
    path = export_foundation_subset(
        tmp_path / "other.npz",
        np.arange(10),
        num_examples=TRAIN_EXAMPLES,
        provenance={"dataset": {"name": "synthetic", "fingerprint": made_for}},
    )
    run_dir = tmp_path / "run"
    with pytest.raises(
        ValueError, match=rf"fingerprint {made_for} .*this dataset's fingerprint is [0-9a-f]{{16}}"
    ) as error:
        run(compose_small(run_dir, f"pruning.subset_path={path}"))
    assert made_for in str(error.value)
    assert not (run_dir / "train").exists() and not (run_dir / "summary.json").exists()


@pytest.mark.slow
def test_cli_select_then_a_multirun_of_models_on_the_subset(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline"}
    tiny = ["data=synthetic", "data.num_samples=400", "trainer.enable_progress_bar=false", "logger=none"]
    select_dir = tmp_path / "select"
    command = [
        sys.executable,
        "-m",
        "datadiet.app",
        *tiny,
        "task=select",
        "model=mlp",
        "model.net.hidden_sizes=[16]",
        "probe.epochs=1",
        "max_epochs=2",
        f"hydra.run.dir={select_dir}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    card = json.loads((select_dir / "subset_card.json").read_text())
    assert card["selection"]["selector"]["kind"] == "in_run"  # the default probe.mode
    assert "data=synthetic" in card["train_command"] and "data.num_samples=400" in card["train_command"]

    # the default probe settings (probe.mode=in_run), two models: one sweep of 2 jobs on one subset
    sweep_dir = tmp_path / "sweep"
    command = [
        sys.executable,
        "-m",
        "datadiet.app",
        "-m",
        *tiny,
        "model=mlp,tiny_mlp",
        "max_epochs=1",
        f"pruning.subset_path={select_dir / 'subset.npz'}",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    selection_flops = card["cost"]["flops"]
    for job in ("0", "1"):
        summary = json.loads((sweep_dir / job / "summary.json").read_text())
        assert summary["examples_kept"] == card["num_kept"] and summary["probe_examples_seen"] == 0
        assert summary["subset"]["selector"] == card["selection"]["selector"]["description"]
        assert summary["runs_sharing_selection"] == 2 and "2 of 2" in summary["runs_counted_by"]
        full, alone = summary["full_data_flops"], summary["total_flops"]
        assert summary["compute_ratio_with_selection"] == pytest.approx((alone + selection_flops) / full)
        assert summary["compute_ratio_with_selection_share"] == pytest.approx((alone + selection_flops / 2) / full)


def test_select_reads_a_folder_of_score_shards(tmp_path):
    from datadiet.files import atomic_save_npz

    shards = tmp_path / "shards"
    shards.mkdir()
    values = np.random.default_rng(0).random(TRAIN_EXAMPLES).astype(np.float32)
    for rank, index in enumerate(np.array_split(np.arange(TRAIN_EXAMPLES), 2)):
        atomic_save_npz(
            shards / f"scores-rank{rank:05d}-of-00002.npz",
            {
                "original_index": index,
                "label": np.zeros(len(index), dtype=np.int64),
                "num_examples": np.asarray(TRAIN_EXAMPLES),
                "raw/el2n": values[index],
            },
        )
    run(compose_small(tmp_path / "run", "task=select", f"probe.scores_path={shards}", "pruning.keep_fraction=0.25"))
    card = json.loads((tmp_path / "run" / "subset_card.json").read_text())
    kept = load_foundation_subset(tmp_path / "run" / "subset.npz").kept_indices
    np.testing.assert_array_equal(kept, np.sort(np.argsort(-values, kind="stable")[:72]))  # the hardest quarter
    assert card["selection"]["selector"]["kind"] == "imported" and card["cost"]["flops"] == 0.0


def test_the_jobs_of_one_subset_share_a_wandb_group(tmp_path):
    from omegaconf import OmegaConf

    from datadiet.subset import subset_group

    path = export_foundation_subset(tmp_path / "sel" / "subset.npz", np.arange(10), num_examples=TRAIN_EXAMPLES)
    cfg = compose_small(tmp_path, "logger=wandb", f"pruning.subset_path={path}")
    assert OmegaConf.to_container(cfg.logger, resolve=True)["wandb"]["group"] == f"subset_{subset_group(path)}"
    assert subset_group(path).endswith("_sel_subset")
