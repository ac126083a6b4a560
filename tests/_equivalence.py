"""Runs an equivalence script of ``tests/ddp_scripts/`` on 2 processes (gloo, CPU) and on 1, for comparison."""

import importlib
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

SCRIPTS = Path(__file__).parent / "ddp_scripts"


def load_script(name: str) -> ModuleType:
    """Imports ``tests/ddp_scripts/<name>.py`` from pytest's process (the scripts import each other)."""
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    return importlib.import_module(name)


def one_and_two_processes(script: ModuleType, out: Path) -> tuple[dict, dict, dict]:
    """The arrays rank 0 of 1, rank 0 of 2 and rank 1 of 2 saved.

    The 2-process run is the script in a subprocess, never pytest's process: Lightning's DDP launcher
    re-executes ``sys.argv`` for rank 1. The 1-process run is its ``run_all(out, devices=1)``, here.
    """
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, str(script.__file__), "--out", str(out), "--devices", "2"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    script.run_all(out, devices=1)
    load = lambda name: dict(np.load(out / name, allow_pickle=False))  # noqa: E731
    return load("rank0_of1.npz"), load("rank0_of2.npz"), load("rank1_of2.npz")
