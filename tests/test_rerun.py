"""Reruns in an existing run directory reuse only what the new settings are entitled to, and report real costs."""

import json
import logging

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from torch import nn
from torch.utils.data import TensorDataset

from _app_overrides import SMALL
from _modules import LitClassifier, quiet_trainer
from datadiet import PruningDataModule, ScoreTable
from datadiet.app import config_dir, run
from datadiet.app.cache import ProbeCache
from datadiet.app.checkpointing import AtomicCheckpointIO, PhaseClock, phase_checkpoint
from datadiet.app.rundir import SUPERSEDED, changed_keys, may_reuse
from datadiet.callbacks import ExamplesSeen

N_TRAIN = 288  # SMALL's 400 synthetic examples - 20 % test - 10 % validation


def compose_small(tmp_path, *overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("config", overrides=[*SMALL, f"paths.output_dir={tmp_path}", *overrides])


def test_changed_keys_names_each_nested_difference():
    old = {"probe": {"epochs": 2, "scores": ["el2n"]}, "seed": 0, "gone": 1}
    new = {"probe": {"epochs": 5, "scores": ["el2n"]}, "seed": 0, "added": True}
    assert changed_keys(old, new) == ["added: <absent> → true", "gone: 1 → <absent>", "probe.epochs: 2 → 5"]


def _outputs(run_dir):
    (run_dir / "train" / "checkpoints").mkdir(parents=True)
    (run_dir / "train" / "checkpoints" / "last.ckpt").write_bytes(b"old")
    (run_dir / "summary.json").write_text("{}")
    return [run_dir / "train", run_dir / "summary.json"]


def test_outputs_of_the_same_settings_are_reused_in_place(tmp_path):
    outputs = _outputs(tmp_path)
    settings = {"max_epochs": 3, "model": {"lr": 0.1}}
    assert may_reuse("training checkpoint", tmp_path, outputs, dict(settings), settings)
    assert (tmp_path / "train" / "checkpoints" / "last.ckpt").read_bytes() == b"old"
    assert not (tmp_path / SUPERSEDED).exists()


def test_outputs_of_other_settings_move_aside_with_a_warning_naming_the_keys(tmp_path, caplog):
    outputs = _outputs(tmp_path)
    with caplog.at_level(logging.WARNING):
        reused = may_reuse("training checkpoint", tmp_path, outputs, {"max_epochs": 3}, {"max_epochs": 4})
    assert not reused
    assert "max_epochs: 3 → 4" in caplog.text and "resume=false" in caplog.text
    assert not (tmp_path / "train").exists() and not (tmp_path / "summary.json").exists()
    [moved] = list((tmp_path / SUPERSEDED).iterdir())
    assert (moved / "train" / "checkpoints" / "last.ckpt").read_bytes() == b"old"
    assert (moved / "summary.json").is_file()


def test_outputs_recording_no_settings_are_not_trusted(tmp_path, caplog):
    outputs = _outputs(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert not may_reuse("training checkpoint", tmp_path, outputs, None, {"max_epochs": 3})
    assert "records no settings" in caplog.text
    assert not (tmp_path / "train").exists()


def test_resume_false_reuses_nothing_and_moves_nothing(tmp_path):
    outputs = _outputs(tmp_path)
    assert not may_reuse("training checkpoint", tmp_path, outputs, {"a": 1}, {"a": 2}, resume=False)
    assert (tmp_path / "train" / "checkpoints" / "last.ckpt").is_file() and not (tmp_path / SUPERSEDED).exists()


def test_the_probe_cache_refuses_scores_of_another_fingerprint(tmp_path):
    table = ScoreTable({"el2n": np.arange(4.0)}, metadata={"probe_fingerprint": "aaaa"})
    with pytest.raises(ValueError, match="scores of probe aaaa under fingerprint bbbb"):
        ProbeCache(tmp_path).store("bbbb", table)
    assert ProbeCache(tmp_path).store("aaaa", table).is_file()


def _fit(tmp_path, max_epochs, ckpt_path=None):
    torch.manual_seed(0)
    x, y = torch.randn(40, 3), torch.randint(0, 2, (40,))
    seen, clock = ExamplesSeen(), PhaseClock()
    trainer = quiet_trainer(
        max_epochs=max_epochs,
        enable_checkpointing=True,
        callbacks=[seen, clock, phase_checkpoint(tmp_path)],
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(tmp_path),
    )
    datamodule = PruningDataModule(TensorDataset(x, y), batch_size=8)
    trainer.fit(LitClassifier(nn.Linear(3, 2)), datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False)
    return seen, clock


def test_examples_seen_and_wall_time_count_the_sessions_before_a_resume(tmp_path):
    _fit(tmp_path, max_epochs=2)
    last = str(tmp_path / "checkpoints" / "last.ckpt")
    saved = torch.load(last, weights_only=False)["callbacks"]
    assert saved["ExamplesSeen"] == {"count": 2 * 40}
    assert saved["PhaseClock"]["wall_time_s"] > 0
    seen, clock = _fit(tmp_path, max_epochs=3, ckpt_path=last)  # one more epoch
    assert seen.count == 3 * 40
    assert clock.earlier_s == pytest.approx(saved["PhaseClock"]["wall_time_s"])
    seen, _ = _fit(tmp_path, max_epochs=3, ckpt_path=last)  # finished: the training loop is skipped
    assert seen.count == 3 * 40, "a resumed finished fit reports what the phase cost, not 0"


@pytest.mark.slow
def test_a_rerun_with_other_settings_recomputes_and_reports_them(tmp_path):
    hard = ("pruning.strategy=hard",)
    first = run(compose_small(tmp_path, *hard, "pruning.keep_fraction=0.5"))
    assert first["examples_kept"] == N_TRAIN // 2 and first["resumed"] == []

    # Another keep fraction: the probe's scores are reused, the subset and the training are not.
    second = run(compose_small(tmp_path, *hard, "pruning.keep_fraction=0.3"))
    kept = np.load(tmp_path / "kept_indices.npz")["kept_indices"]
    assert second["examples_kept"] == len(kept) == round(0.3 * N_TRAIN)
    assert second["train_examples_seen"] == 2 * len(kept)
    assert "training" not in second["resumed"] and "kept subset" not in second["resumed"]
    [moved] = list((tmp_path / SUPERSEDED).iterdir())
    assert len(np.load(moved / "kept_indices.npz")["kept_indices"]) == N_TRAIN // 2
    assert json.loads((moved / "summary.json").read_text())["examples_kept"] == N_TRAIN // 2

    # The same settings again: everything reused, and the summary says what the run really cost.
    third = run(compose_small(tmp_path, *hard, "pruning.keep_fraction=0.3"))
    assert {"kept subset", "training"} <= set(third["resumed"])
    assert third["train_examples_seen"] == 2 * len(kept)
    assert third["probe_examples_seen"] == second["probe_examples_seen"] == 2 * N_TRAIN + N_TRAIN
    assert third["train_wall_time_s"] > 0

    # Other probe epochs: a new probe, cached under its own fingerprint only.
    fourth = run(compose_small(tmp_path, *hard, "pruning.keep_fraction=0.3", "probe.epochs=1"))
    provenance = json.loads((tmp_path / "scores.json").read_text())
    assert provenance["probe"]["epochs"] == 1
    assert fourth["probe_examples_seen"] == 1 * N_TRAIN + N_TRAIN
    for cached in (tmp_path / "probe_cache").glob("*.npz"):
        table = ScoreTable.load(cached)
        assert table.metadata["probe_fingerprint"] == cached.stem
    fresh = ScoreTable.load(tmp_path / "probe_cache" / f"{provenance['probe_fingerprint']}.npz")
    assert fresh.metadata["probe"]["epochs"] == 1


@pytest.mark.slow
def test_an_unfinished_probe_of_other_settings_is_not_resumed(tmp_path):
    run(compose_small(tmp_path, "pruning.strategy=hard", "probe.epochs=1"))
    # As if killed after the probe's last checkpoint: no scores, no cache; then rerun with 2 probe epochs.
    for path in [tmp_path / "scores.npz", *(tmp_path / "probe_cache").glob("*.npz")]:
        path.unlink()
    summary = run(compose_small(tmp_path, "pruning.strategy=hard", "probe.epochs=2"))
    assert "probe" not in summary["resumed"]
    assert summary["probe_examples_seen"] == 2 * N_TRAIN + N_TRAIN
    [moved] = list((tmp_path / SUPERSEDED).iterdir())
    assert json.loads((moved / "probe" / "settings.json").read_text())["settings"]["probe"]["epochs"] == 1
    assert (moved / "probe" / "checkpoints" / "last.ckpt").is_file()
