"""Every registered score's statistics survive a checkpoint: ``load_state_dict(state_dict())`` gives the same
state (torchmetrics' round-trip check), read back through the same public ``Scorer`` the callbacks use."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from _modules import LitClassifier, quiet_trainer
from datadiet import DifficultyCallback, PruningDataModule, list_scores

N, D, K = 24, 4, 3
#: Constructor arguments a score needs on 24 examples.
OPTIONS = {"prototype_distance": {"num_clusters": 2}, "rho_loss": {"irreducible_losses": np.linspace(0.0, 1.0, N)}}


def assert_same_state(restored, saved, where="state"):
    if isinstance(saved, torch.Tensor):
        assert isinstance(restored, torch.Tensor) and restored.dtype == saved.dtype, where
        torch.testing.assert_close(restored.cpu(), saved.cpu(), rtol=0, atol=0, equal_nan=True, msg=where)
    elif isinstance(saved, np.ndarray):
        np.testing.assert_array_equal(restored, saved, err_msg=where)
    elif isinstance(saved, dict):
        assert set(restored) == set(saved), where
        for key, value in saved.items():
            assert_same_state(restored[key], value, f"{where}[{key!r}]")
    elif isinstance(saved, (list, tuple)):
        assert len(restored) == len(saved), where
        for i, (a, b) in enumerate(zip(restored, saved)):
            assert_same_state(a, b, f"{where}[{i}]")
    else:
        both_nan = isinstance(saved, float) and np.isnan(saved) and np.isnan(restored)
        assert restored == saved or both_nan, where


@pytest.mark.parametrize("name", list_scores())
def test_every_score_state_round_trips(name):
    torch.manual_seed(0)
    x = torch.randn(N, D)
    dm = PruningDataModule(TensorDataset(x, x[:, :K].argmax(dim=1)), batch_size=8)
    options = {name: OPTIONS[name]} if name in OPTIONS else None
    callback = DifficultyCallback(scores=[name], score_options=options)
    model = LitClassifier(nn.Sequential(nn.Linear(D, 8), nn.ReLU(), nn.Linear(8, K)), lr=0.5)
    quiet_trainer(max_epochs=2, callbacks=[callback]).fit(model, datamodule=dm)
    saved = callback.state_dict()
    assert saved["epochs_recorded"] == 2 and name in saved["scores"]
    restored = DifficultyCallback(scores=[name], score_options=options)
    restored.scorer.build(dm)
    restored.load_state_dict(saved)
    assert_same_state(restored.state_dict(), saved)
