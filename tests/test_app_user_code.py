"""The app with your own LightningModule and data (model=custom, data=custom, test_metric): what it needs
from them is checked before anything trains, with a message saying what to add."""

import pytest
from hydra import compose, initialize_config_dir

from _app_overrides import SMALL
from datadiet.app import config_dir, run

CUSTOM = [
    "model=custom",
    "model._target_=_user_code.UserModule",
    "data=custom",
    "data._target_=_user_code.UserDataModule",
]


def compose_custom(tmp_path, *overrides):
    base = [o for o in SMALL if not o.startswith(("data", "model.net", "model="))]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("config", overrides=[*base, f"paths.output_dir={tmp_path}", *CUSTOM, *overrides])


def nothing_trained(tmp_path):
    return (
        not (tmp_path / "train").exists()
        and not (tmp_path / "probe").exists()
        and not (tmp_path / "scores.npz").exists()
    )


def test_own_module_and_datamodule_with_their_own_test_metric(tmp_path):
    summary = run(compose_custom(tmp_path, "test_metric=test/accuracy", "pruning.mode=dynamic", "+model.lr=0.2"))
    assert summary["test_metric"] == "test/accuracy" and 0 <= summary["test_metric_value"] <= 1
    assert summary["objective"] == -summary["test_metric_value"]  # max mode: sweepers minimise its negation
    assert summary["test_accuracy"] is None and summary["test_loss"] is None  # the module logs neither
    assert summary["train_examples"] == 150 and summary["dataset"] == "UserDataModule"


def test_a_test_metric_the_module_does_not_log_is_refused_before_training(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"test_step logs test/accuracy, not `test_metric=test/acc`: log it with "
        r"`self.log\('test/acc', value\)`",
    ):
        run(compose_custom(tmp_path, "pruning.mode=dynamic"))
    assert nothing_trained(tmp_path)


def test_a_model_that_takes_sizes_the_data_module_lacks_is_refused_before_training(tmp_path):
    overrides = ["model._target_=_user_code.SizedModule", "test_metric=test/accuracy", "pruning.mode=dynamic"]
    with pytest.raises(
        ValueError,
        match=r"takes input_shape and num_classes, which the app reads from the data module, "
        r"but 'UserDataModule' does not set them",
    ):
        run(compose_custom(tmp_path, *overrides))
    assert nothing_trained(tmp_path)
    summary = run(compose_custom(tmp_path, *overrides, "+data.with_shape=true"))  # sizes from the data module
    assert summary["test_metric_value"] >= 0


def test_the_separate_probe_needs_the_sizes_too(tmp_path):
    with pytest.raises(ValueError, match=r"takes input_shape and num_classes"):
        run(compose_custom(tmp_path, "test_metric=test/accuracy", "probe.mode=separate", "pruning.keep_fraction=0.5"))
    assert nothing_trained(tmp_path)


def test_data_target_that_is_not_a_datamodule_is_refused(tmp_path):
    with pytest.raises(
        TypeError, match=r"built a list; the app needs a LightningDataModule .*datadiet.PruningDataModule"
    ):
        run(compose_custom(tmp_path, "data._target_=_user_code.not_a_datamodule"))


def test_a_language_model_through_the_app(tmp_path):
    """The byte-level LM: bits per token reported (lower is better), dynamic pruning by token-mean loss."""
    overrides = [
        "data._target_=datadiet.data.sources.python_source_datamodule",
        "+data.context=16",
        "+data.num_train=96",
        "+data.num_test=16",
        "+data.batch_size=16",
        "model._target_=datadiet.models.CausalLM",
        "+model.net._target_=datadiet.models.TinyGPT",
        "+model.net._partial_=true",
        "+model.net.width=16",
        "+model.net.depth=1",
        "test_metric=test/bits_per_token",
        "test_metric_mode=min",
        "pruning.mode=dynamic",
    ]
    summary = run(compose_custom(tmp_path, *overrides))
    assert summary["test_metric"] == "test/bits_per_token" and summary["objective"] == summary["test_metric_value"] > 0
    assert summary["presentations_per_epoch"][0] == 96 and summary["presentations_per_epoch"][1] < 96


def test_the_checks_before_training_leave_the_random_state_as_it_was(tmp_path):
    # building the probe and the main model draws initial weights: the run's own draws must not move
    import torch

    from datadiet.app.plan import RunPlan
    from datadiet.app.user_code import check_before_training, make_datamodule

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=[*SMALL, f"paths.output_dir={tmp_path}", "pruning.keep_fraction=0.5"])
    plan = RunPlan.from_config(cfg)
    assert plan.probe_source == "probe"
    datamodule = make_datamodule(plan.data)
    torch.manual_seed(7)
    before = torch.random.get_rng_state()
    check_before_training(plan, datamodule)
    assert torch.equal(torch.random.get_rng_state(), before)
