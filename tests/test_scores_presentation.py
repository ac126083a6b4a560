"""Train-phase scores (aum, confidence, variability, correctness) against numpy references."""

import numpy as np
import pytest
import torch

from _reference import softmax
from datadiet.scores import get_score


@pytest.fixture
def presentations():
    """3 epochs over 5 examples with 3 classes; example 4 is not presented in epoch 1."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 3)).astype(np.float32) * 2
    labels = np.array([0, 1, 2, 1, 0])
    seen = np.ones((3, 5), dtype=bool)
    seen[1, 4] = False
    return logits, labels, seen


def run_score(name, logits, labels, seen, split_batches=True, fold_chunk=None):
    score = get_score(name)(5)
    if fold_chunk is not None:
        score.fold_chunk = fold_chunk
    for epoch in range(len(logits)):
        index = np.flatnonzero(seen[epoch])
        halves = np.array_split(index, 2) if split_batches else [index]
        for part in halves:
            score.update(torch.tensor(part), torch.tensor(logits[epoch, part]), torch.tensor(labels[part]))
        score.end_epoch()
    return score.compute()


def reference(logits, labels, seen):
    rows = np.arange(logits.shape[1])
    margins, probabilities, correct = [], [], []
    for epoch in range(len(logits)):
        z = logits[epoch].astype(np.float64)
        others = z.copy()
        others[rows, labels] = -np.inf
        margin = z[rows, labels] - others.max(axis=1)
        margins.append(np.where(seen[epoch], margin, np.nan))
        probabilities.append(np.where(seen[epoch], softmax(z)[rows, labels], np.nan))
        correct.append(np.where(seen[epoch], (z.argmax(axis=1) == labels).astype(float), np.nan))
    return {
        "aum": np.nanmean(margins, axis=0),
        "confidence": np.nanmean(probabilities, axis=0),
        "variability": np.nanstd(probabilities, axis=0, ddof=0),
        "correctness": np.nanmean(correct, axis=0),
    }


@pytest.mark.parametrize("fold_chunk", [None, 2])  # 2: the epoch is folded in slices 2 + 2 + 1
@pytest.mark.parametrize(
    "name, flips",
    [("aum", True), ("confidence", True), ("variability", False), ("correctness", True)],
)
def test_matches_numpy_reference(presentations, name, flips, fold_chunk):
    logits, labels, seen = presentations
    score, raw = run_score(name, logits, labels, seen, fold_chunk=fold_chunk)
    expected = reference(logits, labels, seen)[name]
    np.testing.assert_allclose(raw, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(score, -expected if flips else expected, rtol=1e-5, atol=1e-6)


def test_aum_worked_case():
    # margins 2 and -1 over two presentations -> AUM 0.5, oriented -0.5
    score = get_score("aum")(1)
    for z in ([[3.0, 1.0]], [[0.0, 1.0]]):
        score.update(torch.tensor([0]), torch.tensor(z), torch.tensor([0]))
        score.end_epoch()
    oriented, raw = score.compute()
    assert raw[0] == pytest.approx(0.5) and oriented[0] == pytest.approx(-0.5)


def test_variability_is_population_std():
    # p_y = 0.5 then sigmoid(2): population std = |difference| / 2
    score = get_score("variability")(1)
    for z in ([[0.0, 0.0]], [[2.0, 0.0]]):
        score.update(torch.tensor([0]), torch.tensor(z), torch.tensor([0]))
        score.end_epoch()
    expected = abs(1 / (1 + np.exp(-2.0)) - 0.5) / 2
    assert score.compute()[1][0] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("name", ["aum", "confidence", "variability", "correctness"])
def test_never_presented_is_nan_and_state_round_trips(presentations, name):
    logits, labels, seen = presentations
    seen = seen.copy()
    seen[:, 2] = False
    score, raw = run_score(name, logits, labels, seen)
    assert np.isnan(score[2]) and np.isnan(raw[2]) and not np.isnan(raw[[0, 1, 3, 4]]).any()
    first = get_score(name)(5)
    first.update(torch.arange(5), torch.tensor(logits[0]), torch.tensor(labels))
    first.end_epoch()
    second = get_score(name)(5)
    second.load_state_dict(first.state_dict())
    for s in (first, second):
        s.update(torch.arange(5), torch.tensor(logits[1]), torch.tensor(labels))
        s.end_epoch()
    np.testing.assert_array_equal(first.compute()[1], second.compute()[1])


def test_duplicate_presentations_across_processes_count_once(presentations):
    """Two processes both present example 0 in an epoch (DDP padding): merged with MIN, counted once."""
    logits, labels, _ = presentations
    ranks = [get_score("aum")(5) for _ in range(2)]
    parts = [np.array([0, 1, 2]), np.array([3, 4, 0])]
    for epoch in range(3):
        for score, part in zip(ranks, parts):
            score.update(torch.tensor(part), torch.tensor(logits[epoch, part]), torch.tensor(labels[part]))
        filled = [torch.where(torch.isnan(r.epoch_value), torch.inf, r.epoch_value) for r in ranks]
        merged = torch.minimum(*filled)  # what all_reduce(MIN) returns on every process
        for score in ranks:
            score.end_epoch(lambda tensor: merged)
    expected = reference(logits, labels, np.ones((3, 5), dtype=bool))["aum"]
    np.testing.assert_allclose(ranks[1].compute()[1], expected, rtol=1e-5)


def test_forgetting_folded_in_slices_matches_toneva_count():
    """Forgetting events counted by hand over 4 epochs of 5 examples, folded 2 examples at a time."""
    correct = np.array(
        [  # argmax z == y per epoch (rows) and example (columns); NaN: not presented
            [1, 0, 1, 1, 0],
            [0, 0, 1, np.nan, 0],
            [1, 0, 0, 0, 0],
            [0, 0, 1, 1, 0],
        ]
    )
    expected_events = [2, 0, 1, 1, 0]  # 1->0 transitions between consecutive presentations
    score = get_score("forgetting")(5)
    score.fold_chunk = 2
    labels = torch.zeros(5, dtype=torch.long)
    for epoch in correct:
        index = np.flatnonzero(~np.isnan(epoch))
        z = torch.tensor([[1.0, 0.0] if epoch[i] == 1 else [0.0, 1.0] for i in index])
        score.update(torch.tensor(index), z, labels[index])
        score.end_epoch()
    oriented, raw = score.compute()
    assert raw.tolist() == expected_events
    assert oriented.tolist() == [2, np.inf, 1, 1, np.inf]  # never learned: hardest
