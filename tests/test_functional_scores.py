"""Functional twins against numpy references computed by hand."""

import numpy as np
import pytest
import torch

from _reference import softmax
from datadiet.scores import functional as F


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    return rng.normal(size=(7, 4)).astype(np.float32) * 3, rng.integers(4, size=7)


def test_el2n_matches_numpy(batch):
    z, y = batch
    expected = np.linalg.norm(softmax(z.astype(np.float64)) - np.eye(4)[y], axis=1)
    got = F.el2n(torch.tensor(z), torch.tensor(y)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_el2n_worked_case():
    # uniform prediction over 2 classes: p = (.5, .5), y = 0 -> ||(-.5, .5)|| = sqrt(.5)
    got = F.el2n(torch.zeros(1, 2), torch.tensor([0]))
    assert got.item() == pytest.approx(np.sqrt(0.5))


def test_logit_margin_matches_numpy(batch):
    z, y = batch
    others = z.copy()
    others[np.arange(len(y)), y] = -np.inf
    expected = z[np.arange(len(y)), y] - others.max(axis=1)
    np.testing.assert_allclose(F.logit_margin(torch.tensor(z), torch.tensor(y)).numpy(), expected, rtol=1e-6)


def test_logit_margin_worked_case():
    z = torch.tensor([[1.0, 3.0, 2.0], [1.0, 3.0, 2.0]])
    assert F.logit_margin(z, torch.tensor([1, 0])).tolist() == [1.0, -2.0]


def test_correct_and_dtype_independence():
    z = torch.tensor([[0.1, 0.9], [2.0, -1.0]], dtype=torch.bfloat16)
    assert F.correct(z, torch.tensor([1, 1])).tolist() == [1.0, 0.0]
    assert F.el2n(z, torch.tensor([1, 1])).dtype == torch.float32


def test_forgetting_update_worked_sequence():
    # correctness per presentation: events are 1 -> 0 transitions
    sequences = {
        "learned once, forgotten twice": ([0, 1, 1, 0, 1, 0], 2),
        "never forgotten": ([0, 0, 1, 1, 1, 1], 0),
        "first presentation wrong is no event": ([0, 0, 0, 1, 1, 1], 0),
        "never learned": ([0, 0, 0, 0, 0, 0], None),
    }
    n = len(sequences)
    previous = torch.zeros(n, dtype=torch.bool)
    count = torch.zeros(n, dtype=torch.int32)
    ever = torch.zeros(n, dtype=torch.bool)
    seen = torch.ones(n, dtype=torch.bool)
    matrix = np.array([s for s, _ in sequences.values()], dtype=bool)
    for t in range(matrix.shape[1]):
        previous, count, ever = F.forgetting_update(previous, count, ever, torch.tensor(matrix[:, t]), seen)
    score = F.forgetting_score(count, ever, torch.full((n,), 6))
    for row, (name, (_, expected)) in enumerate(sequences.items()):
        if expected is None:
            assert score[row].item() == float("inf"), name
        else:
            assert score[row].item() == expected, name


def test_forgetting_update_ignores_unseen():
    previous = torch.tensor([True, True])
    count = torch.zeros(2, dtype=torch.int32)
    ever = torch.tensor([True, True])
    now = torch.tensor([False, False])
    seen = torch.tensor([True, False])
    previous, count, ever = F.forgetting_update(previous, count, ever, now, seen)
    assert count.tolist() == [1, 0]
    assert previous.tolist() == [False, True]


def test_logits_must_be_2d():
    with pytest.raises(ValueError, match="shape"):
        F.el2n(torch.zeros(3), torch.zeros(3, dtype=torch.long))


def test_correct_follows_argmax_tie_rule():
    # argmax returns the first maximal index: a tie with a lower class index is incorrect
    z = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 2.0, 2.0]])
    y = torch.tensor([0, 1, 2])
    expected = (z.argmax(dim=1) == y).float()
    assert F.correct(z, y).tolist() == expected.tolist() == [1.0, 0.0, 0.0]


def test_shared_batch_view_sees_in_place_changes():
    z = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 0])
    assert F.logit_margin(z, y).tolist() == [2.0, -1.0]
    z[1, 0] = 5.0  # same tensor, modified: must not reuse the memoised view
    assert F.logit_margin(z, y).tolist() == [2.0, 4.0]
    assert F.correct(z, y).tolist() == [1.0, 1.0]


def test_el2n_precise_when_confident():
    # p_y ~ 1 - 1e-12: the naive sum of squares cancels to 0, the published value is ~1.4e-12
    z = torch.tensor([[30.0, 0.0, 0.0]])
    p = np.exp(np.array([30.0, 0.0, 0.0]) - 30.0)
    p /= p.sum()
    expected = np.linalg.norm(p - np.array([1.0, 0.0, 0.0]))
    assert F.el2n(z, torch.tensor([0])).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("batch_size", [5, F.CLASS_MAJOR_MIN_BATCH + 3])
def test_both_layouts_match_numpy_with_ties(batch_size):
    """Small batches use (B, K), large ones a class-major copy: both must give the published values."""
    rng = np.random.default_rng(batch_size)
    z = rng.integers(-3, 4, size=(batch_size, 6)).astype(np.float32)  # integers: plenty of exact ties
    y = rng.integers(6, size=batch_size)
    zt, yt = torch.tensor(z), torch.tensor(y)
    others = z.astype(np.float64).copy()
    others[np.arange(batch_size), y] = -np.inf
    margin = z[np.arange(batch_size), y] - others.max(axis=1)
    el2n = np.linalg.norm(softmax(z.astype(np.float64)) - np.eye(6)[y], axis=1)
    np.testing.assert_allclose(F.logit_margin(zt, yt).numpy(), margin)
    np.testing.assert_array_equal(F.correct(zt, yt).numpy(), (z.argmax(axis=1) == y).astype(np.float32))
    np.testing.assert_allclose(F.el2n(zt, yt).numpy(), el2n, rtol=1e-5, atol=1e-7)
    assert torch.equal(zt, torch.tensor(z)), "the caller's logits are never modified"


@pytest.mark.parametrize("batch_size", [64, F.CLASS_MAJOR_MIN_BATCH + 3])
def test_tie_rule_without_the_cpu_shortcut(batch_size):
    """On CPU only tied examples are re-checked; other devices check every example: same answer."""
    rng = np.random.default_rng(7)
    z = rng.integers(-1, 2, size=(batch_size, 5)).astype(np.float32)
    y = rng.integers(5, size=batch_size)
    view = F._batch_view(torch.tensor(z), torch.tensor(y))
    earlier_tie = F._tied_with_earlier_class(view, None).numpy()
    expected = np.array([(z[i, : y[i]] == z[i, y[i]]).any() for i in range(batch_size)])
    np.testing.assert_array_equal(earlier_tie, expected)
    assert expected.any() and not expected.all()
