"""The Hydra app: composed in-process with small overrides, and the real CLI in a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from _app_overrides import SMALL
from datadiet import ScoreTable
from datadiet.app import config_dir, run


def compose_small(tmp_path, *overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("config", overrides=[*SMALL, f"paths.output_dir={tmp_path}", *overrides])


def test_run_writes_scores_kept_indices_and_summary(tmp_path):
    cfg = compose_small(tmp_path, "pruning.keep_fraction=0.3", "pruning.strategy=hard")
    summary = run(cfg)
    table = ScoreTable.load(tmp_path / "scores.npz")
    assert set(table.names) == {"el2n", "forgetting", "margin"}
    assert table.num_examples == summary["train_examples"] == 288  # 400 - 20 % test - 10 % val
    kept = np.load(tmp_path / "kept_indices.npz", allow_pickle=False)["kept_indices"]
    assert len(kept) == summary["examples_kept"] == round(0.3 * 288)
    # hard by EL2N: every kept example is at least as hard as every dropped one
    dropped = np.setdiff1d(np.arange(288), kept)
    assert table["el2n"][kept].min() >= table["el2n"][dropped].max()
    provenance = json.loads((tmp_path / "scores.json").read_text())
    assert provenance["dataset"]["num_examples"] == 288
    assert provenance["seed"] == 0 and provenance["probe"]["epochs"] == 2
    assert len(provenance["probe_fingerprint"]) == 16
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["test_accuracy"] == pytest.approx(summary["test_accuracy"])
    assert summary["train_examples_seen"] == 2 * len(kept)
    assert summary["probe_examples_seen"] == 2 * 288 + 288  # two epochs + the scoring pass
    assert 0.0 <= summary["test_error"] <= 1.0


def test_keep_all_skips_the_probe(tmp_path):
    summary = run(compose_small(tmp_path, "pruning.keep_fraction=1.0"))
    assert summary["examples_kept"] == summary["train_examples"]
    assert summary["probe_examples_seen"] == 0
    assert not (tmp_path / "scores.npz").exists()


@pytest.mark.parametrize(
    "override, match",
    [
        ("pruning.keep_fraction=1.5", r"keep_fraction.*\(0, 1\], got 1.5"),
        ("pruning.strategy=hardest", r"unknown strategy 'hardest'"),
        ("pruning.score=aum_typo", r"pruning.score=aum_typo.*probe.scores"),
        ("probe.scores=[el2n,nope]", r"unknown score 'nope'"),
    ],
)
def test_bad_config_fails_before_training(tmp_path, override, match):
    with pytest.raises(ValueError, match=match):
        run(compose_small(tmp_path, override))
    assert not (tmp_path / "scores.npz").exists()


@pytest.mark.slow
def test_cli_runs_and_prints_summary(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline"}
    command = [sys.executable, "-m", "datadiet.app", *SMALL, "pruning.strategy=random", f"hydra.run.dir={tmp_path}"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "datadiet summary" in result.stdout
    assert "examples kept" in result.stdout and "test accuracy" in result.stdout
    for name in ("kept_indices.npz", "kept_indices.json", "summary.json"):
        assert (tmp_path / name).exists(), name
    assert not (tmp_path / "scores.npz").exists(), "random selection reads no scores: no probe runs"
    assert "compute_ratio" in json.loads((tmp_path / "summary.json").read_text())
    assert result.stdout.rstrip().splitlines()[-1].startswith("run directory"), "the summary is printed last"
    assert not list(Path(tmp_path).glob(".*.tmp")), "no temporary files left behind"
    assert (tmp_path / "datadiet.log").is_file(), sorted(path.name for path in tmp_path.glob("*.log"))
    # a rerun in the same run directory keeps the first session's metrics and logs its own beside them
    first_metrics = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text()
    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert (tmp_path / "csv" / "version_0" / "metrics.csv").read_text() == first_metrics
    assert "test/acc" in (tmp_path / "csv" / "version_1" / "metrics.csv").read_text()
