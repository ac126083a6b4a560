"""Config groups: every option composes, the typed schemas reject typos and wrong types naming the key,
the image sources and ResNet-18 instantiate offline, and the configs ship inside the wheel."""

import csv
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from datadiet.app import config_dir

ROOT = Path(__file__).resolve().parents[1]


def compose_with(*overrides, hydra_config=False):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(
            "config", overrides=["paths.output_dir=/tmp/unused", *overrides], return_hydra_config=hydra_config
        )


def _message(error) -> str:
    """The exception's text and its causes' (Hydra wraps OmegaConf's error, which names the full key)."""
    texts, exception = [], error.value
    while exception is not None:
        texts.append(str(exception))
        exception = exception.__cause__
    return "\n".join(texts)


GROUP_OPTIONS = {
    "data": ["mnist1d", "digits", "synthetic", "cifar10", "cifar100", "imagefolder"],
    "model": ["mlp", "cnn1d", "resnet18"],
    "model@probe.model": ["mlp", "cnn1d", "resnet18"],
    "trainer": ["default", "cpu", "gpu"] + (["ddp"] if (ROOT / "conf/trainer/ddp.yaml").exists() else []),
    "logger": ["default", "csv", "wandb", "none"],
}


@pytest.mark.parametrize("group, option", [(g, o) for g, options in GROUP_OPTIONS.items() for o in options])
def test_every_option_composes(group, option):
    cfg = compose_with(f"{group}={option}")
    node = OmegaConf.select(cfg, group.split("@")[-1]) if group != "logger" else cfg.logger
    assert option == "none" or node is not None


@pytest.mark.parametrize("launcher", ["basic", "joblib", "submitit_slurm"])
def test_every_launcher_composes(launcher):
    cfg = compose_with(f"hydra/launcher={launcher}", hydra_config=True)
    assert launcher.split("_")[0] in cfg.hydra.launcher._target_.lower()
    assert cfg.hydra.callbacks.scaling_curve._target_ == "datadiet.report.ScalingCurveCallback"


def test_the_log_file_is_named_after_the_app():
    assert compose_with(hydra_config=True).hydra.job.name == "datadiet"  # <run dir>/datadiet.log


@pytest.mark.parametrize("logger", ["csv", "default"])
def test_each_session_in_a_run_directory_keeps_its_own_csv_metrics(tmp_path, logger):
    cfg = compose_with(f"logger={logger}")
    for session in range(2):  # e.g. a run, then a rerun in the same directory that resumes it
        csv_logger = instantiate(cfg.logger.csv, save_dir=str(tmp_path))
        csv_logger.log_metrics({"session": session})
        csv_logger.finalize("success")
    files = sorted(tmp_path.rglob("metrics.csv"))
    assert [path.parent.name for path in files] == ["version_0", "version_1"]
    assert [[row["session"] for row in csv.DictReader(path.open())] for path in files] == [["0"], ["1"]]


def test_groups_are_typed_by_their_schemas():
    cfg = compose_with("model@probe.model=mlp")
    types = {key: OmegaConf.get_type(node) for key, node in
             [("data", cfg.data), ("model", cfg.model), ("probe", cfg.probe), ("probe.model", cfg.probe.model),
              ("pruning", cfg.pruning), ("trainer", cfg.trainer), ("wandb", cfg.logger.wandb), ("csv", cfg.logger.csv)]}  # fmt: skip
    assert {key: t.__name__ for key, t in types.items()} == {
        "data": "MNIST1DConfig", "model": "ClassifierConfig", "probe": "ProbeConfig", "probe.model": "ClassifierConfig",
        "pruning": "PruningConfig", "trainer": "TrainerConfig", "wandb": "WandbLoggerConfig", "csv": "CSVLoggerConfig",
    }  # fmt: skip


