"""The app's command line: unknown `+key`s fail, `trainer.max_epochs` is honoured, `--help` helps, and the
console stays quiet about what the app itself decided (no validation set, resumed checkpoints, W&B's footer)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from _app_overrides import SMALL
from datadiet.app import config_dir, run, validate_config


def compose_small(tmp_path, *overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("config", overrides=[*SMALL, f"paths.output_dir={tmp_path}", *overrides])


def compose_epochs(tmp_path, *overrides):
    """SMALL without its `max_epochs=2`, so each test sets the full training's epochs its own way."""
    small = [override for override in SMALL if not override.startswith("max_epochs=")]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("config", overrides=[*small, f"paths.output_dir={tmp_path}", *overrides])


@pytest.mark.parametrize(
    "override, match",
    [
        ("+pruning.keep_fracton=0.3", r"`pruning.keep_fracton` is not a setting.*did you mean `pruning.keep_fraction`"),
        ("+seeed=1", r"`seeed` is not a setting.*did you mean `seed`"),
        ("+data.bogus=1", r"`data.bogus` is not a setting: SyntheticConfig"),
        ("+probe.rho_loss.epoch=3", r"`probe.rho_loss.epoch` is not a setting.*`probe.rho_loss.epochs`"),
        ("+logger.csv.nme=x", r"`logger.csv.nme` is not a setting"),
        ("+logger.extra.a=1", r"`logger.extra` has no `_target_`"),
    ],
)
def test_an_added_key_the_schema_does_not_have_fails_before_training(tmp_path, override, match):
    with pytest.raises(ValueError, match=match):
        run(compose_small(tmp_path, override))
    assert not (tmp_path / "scores.npz").exists()


@pytest.mark.parametrize(
    "overrides",
    [
        ("pruning.strategy=auto", "+pruning.options.alpha_tot=20"),  # documented in the README
        ("+probe.score_options.el2n.foo=1",),  # free-form: the score's own arguments (its constructor checks them)
    ],
)
def test_free_form_options_take_added_keys(tmp_path, overrides):
    validate_config(compose_small(tmp_path, *overrides))


@pytest.mark.parametrize("override", ["trainer.max_epochs=3", "+trainer.max_epochs=3"])
def test_trainer_max_epochs_sets_the_full_trainings_epochs(tmp_path, override):
    cfg = compose_epochs(tmp_path, override)
    validate_config(cfg)
    assert cfg.max_epochs == 3 and cfg.probe.epochs == 2


def test_max_epochs_alone_leaves_trainer_max_epochs_unset(tmp_path):
    cfg = compose_epochs(tmp_path, "max_epochs=4")
    validate_config(cfg)
    assert cfg.max_epochs == 4 and cfg.trainer.max_epochs is None


def test_two_different_full_training_epochs_fail_naming_both(tmp_path):
    with pytest.raises(ValueError, match=r"`trainer.max_epochs=3` and `max_epochs=4` both set"):
        validate_config(compose_epochs(tmp_path, "trainer.max_epochs=3", "max_epochs=4"))


@pytest.mark.slow
def test_a_run_with_trainer_max_epochs_trains_that_many_epochs(tmp_path):
    summary = run(compose_epochs(tmp_path, "pruning.strategy=hard", "+trainer.max_epochs=1"))
    assert summary["train_examples_seen"] == 1 * summary["examples_kept"]
    assert summary["probe_examples_seen"] == 2 * 288 + 288  # probe.epochs (2) untouched


def _cli(*arguments, env=None):
    env = {**os.environ, "WANDB_MODE": "offline", **(env or {})}
    env.pop("HYDRA_FULL_ERROR", None)
    command = [sys.executable, "-m", "datadiet.app", *arguments]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_help_says_what_the_tool_does_and_lists_every_option():
    result = _cli("--help")
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout
    assert text.startswith("datadiet: data pruning for PyTorch Lightning")
    assert text.count("\n    datadiet ") + text.count("\n  datadiet ") >= 2, "two example commands"
    for key in ("pruning.keep_fraction", "pruning.strategy", "probe.epochs", "max_epochs", "hydra.run.dir"):
        assert key in text
    assert "datadiet_schema" not in text
    groups = text.split("== Config groups")[1]
    conf = Path(config_dir())
    for group in ("data", "model", "probe", "pruning", "trainer", "logger", "paths"):
        for option in sorted(path.stem for path in (conf / group).glob("*.yaml")):
            assert f" {option}" in groups, f"`{group}={option}` is missing from conf/hydra/help/datadiet.yaml"


@pytest.mark.slow
def test_a_resumed_run_without_validation_set_prints_the_summary_last_and_nothing_expected(tmp_path):
    arguments = [*SMALL, "pruning.strategy=hard", "data.val_fraction=0", "logger=wandb", f"hydra.run.dir={tmp_path}"]
    first = _cli(*arguments, env={"WANDB_SILENT": "false"})
    assert first.returncode == 0, first.stderr[-3000:]
    again = _cli(*arguments, env={"WANDB_SILENT": "false"})
    assert again.returncode == 0, again.stderr[-3000:]
    for result in (first, again):
        output = result.stdout + result.stderr
        assert "validation_step` but have no `val_dataloader`" not in output
        assert "exists and is not empty" not in output
        assert result.stdout.rstrip().splitlines()[-1].startswith("run directory"), "the summary is printed last"
    summary = again.stdout[again.stdout.rindex("datadiet summary") :]
    assert "resumed" in summary and "train examples seen  0\n" not in summary
