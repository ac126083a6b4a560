"""Test-wide settings: W&B offline, a private dataset cache, quiet Lightning."""

import logging
import os
import warnings

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DISABLE_GIT", "true")
os.environ.setdefault("HYDRA_FULL_ERROR", "1")
warnings.filterwarnings("ignore", message=".*does not have many workers.*")


@pytest.fixture(autouse=True, scope="session")
def _private_dataset_cache(tmp_path_factory):
    """Generated datasets (MNIST-1D) are cached in a per-session folder, never downloaded."""
    if "DATADIET_CACHE" not in os.environ:
        os.environ["DATADIET_CACHE"] = str(tmp_path_factory.mktemp("datadiet-cache"))
    yield


@pytest.fixture(autouse=True)
def _lightning_log_levels():
    """A benchmark's ``main`` (run in-process by the smoke tests) quietens Lightning's loggers for good; the tests
    that read its INFO messages (the callbacks' ``rank_zero_info``) start from the levels found here instead."""
    loggers = [logging.getLogger(name) for name in ("lightning", "lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    yield
    for logger, level in zip(loggers, levels):
        logger.setLevel(level)