@pytest.mark.parametrize(
    "override, key",
    [
        ("pruning.keep_fracton=0.3", "pruning.keep_fracton"),  # typo
        ("pruning.keep_fraction=lots", "pruning.keep_fraction"),  # wrong type
        ("probe.epochs=2.5", "probe.epochs"),
        ("pruning.class_balanced=maybe", "pruning.class_balanced"),
        ("trainer.devise=2", "trainer.devise"),
        ("trainer.log_every_n_steps=often", "trainer.log_every_n_steps"),
        ("data.num_samples=many", "data.num_samples"),
        ("model.lr=fast", "model.lr"),
        ("probe.model.lr=fast", "probe.model.lr"),
        ("logger.wandb.projet=x", "logger.wandb.projet"),
        ("max_epochs=ten", "max_epochs"),
    ],
)
def test_typo_or_wrong_type_fails_naming_the_key(override, key):
    with pytest.raises((ConfigCompositionException, OmegaConfBaseException)) as error:
        compose_with(override)
    assert f"full_key: {key}" in _message(error), _message(error)


def test_a_typo_in_a_users_own_config_file_fails_naming_the_key(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.yaml").write_text(
        textwrap.dedent(
            """\
            defaults:
              - /datadiet_schema/data/synthetic@_here_
              - _self_
            num_sample: 100
            """
        )
    )
    with pytest.raises(ConfigCompositionException) as error:
        compose_with(f"hydra.searchpath=[file://{tmp_path}]", "data=mine")
    assert "full_key: data.num_sample" in _message(error) and "SyntheticConfig" in _message(error)


def test_cifar_configs_resolve_without_downloading(tmp_path, monkeypatch):
    monkeypatch.setenv("DATADIET_DATA", str(tmp_path))
    cfg = compose_with("data=cifar100", "model=resnet18", "trainer=gpu")
    assert cfg.data.root == str(tmp_path) and cfg.data._target_.endswith("cifar100_datamodule")
    assert cfg.trainer.accelerator == "gpu" and cfg.model.optimizer == "sgd"
    assert not any(tmp_path.iterdir()), "composing must not download"


def test_resnet18_has_a_cifar_stem():
    cfg = compose_with("model=resnet18")
    model = instantiate(cfg.model, input_shape=[3, 32, 32], num_classes=10)
    assert model.net.conv1.kernel_size == (3, 3) and model.net.conv1.stride == (1, 1)
    assert isinstance(model.net.maxpool, torch.nn.Identity)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_imagefolder_source_reads_class_folders(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(10):
            pixels = rng.integers(0, 255, size=(12, 10, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / label / f"{i}.png")
    cfg = compose_with("data=imagefolder", f"data.root={tmp_path}", "data.image_size=8", "data.num_workers=0")
    dm = instantiate(cfg.data)
    assert dm.num_classes == 2 and dm.input_shape == (3, 8, 8)
    assert dm.num_examples + len(dm.val_dataset) + len(dm.test_dataset) == 20
    assert sorted(set(dm.labels.tolist())) == [0, 1]
    x, y = next(iter(dm.test_dataloader()))
    assert x.shape[1:] == (3, 8, 8)
    assert len(dm.fingerprint()) == 16


@pytest.mark.slow
def test_configs_ship_in_the_wheel_and_compose_from_it(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("datadiet-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ("config.yaml", "data/cifar10.yaml", "model/resnet18.yaml", "trainer/gpu.yaml", "logger/wandb.yaml"):
        assert f"datadiet/conf/{path}" in names, path
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:  # what `pip install --target` does for a pure-Python wheel
        archive.extractall(target)
    script = textwrap.dedent(
        """\
        import datadiet, datadiet.app
        from hydra import compose, initialize_config_dir
        assert datadiet.__file__.startswith(%r), datadiet.__file__
        assert datadiet.app.config_dir().startswith(%r), datadiet.app.config_dir()
        with initialize_config_dir(config_dir=datadiet.app.config_dir(), version_base="1.3"):
            cfg = compose("config", overrides=["data=cifar10", "model=resnet18", "paths.output_dir=x"])
        print(cfg.data._target_, cfg.model.net._target_)
        """
    ) % (str(target), str(target))
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "cifar10_datamodule datadiet.models.resnet18" in result.stdout
