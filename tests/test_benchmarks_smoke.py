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
@pytest.mark.parametrize(
    "name",
    [
        "overhead",
        "pruned_speed",
        "scale",
        "quality",
        "frontier",
        "one_pass_bound",
        "label_issues",
        "streaming",
        "transfer",
        "sweep_on_subset",
        "score_shards",
    ],
)
def test_benchmark_runs_quick(name, tmp_path, benchmarks_importable, capsys):
    module = importlib.import_module(f"benchmarks.{name}")
    result = module.main(["--quick", "--results", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "machine:" in printed
    assert result
    assert list(tmp_path.glob("*.csv")), f"{name} wrote no CSV"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["overhead", "pruned_speed"])
def test_resnet18_amp_setup_runs_on_cpu(name, tmp_path, benchmarks_importable, capsys):
    """The CUDA benchmarks' setup (ResNet-18, random 32x32 images, bf16 AMP), run on the CPU at tiny size."""
    module = importlib.import_module(f"benchmarks.{name}")
    result = module.main(["--quick", "--model", "resnet18", "--results", str(tmp_path)])
    assert "ResNet-18 bf16 AMP" in capsys.readouterr().out
    assert result and list(tmp_path.glob("*_cpu_resnet18.csv"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, options", [("frontier", ["--regimes", "e", "--seeds", "1"]), ("overhead", ["--model", "lm"])]
)
def test_language_model_setups_run_quick(name, options, tmp_path, benchmarks_importable, capsys):
    """Regime (e) of the frontier and the overhead benchmark's byte-level LM, at tiny size."""
    module = importlib.import_module(f"benchmarks.{name}")
    result = module.main(["--quick", "--results", str(tmp_path), *options])
    printed = capsys.readouterr().out
    assert result and ("bits per byte" in printed or "TinyGPT" in printed)


@pytest.mark.slow
def test_causal_lm_example_runs_quick():
    import subprocess

    completed = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "causal_lm.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.count("held-out bits per byte") == 3
