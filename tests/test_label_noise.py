"""Label noise of the built-in sources: exactly the asked share of training labels replaced by a wrong class,
validation and test clean, the flips recorded."""

import numpy as np
import pytest

from datadiet.data.label_noise import corrupt_labels
from datadiet.data.sources import digits_datamodule, synthetic_datamodule


def _labels(dataset):
    return np.array([int(dataset[i][1]) for i in range(len(dataset))])


def test_pairwise_noise_by_hand():
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    noisy, record = corrupt_labels(labels, 0.5, "pairwise", num_classes=3, seed=7)
    flipped = record.flipped_indices
    assert len(flipped) == 4 and np.all(np.diff(flipped) > 0)  # round(0.5 * 8), sorted, distinct
    expected = labels.copy()
    for i in flipped:  # c -> (c + 1) mod K, worked out per example
        expected[i] = {0: 1, 1: 2, 2: 0}[labels[i]]
    assert noisy.tolist() == expected.tolist()
    assert record.clean_labels.tolist() == labels.tolist()
    assert record.is_flipped().tolist() == [i in set(flipped) for i in range(8)]
    assert labels.tolist() == [0, 1, 2, 0, 1, 2, 0, 1]  # the input is not modified


def test_symmetric_noise_is_a_uniform_other_class():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=40_000)
    noisy, record = corrupt_labels(labels, 0.25, "symmetric", num_classes=4, seed=3)
    changed = np.flatnonzero(noisy != labels)
    assert changed.tolist() == record.flipped_indices.tolist()  # every chosen label changed, no other
    assert len(changed) == 10_000
    # for each true class the 3 other classes are equally likely: 1/3 each, within sampling error (~0.8 %)
    for c in range(4):
        new = noisy[changed][labels[changed] == c]
        shares = np.bincount(new, minlength=4) / len(new)
        assert shares[c] == 0
        np.testing.assert_allclose(np.delete(shares, c), 1 / 3, atol=0.03)
    # the chosen examples are a uniform draw: about a quarter of every class
    for c in range(4):
        assert abs(record.is_flipped()[labels == c].mean() - 0.25) < 0.02


def test_the_same_seed_gives_the_same_noise_and_another_seed_other_noise():
    labels = np.arange(100) % 10
    first, a = corrupt_labels(labels, 0.2, seed=1)
    again, b = corrupt_labels(labels, 0.2, seed=1)
    other, c = corrupt_labels(labels, 0.2, seed=2)
    assert first.tolist() == again.tolist() and a.flipped_indices.tolist() == b.flipped_indices.tolist()
    assert a.flipped_indices.tolist() != c.flipped_indices.tolist()


@pytest.mark.parametrize("source", [synthetic_datamodule, digits_datamodule])
def test_sources_flip_training_labels_only_and_record_them(source):
    clean = source(seed=0)
    noisy = source(seed=0, label_noise=0.2, label_noise_kind="pairwise", label_noise_seed=5)
    assert clean.label_noise is None
    record = noisy.label_noise
    clean_train, noisy_train = _labels(clean.train_dataset), _labels(noisy.train_dataset)
    assert record.num_flipped == round(0.2 * len(clean_train))
    assert np.flatnonzero(clean_train != noisy_train).tolist() == record.flipped_indices.tolist()
    k = noisy.num_classes
    assert np.all(noisy_train[record.flipped_indices] == (clean_train[record.flipped_indices] + 1) % k)
    assert record.clean_labels.tolist() == clean_train.tolist()
    assert noisy.labels.tolist() == noisy_train.tolist()  # what pruning and the scores read
    for split in ("val_dataset", "test_dataset"):  # never corrupted
        assert _labels(getattr(noisy, split)).tolist() == _labels(getattr(clean, split)).tolist()
    assert noisy.fingerprint() != clean.fingerprint()  # scores cached for clean labels are not reused
    assert record.summary() == {
        "rate": 0.2,
        "kind": "pairwise",
        "seed": 5,
        "num_flipped": record.num_flipped,
        "num_examples": len(clean_train),
    }


@pytest.mark.parametrize(
    "options, message",
    [
        ({"label_noise": 1.0}, "`label_noise` must be a share of training labels in [0, 1), got 1.0"),
        ({"label_noise": -0.1}, "got -0.1"),
        (
            {"label_noise": 0.1, "label_noise_kind": "uniform"},
            "`label_noise_kind` can be symmetric, pairwise, got 'uniform'",
        ),
        ({"label_noise": 0.1, "label_noise_seed": 1.5}, "`label_noise_seed` must be an integer, got 1.5"),
    ],
)
def test_bad_noise_settings_are_refused_naming_the_value(options, message):
    with pytest.raises(ValueError) as error:
        synthetic_datamodule(num_samples=100, **options)
    assert message in str(error.value)


def test_a_random_selection_with_the_same_seed_is_independent_of_the_noise():
    from datadiet import select

    labels = np.arange(10_000) % 10
    _, record = corrupt_labels(labels, 0.2, seed=0)
    kept = select(np.zeros(10_000), 0.5, "random", seed=0)
    # half of the wrong labels, within sampling error (not all of them: the streams are independent)
    assert abs(record.is_flipped()[kept].mean() - 0.2) < 0.02
