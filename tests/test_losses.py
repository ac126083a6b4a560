"""The per-example losses (datadiet.losses) and the Adapter, against numpy references computed by hand."""

import numpy as np
import pytest
import torch

from _reference import softmax
from datadiet import Adapter
from datadiet.losses import (
    absolute_error,
    binary_cross_entropy,
    cross_entropy,
    loss_logit_gradient,
    per_example_loss,
    squared_error,
    token_values,
)


def numpy_log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def test_mean_token_cross_entropy_without_padding():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3, 5, 4)) * 2
    y = rng.integers(4, size=(3, 5))
    y[0, 3:] = -100  # padding at the end
    y[1, 0] = -100  # and at the start
    log_p = numpy_log_softmax(z)
    expected = []
    for i in range(3):
        real = [t for t in range(5) if y[i, t] != -100]
        expected.append(-np.mean([log_p[i, t, y[i, t]] for t in real]))
    got = cross_entropy(torch.tensor(z, dtype=torch.float32), torch.tensor(y))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
    assert got.dtype == torch.float32


def test_token_cross_entropy_worked_case_and_all_padding():
    # uniform logits over 4 classes: every real token costs log 4; an example of padding only has no loss
    z = torch.zeros(2, 3, 4)
    y = torch.tensor([[1, 2, -100], [-100, -100, -100]])
    got = cross_entropy(z, y)
    assert got[0].item() == pytest.approx(np.log(4))
    assert torch.isnan(got[1])
    values = token_values(lambda logits, target: logits[:, 0] + target, z, y)
    assert torch.isnan(values[0, 2]) and values[0, :2].tolist() == [1.0, 2.0]


def test_custom_ignore_index():
    z = torch.zeros(1, 2, 3)
    z[0, 1, 0] = 5.0
    y = torch.tensor([[0, 0]])
    both = cross_entropy(z, y, ignore_index=-100)
    first_only = cross_entropy(z, y, ignore_index=0)  # every label is the ignored one: no tokens left
    assert torch.isnan(first_only).all()
    expected = np.mean([np.log(3), -numpy_log_softmax(np.array([5.0, 0, 0]))[0]])
    assert both.item() == pytest.approx(expected, rel=1e-6)


def test_soft_label_cross_entropy():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(4, 3))
    t = rng.dirichlet(np.ones(3), size=4)
    expected = -(t * numpy_log_softmax(z)).sum(axis=1)
    got = cross_entropy(torch.tensor(z), torch.tensor(t))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)


def test_per_example_squared_and_absolute_error():
    output = torch.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 3.0]])
    target = torch.tensor([[0.0, 0.0], [1.0, 1.0], [3.0, 4.0]])
    assert squared_error(output, target).tolist() == [(1 + 4) / 2, (1 + 4) / 2, (0 + 1) / 2]
    assert absolute_error(output, target).tolist() == [1.5, 1.5, 0.5]
    # one output per example: (B,) or (B, 1) against (B,)
    assert squared_error(torch.tensor([[2.0], [0.5]]), torch.tensor([1.0, 0.0])).tolist() == [1.0, 0.25]
    assert squared_error(torch.tensor([2.0, 0.5]), torch.tensor([1.0, 0.0])).tolist() == [1.0, 0.25]
    with pytest.raises(ValueError, match=r"`mse` compares each example's outputs with as many targets.*\(2, 3\)"):
        squared_error(torch.zeros(2, 3), torch.zeros(2))


def test_mean_binary_cross_entropy():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(4, 5)) * 3
    y = (rng.random((4, 5)) < 0.4).astype(np.float64)
    sigma = 1 / (1 + np.exp(-z))
    expected = -(y * np.log(sigma) + (1 - y) * np.log(1 - sigma)).mean(axis=1)
    got = binary_cross_entropy(torch.tensor(z), torch.tensor(y))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)


def test_per_example_loss_dispatch_and_unknown_name():
    z, y = torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]])
    assert per_example_loss("mse", z, y).item() == pytest.approx(0.5)
    assert per_example_loss("l1", z, y).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="`loss` can be cross_entropy, bce, mse, l1 or a callable, got 'huber'"):
        per_example_loss("huber", z, y)


def test_logit_gradients_are_the_closed_forms():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(3, 4))
    labels = np.array([0, 3, 1])
    targets = rng.normal(size=(3, 4))
    hot = (rng.random((3, 4)) < 0.5).astype(float)
    ce = loss_logit_gradient("cross_entropy", torch.tensor(z), torch.tensor(labels)).numpy()
    np.testing.assert_allclose(ce, softmax(z) - np.eye(4)[labels], rtol=1e-5, atol=1e-7)
    mse = loss_logit_gradient("mse", torch.tensor(z), torch.tensor(targets)).numpy()
    np.testing.assert_allclose(mse, 2 * (z - targets) / 4, rtol=1e-5)
    bce = loss_logit_gradient("bce", torch.tensor(z), torch.tensor(hot)).numpy()
    np.testing.assert_allclose(bce, (1 / (1 + np.exp(-z)) - hot) / 4, rtol=1e-5, atol=1e-7)
    l1 = loss_logit_gradient("l1", torch.tensor(z), torch.tensor(targets)).numpy()
    np.testing.assert_array_equal(l1, np.sign(z - targets).astype(np.float32) / 4)


# The Adapter ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"loss": "huber"}, "`loss` can be cross_entropy, bce, mse, l1 or a callable"),
        ({"ignore_index": 1.5}, "`ignore_index` must be an integer, got 1.5"),
        ({"shift_labels": "yes"}, "`shift_labels` must be True or False"),
    ],
)
def test_adapter_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Adapter(**kwargs)


def test_adapter_reads_hugging_face_batches_and_outputs():
    class Output:  # a model output with a `logits` attribute, as Hugging Face models return
        def __init__(self, logits):
            self.logits = logits

    adapter = Adapter()
    batch = {"input_ids": torch.tensor([[1, 2, 3]]), "labels": torch.tensor([[2, 3, -100]]), "attention_mask": None}
    assert adapter.input_fn(batch) is batch["input_ids"]
    logits = torch.zeros(1, 3, 5)
    read_logits, target = adapter.read(Output(logits), batch)
    assert read_logits is logits and target is batch["labels"]
    assert adapter.read({"logits": logits}, batch)[0] is logits
    with pytest.raises(ValueError, match=r"keys \['image'\] has none of .* for the labels: pass `Adapter\(target_fn="):
        adapter.target_fn({"image": torch.zeros(1)})


def test_shift_labels_pairs_position_t_with_label_t_plus_1():
    tokens = torch.tensor([[0, 1, 2, 1]])
    logits = torch.full((1, 4, 3), -10.0)
    logits[0, torch.arange(3), tokens[0, 1:]] = 10.0  # position t predicts token t + 1 perfectly
    shifted = Adapter(shift_labels=True)
    assert shifted.example_loss(logits, {"input_ids": tokens, "labels": tokens}).item() < 1e-6
    assert Adapter().example_loss(logits, {"input_ids": tokens, "labels": tokens}).item() > 5


def test_callable_loss_is_called_with_output_and_batch():
    def my_loss(output, batch):
        return (output - batch[1]).abs().sum(dim=1)

    adapter = Adapter(loss=my_loss)
    assert not adapter.class_probabilities and "my_loss" in adapter.loss_name
    got = adapter.example_loss(torch.tensor([[1.0, 2.0]]), (None, torch.tensor([[0.0, 0.0]])))
    assert got.tolist() == [3.0]
