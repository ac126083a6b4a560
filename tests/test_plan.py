"""The run plan: every documented key reaches the plan the phases read (or is refused), epoch and count
settings are refused before anything is written, and a pruning mode is one registered entry."""

import dataclasses
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from _app_overrides import SMALL
from datadiet.app import RunPlan, config_dir, run
from datadiet.app.config import DataDietConfig, ProbeConfig, PruningConfig, RhoLossConfig
from datadiet.app.modes import MODES, PruningMode, register_mode
from datadiet.app.plan import ALL_DATA, BY_SCORES, IN_RUN, SUBSET_FILE


def compose_small(tmp_path, *overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("config", overrides=[*SMALL, f"paths.output_dir={tmp_path}", *overrides])


def plan_of(tmp_path, *overrides):
    return RunPlan.from_config(compose_small(tmp_path, *overrides))


# Every documented key, an override that changes it, and where the plan carries it -------------------
# (overrides — the last one is the key's own, the others its context —, the plan's value as the phases
# read it, the value expected)
HONOURED = {
    "seed": (["seed=3"], lambda p: p.seed, 3),
    "max_epochs": (["max_epochs=5"], lambda p: (p.max_epochs, p.budget.max_epochs), (5, 5)),
    "resume": (["resume=false"], lambda p: p.resume, False),
    "ckpt_path": (["ckpt_path={file}"], lambda p: p.ckpt_path, "{file}"),
    "baseline": (["baseline=true"], lambda p: p.baseline, True),
    "test_metric": (["test_metric=test/loss"], lambda p: p.test_metric.name, "test/loss"),
    "test_metric_mode": (["test_metric_mode=min"], lambda p: p.test_metric.mode, "min"),
    "data": (["data.num_samples=500"], lambda p: p.data["num_samples"], 500),
    "model": (["model.lr=0.5"], lambda p: p.model["lr"], 0.5),
    "trainer": (["trainer.precision=64-true"], lambda p: p.trainer["precision"], "64-true"),
    "logger": (["logger=none"], lambda p: p.loggers, {}),
    "callbacks": (["callbacks=early_stopping"], lambda p: list(p.callbacks), ["early_stopping"]),
    "paths": (["paths.cache_dir=/tmp/shared"], lambda p: str(p.paths.cache_dir), "/tmp/shared"),
    "probe.model": (["probe.model.lr=0.5"], lambda p: p.probe.model["lr"], 0.5),
    "probe.mode": (
        ["probe.epochs=1", "probe.mode=in_run"],
        lambda p: (p.probe.mode, p.selection, p.budget.in_run_epochs),
        ("in_run", IN_RUN, 1),
    ),
    "probe.epochs": (["probe.epochs=3"], lambda p: p.probe.epochs, 3),
    "probe.scores": (["probe.scores=[el2n,aum]"], lambda p: p.probe.scores, ("el2n", "aum")),
    "probe.skip_when_keeping_all": (
        ["pruning.keep_fraction=1.0", "probe.skip_when_keeping_all=false"],
        lambda p: p.selection,
        BY_SCORES,
    ),
    "probe.seeds": (
        ["probe.seeds=2"],
        lambda p: (p.probe.seeds, p.probe_seed(1).seed, p.probe_seed(1).probe.seeds),
        (2, 1, 1),
    ),
    "probe.scores_path": (
        ["probe.scores_path={file}"],
        lambda p: (p.probe.scores_path, p.probe_source),
        ("{file}", "file"),
    ),
    "probe.score_options": (["+probe.score_options.el2n.foo=1"], lambda p: p.probe.score_options, {"el2n": {"foo": 1}}),
    "probe.feature_module": (["probe.feature_module=net.0"], lambda p: p.probe.feature_module, "net.0"),
    "probe.rho_loss.holdout_fraction": (
        ["probe.rho_loss.holdout_fraction=0.3"],
        lambda p: p.probe.rho_loss["holdout_fraction"],
        0.3,
    ),
    "probe.rho_loss.cross_fit": (["probe.rho_loss.cross_fit=false"], lambda p: p.probe.rho_loss["cross_fit"], False),
    "probe.rho_loss.epochs": (["probe.rho_loss.epochs=4"], lambda p: p.probe.rho_loss["epochs"], 4),
    "probe.rho_loss.cache_dir": (
        ["probe.rho_loss.cache_dir=/tmp/il"],
        lambda p: p.probe.rho_loss["cache_dir"],
        "/tmp/il",
    ),
    "pruning.score": (["pruning.score=margin"], lambda p: p.pruning.score, "margin"),
    "pruning.strategy": (
        ["pruning.strategy=random"],
        lambda p: (p.pruning.strategy, p.probe_source),
        ("random", "none"),
    ),
    "pruning.keep_fraction": (["pruning.keep_fraction=0.3"], lambda p: p.pruning.keep_fraction, 0.3),
    "pruning.class_balanced": (["pruning.class_balanced=true"], lambda p: p.pruning.class_balanced, True),
    "pruning.seed": (["pruning.seed=9"], lambda p: p.pruning.seed, 9),
    "pruning.options": (
        ["pruning.strategy=ccs", "+pruning.options.beta=0.1"],
        lambda p: p.pruning.strategy_options(100),
        {"beta": 0.1},
    ),
    "pruning.subset_path": (
        ["pruning.subset_path={file}"],
        lambda p: (p.pruning.subset_path, p.selection),
        ("{file}", SUBSET_FILE),
    ),
    "pruning.budget": (["pruning.budget=steps"], lambda p: p.budget.kind, "steps"),
    "pruning.compute_fraction": (
        ["pruning.budget=compute", "pruning.compute_fraction=0.5", "pruning.compute_fraction=0.4"],
        lambda p: p.budget.compute_fraction,
        0.4,
    ),
    "pruning.epochs_scale": (["pruning.epochs_scale=1.5"], lambda p: p.budget.scaled_epochs, 3),
    "pruning.mode": (
        ["pruning.mode=dynamic"],
        lambda p: (p.pruning.mode.name, p.selection, p.probe_mode),
        ("dynamic", ALL_DATA, "none"),
    ),
    "pruning.prune_ratio": (
        ["pruning.mode=dynamic", "pruning.prune_ratio=0.3"],
        lambda p: p.pruning.mode.callbacks(p.pruning)[0].prune_ratio,
        0.3,
    ),
    "pruning.anneal_fraction": (
        ["pruning.mode=dynamic", "pruning.anneal_fraction=0.25"],
        lambda p: p.pruning.mode.callbacks(p.pruning)[0].anneal_fraction,
        0.25,
    ),
    "pruning.mislabelled": (
        ["pruning.mislabelled=exclude"],
        lambda p: (p.pruning.mislabelled, "label_issue" in p.probe.scores, p.probe.settings["scores"][-1]),
        ("exclude", True, "label_issue"),
    ),
    "pruning.detector": (
        ["pruning.mislabelled=keep", "pruning.detector=prune_by_noise_rate"],
        lambda p: (p.pruning.detector, p.probe.score_options["label_issue"]["detector"]),
        ("prune_by_noise_rate", "prune_by_noise_rate"),
    ),
    "pruning.noise_threshold": (
        ["pruning.mislabelled=auto", "pruning.noise_threshold=0.2"],
        lambda p: (p.pruning.mislabelled, p.pruning.noise_threshold),
        ("auto", 0.2),
    ),
    "pruning.noisy_extra_epochs": (
        ["pruning.mislabelled=auto", "pruning.noisy_extra_epochs=2"],
        lambda p: (p.pruning.mislabelled, p.pruning.noisy_extra_epochs),
        ("auto", 2),
    ),
    "task": (["task=select"], lambda p: (p.task, p.selector), ("select", "separate")),
}
#: Keys Hydra itself reads, not the run: `task_name` is the job's name (its log file, `<run dir>/<task_name>.log`).
HYDRA_LEVEL = {"task_name"}


def _schema_keys():
    keys = {f.name for f in dataclasses.fields(DataDietConfig)} - {"probe", "pruning"}
    keys |= {f"probe.{f.name}" for f in dataclasses.fields(ProbeConfig)} - {"probe.rho_loss"}
    keys |= {f"probe.rho_loss.{f.name}" for f in dataclasses.fields(RhoLossConfig)}
    keys |= {f"pruning.{f.name}" for f in dataclasses.fields(PruningConfig)}
    return keys


def _with_file(value, file):
    if isinstance(value, tuple):
        return tuple(_with_file(item, file) for item in value)
    return value.format(file=file) if isinstance(value, str) else value


def test_the_key_list_covers_every_key_of_the_schema():
    assert _schema_keys() == set(HONOURED) | HYDRA_LEVEL


@pytest.mark.parametrize("key", sorted(HONOURED))
def test_every_documented_key_is_honoured_through_the_plan(tmp_path, key):
    overrides, read, expected = HONOURED[key]
    file = tmp_path / "given.file"  # paths must name an existing file
    file.write_text("x")
    overrides = [override.format(file=file) for override in overrides]
    expected = _with_file(expected, file)
    default, changed = plan_of(tmp_path, *overrides[:-1]), plan_of(tmp_path, *overrides)
    assert read(changed) == expected
    assert read(default) != expected, "the override must change what the phases read"


def test_task_name_names_the_job():
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=[*SMALL, "task_name=ablation"], return_hydra_config=True)
    assert cfg.hydra.job.name == "ablation"


