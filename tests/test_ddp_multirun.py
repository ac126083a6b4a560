"""A Hydra multirun under DDP (2 CPU processes, gloo): each job once, with its own ranks, in its own directory.

Runs the real CLI in a subprocess with the default sweep directory (``multirun/<date>/<time>`` under the
working directory), so a rank that ran the sweep itself would leave a second sweep directory, and one that
ran a single run would leave ``outputs/``.
"""

import json
import math
import os
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


def padded(n: int) -> int:
    """Examples one epoch of a DistributedSampler hands out over all ranks."""
    return WORLD_SIZE * math.ceil(n / WORLD_SIZE)


@pytest.mark.slow
def test_multirun_under_ddp_runs_each_job_once_in_its_own_directory(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore"}
    for key in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "NODE_RANK", "LOCAL_RANK", "GLOBAL_RANK"):
        env.pop(key, None)
    command = [*cli(), "-m", "pruning.keep_fraction=0.3,0.6", *SMALL]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]

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
