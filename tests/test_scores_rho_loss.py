"""rho_loss: the holdout split, the cached irreducible losses and their cost, cross-fitting, and the score itself."""

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from scipy.special import log_softmax
from torch import nn
from torch.utils.data import TensorDataset

from datadiet.scores import ScoreContext, get_score
from datadiet.scores.rho_loss import fit_irreducible_losses, holdout_split, irreducible_losses


class Linear(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(2, 2)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        return nn.functional.cross_entropy(self(batch[0]), batch[1])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


TRAINER = {"max_epochs": 3, "enable_progress_bar": False, "accelerator": "cpu"}


@pytest.fixture
def dataset():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 2, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long())


def test_holdout_split_is_seeded_and_sized():
    first = holdout_split(100, 0.3, seed=4)
    assert len(first) == 30 and np.array_equal(first, holdout_split(100, 0.3, seed=4))
    assert not np.array_equal(first, holdout_split(100, 0.3, seed=5))
    with pytest.raises(ValueError, match="holdout_fraction"):
        holdout_split(100, 1.0)


def test_cross_fit_scores_every_example_with_a_model_that_never_saw_it(dataset, tmp_path):
    losses = irreducible_losses(dataset, Linear, 0.5, seed=0, trainer_kwargs=TRAINER, cache_path=tmp_path / "il.npz")
    assert losses.shape == (60,) and np.isfinite(losses).all()
    # reference for the non-holdout half: retrain the same seeded model on the holdout and evaluate by hand
    holdout = holdout_split(60, 0.5, seed=0)
    rest = np.setdiff1d(np.arange(60), holdout)
    pl.seed_everything(0, workers=True, verbose=False)
    model = Linear()
    pl.Trainer(enable_checkpointing=False, logger=False, enable_model_summary=False, **TRAINER).fit(
        model,
        torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, holdout.tolist()), batch_size=128, shuffle=True),
    )
    x, y = dataset.tensors
    with torch.no_grad():
        z = model(x[rest]).double().numpy()
    expected = -log_softmax(z, axis=1)[np.arange(len(rest)), y[rest].numpy()]
    np.testing.assert_allclose(losses[rest], expected, rtol=1e-5)
    # the cache is read back without training
    again = irreducible_losses(dataset, lambda: pytest.fail("retrained"), 0.5, cache_path=tmp_path / "il.npz")
    np.testing.assert_array_equal(again, losses)


def test_without_cross_fit_holdout_is_nan(dataset):
    losses = irreducible_losses(dataset, Linear, 0.25, cross_fit=False, seed=1, trainer_kwargs=TRAINER)
    holdout = holdout_split(60, 0.25, seed=1)
    assert np.isnan(losses[holdout]).all() and np.isfinite(np.delete(losses, holdout)).all()


def test_score_is_probe_loss_minus_irreducible_loss(tmp_path):
    z = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32)
    y = np.array([0, 0, 1])
    irreducible = np.array([0.1, 0.2, 0.3])
    np.savez(tmp_path / "il.npz", irreducible_loss=irreducible)
    for source in (irreducible, tmp_path / "il.npz"):
        score = get_score("rho_loss")(3, irreducible_losses=source)
        score.update(torch.arange(3), torch.tensor(z), torch.tensor(y))
        score.end_scoring()
        score.finalize(ScoreContext())
        oriented, raw = score.compute()
        expected = -log_softmax(z.astype(np.float64), axis=1)[np.arange(3), y] - irreducible
        np.testing.assert_allclose(raw, expected, atol=1e-6)
        np.testing.assert_array_equal(oriented, raw)


def test_missing_irreducible_losses_is_a_clear_error():
    score = get_score("rho_loss")(3)
    with pytest.raises(ValueError, match="irreducible_losses"):
        score.finalize(ScoreContext())


def test_fit_irreducible_losses_records_its_cost(dataset, tmp_path):
    data = dataset  # 60 examples: a holdout of 15 trains 3 epochs, the other 45 are scored
    options = dict(seed=0, batch_size=8, trainer_kwargs=TRAINER)
    record = fit_irreducible_losses(data, Linear, 0.25, cross_fit=False, cache_path=tmp_path / "il.npz", **options)
    assert len(record.holdout_indices) == 15 and np.isnan(record.losses[record.holdout_indices]).all()
    assert record.train_presentations == 3 * 15 and record.scored_examples == 45
    assert record.flops_per_example == 2 * 2 * 2  # one 2 x 2 matrix product: 2 FLOPs per multiply-add
    cached = fit_irreducible_losses(data, lambda: pytest.fail("retrained"), 0.25, cache_path=tmp_path / "il.npz")
    np.testing.assert_array_equal(cached.losses, record.losses)
    assert (cached.train_presentations, cached.scored_examples, cached.flops_per_example) == (45, 45, 8.0)
    crossed = fit_irreducible_losses(data, Linear, 0.25, cross_fit=True, **options)
    assert np.isfinite(crossed.losses).all() and crossed.train_presentations == 3 * 60 and crossed.scored_examples == 60
    (tmp_path / "torn.npz").write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="cannot be read"):
        again = fit_irreducible_losses(data, Linear, 0.25, cross_fit=False, cache_path=tmp_path / "torn.npz", **options)
    np.testing.assert_allclose(again.losses, record.losses)
