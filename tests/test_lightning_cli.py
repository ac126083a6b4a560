"""``datadiet.cli.PruningCLI``: your LightningCLI script with the pruning callbacks in YAML — the data module
wrapped (its ``save_hyperparameters()`` intact), ``--help`` for the callbacks, and resume by ``--ckpt_path``."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from datadiet import PruningDataModule
from datadiet.cli import PruningCLI, wrap_datamodule

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "lightning_cli"
sys.path.insert(0, str(EXAMPLE))  # model_and_data, as train.py sees it

from model_and_data import ClusterClassifier, ClusterData

QUIET = ["--trainer.logger=false", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


@pytest.fixture(autouse=True)
def _no_pytest_arguments(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["train.py"])  # LightningCLI reads sys.argv too


def test_the_data_module_is_wrapped_and_keeps_its_hyperparameters(tmp_path):
    cli = PruningCLI(ClusterClassifier, ClusterData, run=False, args=[
        "--data.num_samples=100", f"--trainer.default_root_dir={tmp_path}", *QUIET,
    ])  # fmt: skip
    assert isinstance(cli.datamodule, PruningDataModule) and cli.datamodule.num_examples == 80  # 4/5 of 100
    assert cli.datamodule.hparams["num_samples"] == 100 and cli.datamodule.hparams["batch_size"] == 32
    assert wrap_datamodule(cli.datamodule) is cli.datamodule and wrap_datamodule(None) is None


@pytest.mark.parametrize("callback, arguments", [
    ("PruneDuringFit", ["after_epochs", "keep_fraction", "strategy", "score"]),
    ("DynamicPruning", ["prune_ratio", "anneal_fraction"]),
])  # fmt: skip
def test_help_lists_each_pruning_callback_s_arguments(capsys, callback, arguments):
    with pytest.raises(SystemExit) as done:
        PruningCLI(ClusterClassifier, ClusterData, args=["fit", "--trainer.callbacks.help", callback])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for name in arguments:
        assert f"--trainer.callbacks.{name} " in text


RECORDER = '''
import json
import lightning.pytorch as L

class SeenIndices(L.Callback):
    """Appends, per training batch, the epoch and the original indices that reach training_step."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        with open("seen.jsonl", "a") as f:
            f.write(json.dumps([trainer.current_epoch, trainer.datamodule.batch_original_index.tolist()]) + "\\n")
'''


def _train(folder, *arguments):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(folder)]), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "train.py", "fit", "-c", "config.yaml", "--trainer.callbacks+=recorder.SeenIndices",
         *arguments],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _seen(folder):
    import json

    rows = [json.loads(line) for line in (folder / "seen.jsonl").read_text().splitlines()]
    (folder / "seen.jsonl").unlink()
    epochs = {}
    for epoch, indices in rows:
        epochs.setdefault(epoch, []).extend(indices)
    return epochs


def _kept(checkpoint):
    return torch.load(checkpoint, weights_only=False)["PruningDataModule"]["kept_indices"].numpy()


@pytest.mark.slow
def test_the_example_config_prunes_and_resumes_by_ckpt_path_on_the_same_kept_set(tmp_path):
    folder = tmp_path / "lightning_cli"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("runs", "__pycache__"))
    (folder / "recorder.py").write_text(RECORDER)
    first = _train(folder, "--trainer.max_epochs=3")
    assert "kept 240 of 480 examples" in first.stderr + first.stdout
    seen = _seen(folder)
    last = folder / "runs" / "checkpoints" / "last.ckpt"
    kept = _kept(last)
    assert len(kept) == 240 and len(np.unique(kept)) == 240
    assert sorted(seen[0]) == list(range(480))  # the first epoch on all data (DynamicPruning skips from the second)
    assert set(seen[2]) <= set(kept.tolist()) and len(seen[2]) < 240  # then the kept half, less what InfoBatch skips
    shutil.copy(last, tmp_path / "after_3_epochs.ckpt")

    resumed = _train(folder, "--trainer.max_epochs=5", f"--ckpt_path={tmp_path / 'after_3_epochs.ckpt'}")
    assert "Restored all states" in resumed.stderr + resumed.stdout
    seen = _seen(folder)
    assert sorted(seen) == [3, 4]  # the resumed session trains epochs 4 and 5 only
    np.testing.assert_array_equal(_kept(last), kept)  # the same kept set after resume
    for epoch in (3, 4):  # still only kept examples reach training_step (the last epoch anneals: all of them)
        assert set(seen[epoch]) <= set(kept.tolist())
    assert sorted(seen[4]) == sorted(kept.tolist())
