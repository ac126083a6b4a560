"""Every benchmark script runs end to end on tiny sizes (``--quick``); timing targets are not asserted."""

import importlib
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def benchmarks_importable():
    sys.path.insert(0, str(ROOT))
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # the scripts set their own thread count
    sys.path.remove(str(ROOT))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["overhead", "pruned_speed", "scale", "quality"])
def test_benchmark_runs_quick(name, tmp_path, benchmarks_importable, capsys):
    module = importlib.import_module(f"benchmarks.{name}")
    result = module.main(["--quick", "--results", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "machine:" in printed
    assert result
    assert list(tmp_path.glob("*.csv")), f"{name} wrote no CSV"
