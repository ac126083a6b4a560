"""The eval-mode scoring pass feeds the model the dtype of the Trainer's precision, as Lightning's loops do."""

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from _modules import LitClassifier, quiet_trainer
from _reference import softmax
from datadiet import DifficultyCallback, PruningDataModule

N, D, K = 53, 5, 3


def test_el2n_under_64_true_matches_a_float64_numpy_reference():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(N, D)), dtype=torch.float32)  # float32 data, as loaders yield it
    y = torch.tensor(rng.integers(0, K, size=N), dtype=torch.long)
    module = LitClassifier(nn.Sequential(nn.Linear(D, 8), nn.Tanh(), nn.Linear(8, K)), lr=0.5)
    eval_input_dtypes = []

    def record_eval_input_dtype(mod, args):
        if not mod.training:
            eval_input_dtypes.append(args[0].dtype)

    module.register_forward_pre_hook(record_eval_input_dtype)
    callback = DifficultyCallback(scores="el2n")
    trainer = quiet_trainer(max_epochs=2, precision="64-true", callbacks=[callback], num_sanity_val_steps=0)
    trainer.fit(module, datamodule=PruningDataModule(TensorDataset(x, y), batch_size=16))

    assert eval_input_dtypes and set(eval_input_dtypes) == {torch.float64}
    # independent reference: the trained weights, a float64 forward pass and softmax in numpy
    (w1, b1), (w2, b2) = [(layer.weight.detach().numpy(), layer.bias.detach().numpy()) for layer in module.model[::2]]
    assert w1.dtype == np.float64
    z = np.tanh(x.numpy().astype(np.float64) @ w1.T + b1) @ w2.T + b2
    el2n = np.linalg.norm(softmax(z) - np.eye(K)[y.numpy()], axis=1)
    np.testing.assert_allclose(callback.score_table["el2n"], el2n, rtol=1e-6, atol=1e-7)