def test_the_plan_resolves_the_phases(tmp_path):
    plan = plan_of(tmp_path)
    assert (plan.selection, plan.probe_source, plan.probe_mode) == (BY_SCORES, "probe", "separate")
    assert plan.budget.train_epochs(100, 50, 1.0) == 2 and not plan.is_full_data_reference
    full = plan_of(tmp_path, "pruning.keep_fraction=1.0")
    assert full.selection == ALL_DATA and full.is_full_data_reference
    early = plan.full_data(epochs=1)
    assert early.max_epochs == 1 and early.paths.output_dir == Path(tmp_path) / "early_stopped"
    assert early.pruning.keep_fraction == 1.0 and early.is_full_data_reference and early.loggers == {}


# Epoch and count settings: refused before anything is written --------------------------------------
@pytest.mark.parametrize(
    "overrides, match",
    [
        (
            ["probe.mode=separate", "probe.epochs=-1"],
            r"`probe.epochs` \(the probe model's training epochs\) must be an integer >= 1, got -1",
        ),
        (["probe.mode=separate", "probe.epochs=0"], r"`probe.epochs` .*got 0"),
        (
            ["probe.mode=separate", "max_epochs=0"],
            r"`max_epochs` \(the full training's epochs\) must be an integer >= 1, got 0",
        ),
        (["probe.mode=in_run", "max_epochs=0"], r"`max_epochs` .*got 0"),
        (["max_epochs=-3"], r"`max_epochs` .*got -3"),
        (["probe.seeds=0"], r"`probe.seeds` .*must be an integer >= 1, got 0"),
        (["probe.scores=[el2n,rho_loss]", "probe.rho_loss.epochs=0"], r"`probe.rho_loss.epochs` .*got 0"),
        (["seed=-1"], r"`seed` must be an integer >= 0, got -1"),
        (
            ["baseline=true", "pruning.subset_path=/no/such/kept.npz"],
            r"`pruning.subset_path=/no/such/kept.npz` does not exist",
        ),
        (["probe.scores_path=/no/such.csv"], r"`probe.scores_path=/no/such.csv` does not exist"),
        (["ckpt_path=/no/such.ckpt"], r"`ckpt_path=/no/such.ckpt` does not exist"),
        (["pruning.strategy=ccs", "+pruning.options.num_strata=0"], r"`pruning.strategy=ccs` refuses .*num_strata"),
        (["pruning.strategy=auto"], r"`pruning.strategy=auto` refuses .*needs the data regime"),
        (["pruning.strategy=hard", "+pruning.options.beta=0.1"], r"`pruning.strategy=hard` refuses .*beta"),
    ],
)
def test_bad_epochs_and_counts_fail_before_anything_is_written(tmp_path, overrides, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        run(compose_small(tmp_path / "run", *overrides))
    assert not (tmp_path / "run").exists()


# A pruning mode is one registered entry ------------------------------------------------------------
class _Counting(PruningMode):
    """Static selection plus a callback that counts the training epochs it saw (a mode written for the test)."""

    can_be_reference = False

    def callbacks(self, pruning):
        from lightning.pytorch.callbacks import Callback

        class EpochCounter(Callback):
            epochs = 0

            def on_train_epoch_end(self, trainer, pl_module):
                EpochCounter.epochs += 1

        return [EpochCounter()]

    def train_settings(self, pruning):
        return {"counting": True}

    def summary(self, callbacks):
        return {"epochs_counted": type(callbacks[0]).epochs}


@pytest.mark.slow
def test_a_registered_mode_runs_through_every_phase(tmp_path, monkeypatch):
    monkeypatch.setattr(MODES, "_entries", dict(MODES._entries))  # registered for this test only
    register_mode("counting_for_test")(_Counting)
    try:
        summary = run(compose_small(tmp_path, "pruning.mode=counting_for_test", "pruning.strategy=random"))
    finally:
        from datadiet.app import modes

        modes._ORDER.remove("counting_for_test")
    assert summary["pruning_mode"] == "counting_for_test" and summary["epochs_counted"] == 2
    assert summary["examples_kept"] == 144 and summary["train_examples_seen"] == 2 * 144
    assert (tmp_path / "train" / "settings.json").read_text().count('"counting": true') == 1
