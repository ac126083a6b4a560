"""W&B, offline: a real sweep's runs are read back from their run files and checked for the group, config,
summary, probe histograms and example grids, kept-subset artifacts, and the report run's table and plots."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from _wandb_records import offline_runs
from datadiet import ScoreTable
from datadiet.app.config import sweep_name
from datadiet.report.wandb_logging import examples_figure

SMALL = [
    "data=synthetic", "data.num_samples=400", "model=mlp", "model@probe.model=mlp", "model.net.hidden_sizes=[32]",
    "probe.model.net.hidden_sizes=[32]", "probe.mode=separate", "probe.epochs=2", "max_epochs=2",
    "trainer.enable_progress_bar=false", "pruning.mislabelled=null",  # 288 examples: auto's regime guard keeps all
]  # fmt: skip


@pytest.mark.parametrize("shape, artist", [((1, 8, 8), "images"), ((40,), "lines")])
def test_example_grid_shows_images_as_images_and_signals_as_lines(shape, artist):
    import matplotlib.pyplot as plt

    x = torch.randn(20, *shape)
    table = ScoreTable({"el2n": np.arange(20.0)}, labels=np.arange(20) % 2)
    figure = examples_figure(TensorDataset(x, torch.zeros(20, dtype=torch.long)), table, "el2n", count=4)
    axes = figure.axes
    assert len(axes) == 8
    assert all(len(getattr(axis, artist)) == 1 for axis in axes)
    assert axes[0].get_title().startswith("#19") and axes[4].get_title().startswith("#0")  # hardest, easiest
    plt.close(figure)


@pytest.mark.slow
def test_sweep_logs_jobs_probe_subsets_and_the_curve_to_one_group(tmp_path):
    sweep = tmp_path / "sweeps" / "wandb_sweep"
    command = [sys.executable, "-m", "datadiet.app", "-m", *SMALL, "logger=wandb", "pruning.keep_fraction=0.5",
               "pruning.strategy=hard,easy", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]

    runs = offline_runs(sweep)
    jobs = [run for run in runs if run.job_type == "train"]
    (report,) = [run for run in runs if run.job_type == "report"]
    assert len(jobs) == 2
    assert {run.group for run in runs} == {sweep_name(sweep)} == {"sweeps_wandb_sweep"}

    for job in jobs:
        assert {"data", "model", "probe", "pruning", "trainer"} <= job.config_keys
        assert job.summary["examples_kept"] == 144 and job.summary["keep_fraction"] == 0.5
        for key in ("probe_wall_time_s", "probe_examples_seen", "train_wall_time_s", "train_examples_seen",
                    "test_error", "test/acc", "test/loss"):  # fmt: skip
            assert key in job.summary, key
        (artifact,) = [a for a in job.artifacts if a["type"] == "kept_subset"]
        assert artifact["files"] == ["kept_indices.json", "kept_indices.npz"]

    # one probe for the sweep: the job that ran it logs a histogram and an example grid per score
    (prober,) = [job for job in jobs if job.summary["probe_cache"] == "miss"]
    for score in ("el2n", "forgetting", "margin"):
        assert prober.summary[f"probe/histogram/{score}/_type"] == "histogram"
        assert prober.summary[f"probe/examples/{score}/_type"] == "image-file"
        assert prober.file(prober.summary[f"probe/examples/{score}/path"]).exists()

    # the report run: the curve as a table, line plots, the figure and the fitted exponents
    assert report.summary["scaling/curve/_type"] == "table-file"
    assert report.file(report.summary["scaling/curve/path"]).exists()
    assert report.summary["scaling/figure/_type"] == "image-file"
    assert {
        "_wandb/visualize/scaling/test_error_vs_examples_kept",
        "_wandb/visualize/scaling/loglog",
    } <= report.config_keys
    assert report.summary["jobs_finished"] == 2 and report.summary["jobs_failed"] == 0
