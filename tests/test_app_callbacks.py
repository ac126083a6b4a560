"""The app's ``callbacks`` group: your own Lightning callbacks from config, in the full training and the
comparison runs (not the probe), each checked before anything trains."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from _app_overrides import SMALL
from _user_code import RecordingCallback
from datadiet.app import config_dir, run
from datadiet.app.config_checks import SettingsError
from datadiet.app.plan import RunPlan
from datadiet.app.user_callbacks import make_callbacks

TRAIN_EXAMPLES = 288  # data.num_samples=400: 20 % test, then 10 % of the rest for validation


def compose_small(tmp_path, *overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("config", overrides=[*SMALL, f"paths.output_dir={tmp_path}", *overrides])


def nothing_trained(tmp_path):
    return not any((tmp_path / name).exists() for name in ("train", "probe", "scores.npz", "baseline"))


def test_no_callbacks_of_yours_by_default(tmp_path):
    assert RunPlan.from_config(compose_small(tmp_path)).callbacks == {}
    assert RunPlan.from_config(compose_small(tmp_path, "callbacks=none")).callbacks == {}


def test_early_stopping_from_config_stops_the_training_and_the_summary_counts_what_was_trained(tmp_path):
    # min_delta=100: no later epoch counts as an improvement, so patience=0 stops after the second epoch
    summary = run(
        compose_small(
            tmp_path,
            "callbacks=early_stopping",
            "callbacks.early_stopping.patience=0",
            "callbacks.early_stopping.min_delta=100",
            "max_epochs=4",
            "pruning.keep_fraction=1.0",
        )
    )
    assert summary["train_epochs"] == 2 and summary["train_examples_seen"] == 2 * TRAIN_EXAMPLES


def test_your_own_callback_joins_the_training_and_the_comparison_runs_but_not_the_probe(tmp_path):
    RecordingCallback.fits.clear()
    summary = run(
        compose_small(
            tmp_path,
            "+callbacks.mine._target_=_user_code.RecordingCallback",
            "+callbacks.mine.tag=from_config",
            "baseline=true",
            "pruning.keep_fraction=0.5",
        )
    )
    folders = [Path(folder).relative_to(tmp_path).as_posix() for tag, folder in RecordingCallback.fits]
    assert {tag for tag, _ in RecordingCallback.fits} == {"from_config"}
    assert folders == ["baseline/train", "train", "early_stopped/train"]  # full data, this run, early-stopped
    assert (tmp_path / "probe").is_dir() and summary["examples_kept"] == TRAIN_EXAMPLES // 2


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["+callbacks.mine._target_=no_such_package.Callback"],
            "`callbacks.mine._target_=no_such_package.Callback` cannot be imported",
        ),
        (
            ["+callbacks.mine._target_=_user_code.NoSuchCallback"],
            "`callbacks.mine._target_=_user_code.NoSuchCallback` cannot be imported",
        ),
        (
            ["+callbacks.mine._target_=collections.OrderedDict"],
            "`callbacks.mine._target_=collections.OrderedDict` built a OrderedDict, not a Lightning Callback",
        ),
        (["+callbacks.mine.patience=3"], "`callbacks.mine` has no `_target_`"),
        (
            ["callbacks=early_stopping", "callbacks.early_stopping.mode=up"],
            "`callbacks.early_stopping` (lightning.pytorch.callbacks.EarlyStopping) cannot be built from its config: ",
        ),
        (
            ["callbacks=lr_monitor", "logger=none"],
            "`callbacks.lr_monitor` (LearningRateMonitor) writes to the run's loggers, but `logger` is empty",
        ),
    ],
)
def test_a_callback_that_cannot_work_is_refused_in_one_line_naming_its_key(tmp_path, overrides, message):
    with pytest.raises(SettingsError) as error:
        run(compose_small(tmp_path, *overrides))
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
    assert nothing_trained(tmp_path)


def test_a_callback_can_be_removed_from_a_composed_list(tmp_path):
    cfg = compose_small(tmp_path, "callbacks=[early_stopping,lr_monitor]", "callbacks.lr_monitor=null")
    assert list(RunPlan.from_config(cfg).callbacks) == ["early_stopping"]


def test_logging_only_callbacks_are_left_out_of_the_unlogged_comparison_runs(tmp_path):
    plan = RunPlan.from_config(compose_small(tmp_path, "callbacks=[early_stopping,lr_monitor]", "baseline=true"))
    assert list(plan.callbacks) == ["early_stopping", "lr_monitor"]
    assert list(plan.full_data().callbacks) == list(plan.full_data(epochs=1).callbacks) == ["early_stopping"]
    assert make_callbacks(plan.callbacks)[0] is not make_callbacks(plan.callbacks)[0]  # fresh for every training


def test_a_run_with_baseline_and_a_learning_rate_monitor_logs_the_rate_of_its_own_training(tmp_path):
    summary = run(
        compose_small(
            tmp_path,
            "callbacks=lr_monitor",
            "baseline=true",
            "pruning.keep_fraction=1.0",
            "probe.skip_when_keeping_all=false",
        )
    )
    assert summary["examples_kept"] == TRAIN_EXAMPLES
    logged = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert any(column.startswith("lr-") for column in logged)
