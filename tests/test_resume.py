"""Runs that survive SIGKILL: a restart with the same command ends exactly where an uninterrupted run does."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from datadiet import ScoreTable
from datadiet.app.checkpointing import AtomicCheckpointIO, phase_checkpoint, resume_path

SCRIPT = Path(__file__).parent / "ddp_scripts" / "killable_app.py"
SMALL = [
    "data=synthetic",
    "data.num_samples=400",  # 288 training examples: 5 steps of 64 per epoch
    "model=mlp",
    "model@probe.model=mlp",
    "model.net.hidden_sizes=[32]",
    "probe.model.net.hidden_sizes=[32]",
    "probe.mode=separate",
    "probe.epochs=3",
    "max_epochs=3",
    "logger=csv",
    "trainer.enable_progress_bar=false",
    "trainer.deterministic=true",
    "pruning.keep_fraction=0.5",
]


def run_app(run_dir: Path, kill: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(SCRIPT.parent)}
    env.pop("DATADIET_TEST_KILL", None)
    if kill:
        env["DATADIET_TEST_KILL"] = kill
    command = [sys.executable, str(SCRIPT), *SMALL, f"hydra.run.dir={run_dir}"]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def outcome(run_dir: Path) -> dict:
    table = ScoreTable.load(run_dir / "scores.npz")
    with np.load(run_dir / "kept_indices.npz", allow_pickle=False) as kept:
        kept_indices = kept["kept_indices"]
    weights = torch.load(run_dir / "train" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    return {"table": table, "kept": kept_indices, "weights": weights}


def assert_same_outcome(resumed: dict, reference: dict) -> None:
    assert np.array_equal(resumed["kept"], reference["kept"])
    assert resumed["table"].names == reference["table"].names
    for name in reference["table"].names:
        assert np.array_equal(resumed["table"][name], reference["table"][name], equal_nan=True), name
        assert np.array_equal(resumed["table"].raw(name), reference["table"].raw(name), equal_nan=True), name
    for key, value in reference["weights"].items():
        assert torch.equal(resumed["weights"][key], value), key


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    result = run_app(run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return outcome(run_dir)


@pytest.mark.slow
def test_killed_in_the_probe_then_in_training_ends_like_an_uninterrupted_run(tmp_path, reference):
    # 1. SIGKILL in the probe's epoch 1 (after epoch 0's checkpoint): no scores yet.
    killed = run_app(tmp_path, kill="probe:7")
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert (tmp_path / "probe" / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "scores.npz").exists()
    # 2. The same command resumes the probe from its checkpoint, selects, and is killed in training epoch 1.
    killed = run_app(tmp_path, kill="train:7")
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert "Restored all states from the checkpoint" in killed.stdout + killed.stderr
    assert np.array_equal(ScoreTable.load(tmp_path / "scores.npz")["el2n"], reference["table"]["el2n"], equal_nan=True)
    probe_saved = (tmp_path / "probe" / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    kept_before = np.load(tmp_path / "kept_indices.npz")["kept_indices"]
    assert (tmp_path / "train" / "checkpoints" / "last.ckpt").is_file()
    # 3. The same command reuses the finished probe and its subset, and resumes training.
    resumed = run_app(tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    probe_now = (tmp_path / "probe" / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    assert probe_now == probe_saved, "the finished probe must be reused, not trained again"
    assert np.array_equal(np.load(tmp_path / "kept_indices.npz")["kept_indices"], kept_before)
    assert_same_outcome(outcome(tmp_path), reference)
    assert not list(tmp_path.rglob(".*.tmp")), "no temporary files left behind"


def test_resume_path_prefers_an_explicit_checkpoint(tmp_path):
    assert resume_path(tmp_path) is None
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir()
    torch.save({"epoch": 1}, last)
    assert resume_path(tmp_path) == str(last)
    assert resume_path(tmp_path, resume=False) is None
    other = tmp_path / "other.ckpt"
    torch.save({"epoch": 2}, other)
    assert resume_path(tmp_path, explicit=str(other)) == str(other)
    with pytest.raises(FileNotFoundError, match="ckpt_path="):
        resume_path(tmp_path, explicit=str(tmp_path / "missing.ckpt"))
    other.write_bytes(b"y")  # the user's own file, unreadable: refused, named, never moved
    with pytest.raises(ValueError, match=r"cannot read .*other\.ckpt: truncated or not a checkpoint.*`ckpt_path`"):
        resume_path(tmp_path, explicit=str(other))
    assert other.is_file()


def test_atomic_checkpoint_io_replaces_whole_files(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"a": torch.arange(3)}, path)
    io.save_checkpoint({"a": torch.arange(5)}, path)
    assert torch.equal(io.load_checkpoint(path)["a"], torch.arange(5))
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]


def test_phase_checkpoint_saves_last_only_at_train_epoch_end(tmp_path):
    checkpoint = phase_checkpoint(tmp_path)
    assert checkpoint.dirpath == str(tmp_path / "checkpoints")
    assert checkpoint.filename == "last" and checkpoint.save_top_k == 1 and not checkpoint.save_last
    assert checkpoint._save_on_train_epoch_end  # after DifficultyCallback has folded the epoch
