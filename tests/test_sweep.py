"""The probe score cache (one probe per fingerprint, also across processes) and a real parallel sweep."""

import json
import multiprocessing
import os
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from _app_overrides import SMALL
from datadiet import ScoreTable
from datadiet.app import config_dir, run
from datadiet.app.cache import RUN_LOG, ProbeCache, single_process


def _slow_probe(directory, seconds, queue):
    def compute():
        time.sleep(seconds)  # long enough for the other processes to reach the lock
        return ScoreTable({"el2n": np.arange(5.0)}, labels=np.zeros(5, dtype=int))

    table, hit = ProbeCache(directory).get_or_compute("abc123", compute)
    queue.put((hit, table["el2n"].tolist()))


def test_parallel_processes_compute_a_probe_once_and_share_it(tmp_path):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_slow_probe, args=(tmp_path, 1.0, queue)) for _ in range(3)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert sorted(hit for hit, _ in results) == [False, True, True]
    assert all(values == [0.0, 1.0, 2.0, 3.0, 4.0] for _, values in results)
    assert ProbeCache(tmp_path).num_computed() == 1
    assert not list(tmp_path.glob(".*.tmp")), "writes are atomic: no temporary files left"
    assert ScoreTable.load(tmp_path / "abc123.npz").metadata["probe_fingerprint"] == "abc123"


def test_a_table_with_another_fingerprint_is_not_reused(tmp_path):
    ScoreTable({"el2n": np.ones(3)}, metadata={"probe_fingerprint": "other"}).save(tmp_path / "abc123.npz")
    table, hit = ProbeCache(tmp_path).get_or_compute("abc123", lambda: ScoreTable({"el2n": np.zeros(3)}))
    assert not hit and table["el2n"].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    "trainer, expected",
    [
        ({"accelerator": "cpu", "devices": 1}, True),
        ({"accelerator": "cpu", "devices": "auto"}, True),
        ({"accelerator": "gpu", "devices": [0]}, True),
        ({"accelerator": "gpu", "devices": 2}, False),
        ({"accelerator": "gpu", "devices": "0,1"}, False),
        ({"accelerator": "cpu", "devices": 1, "strategy": "ddp"}, False),
        ({"accelerator": "gpu", "devices": 1, "num_nodes": 2}, False),
    ],
)
def test_multi_process_trainers_probe_without_the_lock(trainer, expected):
    assert single_process(OmegaConf.create(trainer)) is expected


def test_app_jobs_with_one_cache_dir_share_the_probe(tmp_path):
    def job(name, *overrides):
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose("config", overrides=[*SMALL, f"paths.output_dir={tmp_path / name}",
                                                f"paths.cache_dir={tmp_path / 'cache'}", *overrides])  # fmt: skip
        return run(cfg)

    first = job("a", "pruning.keep_fraction=0.3", "pruning.strategy=hard")
    second = job("b", "pruning.keep_fraction=0.6", "pruning.strategy=easy")  # random would need no probe
    assert (first["probe_cache"], second["probe_cache"]) == ("miss", "hit")
    assert second["probe_examples_seen"] == first["probe_examples_seen"] == 2 * 288 + 288  # what the probe cost
    assert ProbeCache(tmp_path / "cache").num_computed() == 1
    a, b = ScoreTable.load(tmp_path / "a" / "scores.npz"), ScoreTable.load(tmp_path / "b" / "scores.npz")
    np.testing.assert_array_equal(a["el2n"], b["el2n"])
    assert a.metadata["probe_fingerprint"] == b.metadata["probe_fingerprint"]
    third = job("c", "pruning.keep_fraction=0.3", "probe.epochs=3")  # another probe config: another probe
    assert third["probe_cache"] == "miss" and ProbeCache(tmp_path / "cache").num_computed() == 2


def test_report_command_is_installed():
    scripts = {entry.name: entry.value for entry in entry_points(group="console_scripts")}
    assert scripts.get("datadiet-report") == "datadiet.report.callback:main"


@pytest.mark.slow
def test_parallel_sweep_runs_one_probe_and_reports_failed_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    command = [
        sys.executable, "-m", "datadiet.app", "-m", *SMALL,
        "pruning.keep_fraction=0.3,0.6", "pruning.strategy=hard,easy,nonexistent",
        "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, "a sweep with failed jobs exits with an error"
    assert "2 of 6 jobs failed" in output, output[-3000:]

    # exactly one probe for the one probe config, although two jobs ran at a time
    runs = (sweep / "probe_cache" / RUN_LOG).read_text().splitlines()
    assert len(runs) == 1, runs
    summaries = [json.loads(path.read_text()) for path in sorted(sweep.glob("*/summary.json"))]
    assert len(summaries) == 4
    assert sorted(s["probe_cache"] for s in summaries) == ["hit", "hit", "hit", "miss"]
    tables = [ScoreTable.load(path) for path in sorted(sweep.glob("*/scores.npz"))]
    assert len(tables) == 4 and all(np.array_equal(t["el2n"], tables[0]["el2n"]) for t in tables)

    # the curve: one point per finished job; the failed jobs are listed with their error
    rows = (sweep / "scaling_curve.csv").read_text().splitlines()
    assert len(rows) == 1 + 4
    report = json.loads((sweep / "report.json").read_text())
    assert {fit["strategy"] for fit in report["fits"]} == {"hard", "easy"}
    assert len(report["failed_jobs"]) == 2
    assert all("unknown strategy 'nonexistent'" in job["error"] for job in report["failed_jobs"])
    assert all((Path(job["job"]) / "job_failure.json").exists() for job in report["failed_jobs"])
    assert (sweep / "scaling_curve.png").exists()
