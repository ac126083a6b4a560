"""Eval-pass scores (entropy, uncertainty_margin, loss, grand) against independent references."""

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from scipy.special import log_softmax
from scipy.stats import entropy as scipy_entropy
from torch import nn
from torch.utils.data import TensorDataset

from datadiet import DifficultyCallback, PruningDataModule
from datadiet.scores import get_score
from datadiet.scores.grand import exact_gradient_norm


@pytest.fixture
def batch():
    rng = np.random.default_rng(1)
    return rng.normal(size=(6, 4)).astype(np.float32) * 2, rng.integers(4, size=6)


def scored(name, z, y, **options):
    score = get_score(name)(len(y), **options)
    score.update(torch.arange(len(y)), torch.tensor(z), torch.tensor(y))
    score.end_scoring()
    return score.compute()


def test_entropy_matches_scipy(batch):
    z, y = batch
    oriented, raw = scored("entropy", z, y)
    expected = scipy_entropy(np.exp(log_softmax(z.astype(np.float64), axis=1)), axis=1)
    np.testing.assert_allclose(raw, expected, rtol=1e-5)
    np.testing.assert_array_equal(oriented, raw)
    assert get_score("entropy").requires_labels is False


def test_uncertainty_margin_worked_case_and_orientation():
    p = np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]])
    oriented, raw = scored("uncertainty_margin", np.log(p).astype(np.float32), np.array([0, 0]))
    np.testing.assert_allclose(raw, [0.5, 0.05], rtol=1e-5)
    np.testing.assert_allclose(oriented, [-0.5, -0.05], rtol=1e-5)  # the flat prediction ranks harder


def test_loss_matches_scipy(batch):
    z, y = batch
    oriented, raw = scored("loss", z, y)
    expected = -log_softmax(z.astype(np.float64), axis=1)[np.arange(len(y)), y]
    np.testing.assert_allclose(raw, expected, rtol=1e-5)
    np.testing.assert_array_equal(oriented, raw)


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 5), nn.Tanh())
        self.head = nn.Linear(5, 4)

    def forward(self, x):
        return self.head(self.body(x))


def autograd_norms(model, x, y, parameters):
    norms = []
    for i in range(len(y)):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        norms.append(torch.sqrt(sum(p.grad.pow(2).sum() for p in parameters)).item())
    return np.array(norms)


def test_grand_closed_form_equals_last_layer_autograd():
    torch.manual_seed(0)
    model, x, y = TinyNet(), torch.randn(7, 3), torch.randint(4, (7,))
    expected = autograd_norms(model, x, y, list(model.head.parameters()))
    score = get_score("grand")(7)
    with torch.no_grad():
        h = model.body(x)
        score.update(torch.arange(7), model.head(h), y, features=h)
    np.testing.assert_allclose(score.compute()[1], expected, rtol=1e-5)


def test_grand_exact_equals_full_autograd():
    torch.manual_seed(0)
    model, x, y = TinyNet().eval(), torch.randn(7, 3), torch.randint(4, (7,))
    expected = autograd_norms(model, x, y, list(model.parameters()))
    with torch.no_grad():  # the scoring pass runs under no_grad: torch.func ignores it
        got = exact_gradient_norm(model, x, y, chunk_size=3)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)


class TinyModule(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = TinyNet()

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("exact", [False, True])
def test_grand_through_the_callback(exact):
    torch.manual_seed(0)
    x, y = torch.randn(40, 3), torch.randint(4, (40,))
    module = TinyModule()
    callback = DifficultyCallback(scores=["grand", "entropy"], score_options={"grand": {"exact": exact}})
    trainer = pl.Trainer(
        max_epochs=1,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=PruningDataModule(TensorDataset(x, y), batch_size=16))
    module.eval()
    params = list(module.parameters()) if exact else list(module.net.head.parameters())
    expected = autograd_norms(module, x, y, params)
    np.testing.assert_allclose(callback.score_table["grand"], expected, rtol=1e-4)


def test_grand_options_are_validated():
    with pytest.raises(ValueError, match="chunk_size"):
        get_score("grand")(3, chunk_size=0)
    with pytest.raises(ValueError, match="score_options"):
        DifficultyCallback(scores=["el2n"], score_options={"grand": {"exact": True}})
