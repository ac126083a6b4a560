"""Regression, multi-label and callable losses through the callbacks: the scores of the per-example loss work
(numpy references by hand), the scores of class probabilities are refused before anything trains."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from _modules import Regressor, quiet_trainer
from datadiet import Adapter, DifficultyCallback, DynamicPruning, PruneDuringFit, PruningDataModule
from datadiet.scores.rho_loss import per_example_loss

N, D = 40, 4


def regression_data(outputs=0, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(N, D, generator=generator, dtype=dtype)
    w = torch.randn(D, outputs or 1, generator=generator, dtype=dtype)
    y = torch.sin(x @ w) + 0.3 * torch.randn(N, outputs or 1, generator=generator, dtype=dtype)
    return TensorDataset(x, y if outputs else y.squeeze(1))


class CountingRegressor(Regressor):
    steps = 0

    def training_step(self, batch, batch_idx):
        CountingRegressor.steps += 1
        return super().training_step(batch, batch_idx)


def numpy_squared_errors(model, data):
    x, y = data.tensors
    with torch.no_grad():
        out = model(x).double().numpy()
    y = y.double().numpy()
    return ((out - y) ** 2).reshape(len(y), -1).mean(axis=1)


@pytest.mark.parametrize("outputs", [0, 3])
def test_loss_score_of_a_regressor_is_its_squared_error(outputs):
    data = regression_data(outputs)
    model = Regressor(outputs=outputs)
    callback = DifficultyCallback(scores=("loss", "grand"), adapter=Adapter(loss="mse"))
    quiet_trainer(max_epochs=2, callbacks=[callback]).fit(model, datamodule=PruningDataModule(data, batch_size=8))
    np.testing.assert_allclose(callback.score_table["loss"], numpy_squared_errors(model.eval(), data), rtol=1e-5)
    # GraNd's last-layer form with the squared error: ‖2 (ŷ − y) / D‖ · √(‖h‖² + 1), h the head's input
    x, y = data.tensors
    with torch.no_grad():
        h = model.net[1](model.net[0](x)).double().numpy()
        out = model.net(x).double().numpy()
    residual = out - y.double().numpy().reshape(N, -1)
    expected = np.linalg.norm(2 * residual / residual.shape[1], axis=1) * np.sqrt((h**2).sum(axis=1) + 1)
    np.testing.assert_allclose(callback.score_table["grand"], expected, rtol=1e-5)


def test_prune_during_fit_on_a_regressor_keeps_the_largest_errors():
    data = regression_data()
    model = Regressor(lr=0.0)
    prune = PruneDuringFit(
        after_epochs=1, score="loss", keep_fraction=0.25, strategy="hard", adapter=Adapter(loss="mse")
    )
    quiet_trainer(max_epochs=2, callbacks=[prune]).fit(model, datamodule=PruningDataModule(data, batch_size=8))
    errors = numpy_squared_errors(model, data)
    np.testing.assert_array_equal(prune.kept_indices, np.sort(np.argsort(-errors)[:10]))


def test_multi_label_loss_is_the_mean_binary_cross_entropy():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(N, D, generator=generator)
    hot = (torch.rand(N, 5, generator=generator) < 0.3).float()
    model = Regressor(outputs=5, criterion=F.binary_cross_entropy_with_logits)  # five labels
    callback = DifficultyCallback(scores=("loss",), adapter=Adapter(loss="bce"))
    data = TensorDataset(x, hot)
    quiet_trainer(max_epochs=1, callbacks=[callback]).fit(model, datamodule=PruningDataModule(data, batch_size=8))
    with torch.no_grad():
        z = model.eval()(x).double().numpy()
    sigma, t = 1 / (1 + np.exp(-z)), hot.double().numpy()
    expected = -(t * np.log(sigma) + (1 - t) * np.log(1 - sigma)).mean(axis=1)
    np.testing.assert_allclose(callback.score_table["loss"], expected, rtol=1e-5)


def test_callable_loss_reaches_loss_score_rho_loss_and_dynamic_pruning():
    data = regression_data()

    def cubed_error(output, batch):
        return (output - batch[1]).abs() ** 3

    adapter = Adapter(loss=cubed_error)
    model = Regressor(lr=0.0)
    callback = DifficultyCallback(scores=("loss",), adapter=adapter)
    pruning = DynamicPruning(prune_ratio=0.5, anneal_fraction=0.0, adapter=adapter)
    quiet_trainer(max_epochs=2, callbacks=[callback, pruning]).fit(
        model, datamodule=PruningDataModule(data, batch_size=8)
    )
    x, y = data.tensors
    with torch.no_grad():
        expected = np.abs(model(x).double().numpy() - y.double().numpy()) ** 3
    np.testing.assert_allclose(callback.score_table["loss"], expected, rtol=1e-5)
    np.testing.assert_allclose(pruning.scores, expected, rtol=1e-5)
    np.testing.assert_allclose(per_example_loss(model, data, np.arange(N), adapter=adapter), expected, rtol=1e-5)


@pytest.mark.parametrize("loss", ["mse", "l1", "bce", lambda output, batch: output.sum(dim=1)])
@pytest.mark.parametrize(
    "score", ["el2n", "margin", "aum", "forgetting", "confidence", "entropy", "uncertainty_margin"]
)
def test_class_probability_scores_are_refused_with_other_losses(loss, score):
    with pytest.raises(
        ValueError, match=rf"score '{score}' reads class probabilities .* use scores of the per-example loss"
    ):
        DifficultyCallback(scores=(score,), adapter=Adapter(loss=loss))


@pytest.mark.parametrize("score", ["entropy", "uncertainty_margin", "el2n"])
def test_class_probability_scores_on_a_one_output_regressor_are_refused_before_training(score):
    data = regression_data()
    CountingRegressor.steps = 0
    model = CountingRegressor(outputs=1)  # (B, 1): a softmax over one output is constant
    with pytest.raises(
        ValueError,
        match=rf"score '{score}' reads class probabilities .* got model outputs of shape "
        r"\(2, 1\); one output per example is a regressor: pass `Adapter\(loss='mse'\)`",
    ):
        quiet_trainer(max_epochs=1, callbacks=[DifficultyCallback(scores=(score,))]).fit(
            model, datamodule=PruningDataModule(data, batch_size=8)
        )
    assert CountingRegressor.steps == 0


def test_dynamic_pruning_of_a_regressor_without_adapter_is_refused_before_training():
    CountingRegressor.steps = 0
    with pytest.raises(
        ValueError,
        match=r"cross-entropy by default, but the labels are floating point \(2,\): for a "
        r"regressor pass `Adapter\(loss='mse'\)`",
    ):
        quiet_trainer(max_epochs=2, callbacks=[DynamicPruning()]).fit(
            CountingRegressor(), datamodule=PruningDataModule(regression_data(), batch_size=8)
        )
    assert CountingRegressor.steps == 0


def test_a_loss_that_is_not_one_value_per_example_is_refused_before_training():
    adapter = Adapter(loss=lambda output, batch: (output - batch[1]).square().mean())  # reduced to a scalar
    CountingRegressor.steps = 0
    with pytest.raises(
        ValueError, match=r"needs one loss per example, but the callable '<lambda>' returned \(\) for a batch of 2"
    ):
        quiet_trainer(max_epochs=1, callbacks=[DynamicPruning(adapter=adapter)]).fit(
            CountingRegressor(), datamodule=PruningDataModule(regression_data(), batch_size=8)
        )
    assert CountingRegressor.steps == 0


def test_grand_closed_form_refuses_sequences_and_callables_and_exact_works():
    with pytest.raises(ValueError, match=r"grand's last-layer closed form .*'exact': True"):
        quiet_trainer(
            max_epochs=1,
            callbacks=[
                DifficultyCallback(
                    scores=("grand",), adapter=Adapter(loss=lambda output, batch: (output - batch[1]).abs())
                )
            ],
        ).fit(Regressor(), datamodule=PruningDataModule(regression_data(), batch_size=8))
    data = regression_data()
    model = Regressor()
    callback = DifficultyCallback(
        scores=("grand",), adapter=Adapter(loss="mse"), score_options={"grand": {"exact": True}}
    )
    quiet_trainer(max_epochs=1, callbacks=[callback]).fit(model, datamodule=PruningDataModule(data, batch_size=8))
    model.eval()
    x, y = data.tensors
    expected = []
    for i in range(N):  # the reference: one backward of each example's squared error
        model.zero_grad()
        ((model(x[i : i + 1]) - y[i : i + 1]) ** 2).sum().backward()
        expected.append(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in model.parameters())).item())
    np.testing.assert_allclose(callback.score_table["grand"], expected, rtol=1e-4)


def test_a_constant_score_is_never_pruned_as_hard():
    dm = PruningDataModule(regression_data(), batch_size=8)
    with pytest.raises(
        ValueError,
        match=r"score 'entropy' is -0.0 for every scored example \(40 in the table\): strategy 'hard' would keep "
        "an arbitrary subset",
    ):
        dm.prune(np.full(N, -0.0), score="entropy", keep_fraction=0.5, strategy="hard")
    assert len(dm.prune(np.full(N, -0.0), score="entropy", keep_fraction=0.5, strategy="random")) == 20
    assert dm.kept_indices is not None  # random needs no score


def test_pruning_datamodule_takes_input_shape_and_num_classes():
    dm = PruningDataModule(regression_data(), input_shape=(D,), num_classes=1)
    assert dm.input_shape == (D,) and dm.num_classes == 1
    with pytest.raises(
        ValueError, match=r"`input_shape` must be a sequence of positive integers, e.g. \(1, 28, 28\), got \(0, 4\)"
    ):
        PruningDataModule(regression_data(), input_shape=(0, 4))
    with pytest.raises(ValueError, match="`num_classes` must be a positive integer, got 0"):
        PruningDataModule(regression_data(), num_classes=0)


def test_soft_targets_rank_by_the_soft_label_loss():
    # mixup / cutmix in the batch (timm, torchvision v2) gives probability targets: the loss is the training loss
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(N, D, generator=generator)
    soft = torch.softmax(torch.randn(N, 3, generator=generator), dim=1)
    model = Regressor(outputs=3, lr=0.0, criterion=F.cross_entropy)
    pruning = DynamicPruning(prune_ratio=0.5, anneal_fraction=0.0)
    callback = DifficultyCallback(scores=("loss",))
    quiet_trainer(max_epochs=2, callbacks=[pruning, callback]).fit(
        model, datamodule=PruningDataModule(TensorDataset(x, soft), batch_size=8)
    )
    with torch.no_grad():
        z = model(x).double().numpy()
    log_p = z - z.max(1, keepdims=True) - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True))
    expected = -(soft.double().numpy() * log_p).sum(axis=1)
    np.testing.assert_allclose(pruning.scores, expected, rtol=1e-5)
    np.testing.assert_allclose(callback.score_table["loss"], expected, rtol=1e-5)
    with pytest.raises(
        ValueError, match=r"score 'el2n' needs integer class labels of shape \(2,\) .* got labels float \(2, 3\)"
    ):
        quiet_trainer(max_epochs=1, callbacks=[DifficultyCallback(scores=("el2n",))]).fit(
            model, datamodule=PruningDataModule(TensorDataset(x, soft), batch_size=8)
        )


def test_unlabelled_regression_logits_rows_checked_for_unmodified_classifiers():
    # sanity: the ordinary classifier path is unaffected by the checks (one forward of two examples)
    x = torch.randn(N, D)
    y = (x[:, 0] > 0).long()
    module = Regressor(outputs=2, criterion=F.cross_entropy)
    callback = DifficultyCallback(scores=("el2n", "forgetting"))
    quiet_trainer(max_epochs=1, callbacks=[callback]).fit(
        module, datamodule=PruningDataModule(TensorDataset(x, y), batch_size=8)
    )
    assert np.isfinite(callback.score_table["el2n"]).all()
    assert isinstance(module.net[0], nn.Linear)
