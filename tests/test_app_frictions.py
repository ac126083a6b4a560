"""Edges a new user hits with the app: a model's own default sizes, one-line errors naming the full key, and the
flagged-examples report with file paths."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from torch.utils.data import Subset

from _app_overrides import SMALL
from _user_code import DefaultClassesModule, UserDataModule
from datadiet.app import config_dir, run
from datadiet.app.user_code import model_arguments
from datadiet.data.labels import dataset_paths
from datadiet.detection import find_label_issues

ROOT = Path(__file__).resolve().parents[1]


def compose_small(tmp_path, *overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("config", overrides=[*SMALL, f"paths.output_dir={tmp_path}", *overrides])


# a model's num_classes default -------------------------------------------------------------------
def test_a_model_default_for_num_classes_stands_when_the_data_module_does_not_know_it():
    from datadiet.data import PruningDataModule

    target = {"_target_": "_user_code.DefaultClassesModule"}
    assert model_arguments(target, PruningDataModule.from_datamodule(UserDataModule())) == {}  # the default stands
    known = PruningDataModule.from_datamodule(UserDataModule(with_shape=True))
    assert model_arguments(target, known) == {"num_classes": 3}  # the data module's value wins where it has one
    assert DefaultClassesModule().num_classes == 3


def test_own_module_with_a_num_classes_default_runs_on_a_data_module_without_it(tmp_path):
    overrides = [o for o in SMALL if not o.startswith(("data", "model.net", "model="))]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=[
            *overrides, f"paths.output_dir={tmp_path}", "model=custom",
            "model._target_=_user_code.DefaultClassesModule", "data=custom", "data._target_=_user_code.UserDataModule",
            "test_metric=test/accuracy", "pruning.mode=dynamic",
        ])  # fmt: skip
    summary = run(cfg)
    assert summary["train_examples"] == 150 and 0 <= summary["test_metric_value"] <= 1


# one-line errors naming the full key -------------------------------------------------------------
def _datadiet(tmp_path, *overrides, **env):
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "WANDB_MODE": "offline"}
    environment.pop("HYDRA_FULL_ERROR", None)  # conftest sets it for in-process runs
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "datadiet.app", *SMALL, f"hydra.run.dir={tmp_path}", *overrides],
        capture_output=True, text=True, timeout=120, env=environment, cwd=tmp_path, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_a_bad_setting_prints_one_line_naming_its_full_key(tmp_path):
    line = "datadiet: error: `pruning.keep_fraction` must be in (0, 1], got 1.5"
    result = _datadiet(tmp_path, "pruning.keep_fraction=1.5")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [line]  # one line, no traceback
    assert not (tmp_path / "summary.json").exists()


def test_one_line_errors_prints_the_message_and_exits_2_unless_the_traceback_is_asked_for(capsys, monkeypatch):
    from datadiet.app.cli import one_line_errors
    from datadiet.app.config_checks import SettingsError

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as done, one_line_errors(SettingsError):
        raise SettingsError("`callbacks.mine._target_=x.Y` cannot be imported")
    assert done.value.code == 2
    assert capsys.readouterr().err == "datadiet: error: `callbacks.mine._target_=x.Y` cannot be imported\n"
    with pytest.raises(RuntimeError), one_line_errors(SettingsError):  # not a settings error: as it was
        raise RuntimeError("a bug")
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(SettingsError), one_line_errors(SettingsError):  # HYDRA_FULL_ERROR=1: the traceback
        raise SettingsError("shown with its traceback")


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["pruning.keep_fraction=1.5"], r"^`pruning.keep_fraction` must be in \(0, 1\], got 1.5$"),
        (["pruning.keep_fraction=0"], r"^`pruning.keep_fraction` must be in \(0, 1\], got 0"),
        (["pruning.mode=dynamic", "pruning.anneal_fraction=2"], r"^`pruning.anneal_fraction` must be a number in \["),
        (["pruning.mode=dynamic", "pruning.prune_ratio=-0.5"], r"^`pruning.prune_ratio` must be a number in \[0, 1\)"),
    ],
)
def test_numeric_checks_name_the_full_dotted_key(tmp_path, overrides, match):
    from datadiet.app.plan import RunPlan

    with pytest.raises(ValueError, match=match):
        RunPlan.from_config(compose_small(tmp_path, *overrides))


# flagged examples with their files ---------------------------------------------------------------
def _image_folder(root, per_class=12, wrong=2):
    """Red images in ``red/``, blue ones in ``blue/``, and ``wrong`` red images filed under ``blue/``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, channel in (("blue", 2), ("red", 0)):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, size=(8, 8, 3), dtype=np.uint8)
            pixels[..., channel] = 255
            Image.fromarray(pixels).save(root / label / f"{label}_{i}.png")
    for i in range(wrong):
        pixels = np.zeros((8, 8, 3), dtype=np.uint8)
        pixels[..., 0] = 255
        Image.fromarray(pixels).save(root / "blue" / f"actually_red_{i}.png")


