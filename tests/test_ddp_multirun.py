"""A Hydra multirun under DDP (2 CPU processes, gloo): each job once, with its own ranks, in its own directory.

Runs the real CLI in a subprocess with the default sweep directory (``multirun/<date>/<time>`` under the
working directory), so a rank that ran the sweep itself would leave a second sweep directory, and one that
ran a single run would leave ``outputs/``.
"""

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from datadiet.app.launch import rank_argv

WORLD_SIZE = 2
PROBE_EPOCHS, MAX_EPOCHS = 1, 2
SMALL = [
    "data=synthetic",
    "data.num_samples=400",  # 288 training examples
    "model=mlp",
    "model@probe.model=mlp",
    "model.net.hidden_sizes=[16]",
    "probe.model.net.hidden_sizes=[16]",
    "probe.mode=separate",
    "pruning.mislabelled=null",  # 288 examples: the default auto's regime guard would keep them all
    f"probe.epochs={PROBE_EPOCHS}",
    f"max_epochs={MAX_EPOCHS}",
    "logger=csv",
    "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu",
    f"trainer.devices={WORLD_SIZE}",
    "trainer.strategy=ddp",
]


def cli() -> list[str]:
    script = Path(sys.executable).parent / "datadiet"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "datadiet.app"]


def run_to_end(command: list[str], timeout: float, **options) -> tuple[int, str]:
    """Runs ``command`` in its own process group; on a timeout kills the whole group (rank processes
    included, which would otherwise hold the output pipes open) and fails with the output's end."""
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, **options
    ) as process:
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            pytest.fail(f"no end after {timeout} s; the output's end:\n{output[-6000:]}")
    return process.returncode, output


def padded(n: int) -> int:
    """Examples one epoch of a DistributedSampler hands out over all ranks."""
    return WORLD_SIZE * math.ceil(n / WORLD_SIZE)


@pytest.mark.slow
def test_multirun_under_ddp_runs_each_job_once_in_its_own_directory(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore"}
    for key in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "NODE_RANK", "LOCAL_RANK", "GLOBAL_RANK"):
        env.pop(key, None)
    command = [*cli(), "-m", "pruning.keep_fraction=0.3,0.6", *SMALL]
    returncode, output = run_to_end(command, cwd=tmp_path, env=env, timeout=300)
    assert returncode == 0, output[-4000:]

    assert sorted(p.name for p in tmp_path.iterdir()) == ["multirun"]  # no `outputs/` of a rank's single run
    sweeps = [day_time for day in (tmp_path / "multirun").iterdir() for day_time in day.iterdir()]
    assert len(sweeps) == 1, sweeps  # rank 1 never ran the sweep itself
    sweep = sweeps[0]
    assert output.count("Launching 2 jobs locally") == 1
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name != "probe_cache")
    assert [p.name for p in jobs] == ["0", "1"]
    assert len((sweep / "probe_cache" / "probe_runs.jsonl").read_text().splitlines()) == 1  # one probe, shared

    rows = {}
    for job, keep_fraction in zip(jobs, (0.3, 0.6)):
        summary = json.loads((job / "summary.json").read_text())
        kept = np.load(job / "kept_indices.npz")["kept_indices"]
        assert summary["keep_fraction"] == keep_fraction
        assert summary["examples_kept"] == len(kept)
        assert summary["output_dir"] == str(job)
        # global counts: every rank's batches (the sampler pads each rank to ceil(n / world size))
        n = summary["train_examples"]
        assert summary["train_examples_seen"] == MAX_EPOCHS * padded(len(kept))
        assert summary["probe_examples_seen"] == PROBE_EPOCHS * padded(n) + padded(n)  # + the eval scoring pass
        assert summary["total_examples_seen"] == summary["probe_examples_seen"] + summary["train_examples_seen"]
        overrides = OmegaConf.load(job / ".hydra" / "overrides.yaml")
        assert f"pruning.keep_fraction={keep_fraction}" in overrides
        rows[job.name] = summary
    assert len(np.load(jobs[1] / "kept_indices.npz")["kept_indices"]) % 2 == 1  # the padding case is exercised

    # the end-of-multirun report saw exactly the two jobs
    curve = (sweep / "scaling_curve.csv").read_text().splitlines()
    assert len(curve) == 1 + 2, curve
    assert json.loads((sweep / "report.json").read_text())


def test_rank_argv_is_the_jobs_overrides_with_rank_zeros_cache(monkeypatch):
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser

    class _Hydra:
        class overrides:  # noqa: N801  (stands in for HydraConfig.get().overrides)
            task = ["pruning.keep_fraction=0.3", "trainer.devices=2"]

    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: _Hydra))
    cfg = OmegaConf.create({"paths": {"cache_dir": "/sweep dir/it's/probe_cache"}})
    argv = rank_argv(cfg, "datadiet")
    assert argv[:3] == ["datadiet", "pruning.keep_fraction=0.3", "trainer.devices=2"]
    (override,) = OverridesParser.create().parse_overrides([argv[3]])
    assert (override.key_or_group, override.value()) == ("paths.cache_dir", "/sweep dir/it's/probe_cache")
    # a cache folder the user chose is passed on as the user wrote it
    _Hydra.overrides.task = ["paths.cache_dir=/shared"]
    assert rank_argv(cfg, "datadiet") == ["datadiet", "paths.cache_dir=/shared"]


def test_a_rank_exiting_non_zero_after_its_job_cannot_kill_the_sweep(caplog):
    """Lightning's child-process observer SIGKILLs its main process when a child exits non-zero. After a
    multirun job has ended, that would kill the sweep in the middle of a later job (whose ranks > 0 then
    wait for rank 0 for ever). Here a stand-in for the sweep process must survive its observer."""
    from lightning.fabric.strategies.launchers.subprocess_script import _ChildProcessObserver

    from datadiet.app.launch import _end_ranks

    sweep = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    rank_1 = subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(1); sys.exit(3)"])
    observer = _ChildProcessObserver(main_pid=sweep.pid, child_processes=[rank_1], sleep_period=0.1)
    observer.start()
    try:
        with caplog.at_level("WARNING", logger="datadiet.app.launch"):
            _end_ranks([observer], kill=False)  # the job finished; rank 1 is still in its teardown
        assert rank_1.returncode == 3
        observer.join(timeout=2)
        assert not observer.is_alive()
        assert sweep.poll() is None  # not killed
        assert f"rank process {rank_1.pid} exited with code 3" in caplog.text
    finally:
        sweep.kill()
        sweep.wait()