def test_dataset_paths_reads_image_folder_samples_a_subset_and_a_paths_attribute(tmp_path):
    from torchvision.datasets import ImageFolder

    _image_folder(tmp_path / "images", per_class=2, wrong=1)
    folder = ImageFolder(str(tmp_path / "images"))
    names = [Path(p).relative_to(tmp_path / "images").as_posix() for p in dataset_paths(folder)]
    assert names == ["blue/actually_red_0.png", "blue/blue_0.png", "blue/blue_1.png", "red/red_0.png", "red/red_1.png"]
    assert [Path(p).name for p in dataset_paths(Subset(folder, [3, 0]))] == ["red_0.png", "actually_red_0.png"]

    class WithPaths(list):
        paths = ("a.wav", "b.wav")

    assert dataset_paths(WithPaths([0, 1])) == ["a.wav", "b.wav"]
    assert dataset_paths(WithPaths([0, 1, 2])) is None  # not one per example: not trusted
    assert dataset_paths([(0, 1), (1, 0)]) is None


def test_flagged_examples_csv_has_a_path_column_when_given_paths(tmp_path):
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([[0.9, 0.1], [0.1, 0.9], [0.2, 0.8], [0.8, 0.2]])  # 1 and 3 disagree with their labels
    issues = find_label_issues(labels, probabilities)
    paths = ["a.png", "b,with comma.png", "c.png", "d.png"]
    rows = list(csv.reader(issues.save_flagged(tmp_path / "flagged.csv", labels, paths=paths).open()))
    assert rows[0] == ["original_index", "given_label", "predicted_label", "score", "path"]
    assert {(row[0], row[4]) for row in rows[1:]} == {("1", "b,with comma.png"), ("3", "d.png")}


def test_the_app_writes_each_flagged_example_s_file_for_an_image_folder(tmp_path):
    _image_folder(tmp_path / "images", per_class=12, wrong=2)
    overrides = [o for o in SMALL if not o.startswith(("data", "model.net", "probe.model.net", "pruning.mislabelled"))]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=[
            *overrides, f"paths.output_dir={tmp_path / 'run'}", "data=imagefolder", f"data.root={tmp_path / 'images'}",
            "data.image_size=8", "data.num_workers=0", "data.test_fraction=0.2", "data.val_fraction=0.0",
            "data.batch_size=8", "model.net.hidden_sizes=[16]", "probe.model.net.hidden_sizes=[16]", "probe.epochs=4",
            "pruning.mislabelled=keep", "pruning.keep_fraction=0.5",
        ])  # fmt: skip
    run(cfg)
    rows = list(csv.DictReader((tmp_path / "run" / "flagged_examples.csv").open()))
    assert rows, "the detector flagged nothing: the test's mislabelled images are meant to be found"
    for row in rows:  # each path is the image of that original index, filed under its given label's folder
        path = Path(row["path"])
        assert path.is_file() and path.parent.name == ("blue", "red")[int(row["given_label"])]
    assert any(Path(row["path"]).name.startswith("actually_red") for row in rows)


def test_a_built_in_data_source_s_own_check_names_the_data_key_in_one_line(tmp_path):
    from datadiet.app.config_checks import SettingsError

    with pytest.raises(SettingsError, match=r"^`data.val_fraction` must be in \[0, 1\), got 1.5$"):
        run(compose_small(tmp_path, "data.val_fraction=1.5"))
    assert not (tmp_path / "probe").exists()
