"""Scores of sequences (logits (B, T, K), labels (B, T), -100 padding): the mean over each example's real
tokens, against numpy references computed by hand; and in a Trainer, with (x, y) and dict batches."""

import numpy as np
import pytest
import torch

from _modules import TinyLM, quiet_trainer, token_data
from _reference import softmax
from datadiet import Adapter, DifficultyCallback, DynamicPruning, PruneDuringFit, PruningDataModule, get_score, select

B, T, K = 3, 4, 3


@pytest.fixture
def sequences():
    rng = np.random.default_rng(0)
    z = (rng.normal(size=(B, T, K)) * 2).astype(np.float32)
    y = rng.integers(K, size=(B, T))
    y[0, 2:] = -100
    y[2, 0] = -100
    return z, y


def token_mean(values, y):
    """Mean of a (B, T) numpy array over the positions whose label is not -100."""
    return np.array([values[i][y[i] != -100].mean() for i in range(len(y))])


def per_token(z, y, fn):
    return np.array([[fn(z[i, t], y[i, t]) for t in range(z.shape[1])] for i in range(z.shape[0])])


def el2n_np(z, y):
    return np.linalg.norm(softmax(z[None].astype(np.float64))[0] - np.eye(len(z))[max(y, 0)])


def margin_np(z, y):
    y = max(y, 0)
    return z[y] - np.delete(z, y).max()


def entropy_np(z, y=None):
    p = softmax(z[None].astype(np.float64))[0]
    return -(p * np.log(p)).sum()


@pytest.mark.parametrize(
    "name, fn, sign", [("el2n", el2n_np, 1), ("margin", margin_np, -1), ("entropy", entropy_np, 1)]
)
def test_eval_pass_scores_are_token_means(sequences, name, fn, sign):
    z, y = sequences
    score = get_score(name)(B)
    score.update(torch.arange(B), torch.tensor(z), torch.tensor(y))
    score.end_scoring()
    oriented, raw = score.compute()
    np.testing.assert_allclose(raw, token_mean(per_token(z, y, fn), y), rtol=1e-5)
    np.testing.assert_allclose(oriented, sign * raw)


def test_label_free_entropy_without_labels_averages_every_token(sequences):
    z, _ = sequences
    score = get_score("entropy")(B)
    score.update(torch.arange(B), torch.tensor(z), None)
    expected = per_token(z, np.zeros((B, T), dtype=int), entropy_np).mean(axis=1)
    np.testing.assert_allclose(score.compute()[1], expected, rtol=1e-5)


def test_aum_and_confidence_over_two_epochs_of_sequences(sequences):
    z, y = sequences
    z2 = z[:, :, ::-1].copy()  # the second epoch's logits
    aum, confidence = get_score("aum")(B), get_score("confidence")(B)
    for epoch_logits in (z, z2):
        for score in (aum, confidence):
            score.update(torch.arange(B), torch.tensor(epoch_logits), torch.tensor(y))
            score.end_epoch()
    margins = [token_mean(per_token(e, y, margin_np), y) for e in (z, z2)]
    np.testing.assert_allclose(aum.compute()[1], np.mean(margins, axis=0), rtol=1e-5)
    p_y = lambda zz, yy: softmax(zz[None].astype(np.float64))[0][max(yy, 0)]  # noqa: E731
    expected = np.mean([token_mean(per_token(e, y, p_y), y) for e in (z, z2)], axis=0)
    np.testing.assert_allclose(confidence.compute()[1], expected, rtol=1e-5)


def correct_logits(pattern):
    """Logits (N, T, 2) and labels 0 where pattern[i][t] says whether token t is predicted correctly."""
    pattern = np.asarray(pattern, dtype=float)
    z = np.stack([pattern, 1 - pattern], axis=-1).astype(np.float32)  # class 0 wins where correct
    return torch.tensor(z)


def test_forgetting_counts_per_token_worked_case():
    # example 0: token 0 correct, wrong, correct (1 event); token 1 never correct (3 presentations)
    # example 1: token 0 always correct; token 1 is padding
    labels = torch.tensor([[0, 0], [0, -100]])
    epochs = [[[1, 0], [1, 1]], [[0, 0], [1, 1]], [[1, 0], [1, 1]]]
    score = get_score("forgetting")(2)
    for pattern in epochs:
        score.update(torch.arange(2), correct_logits(pattern), labels)
        score.end_epoch()
    oriented, raw = score.compute()
    np.testing.assert_array_equal(raw, [0.5, 0.0])  # mean events over real tokens: (1 + 0) / 2, 0
    # a never-learned token counts as forgotten at each of its 3 presentations: (1 + 3) / 2
    np.testing.assert_array_equal(oriented, [2.0, 0.0])


def test_variability_is_the_token_mean_of_per_token_standard_deviations():
    rng = np.random.default_rng(4)
    epochs = [rng.normal(size=(2, 3, 2)).astype(np.float32) for _ in range(3)]
    labels = np.array([[0, 1, -100], [1, 1, 0]])
    score = get_score("variability")(2)
    for z in epochs:
        score.update(torch.arange(2), torch.tensor(z), torch.tensor(labels))
        score.end_epoch()
    p_y = np.stack(
        [per_token(z, labels, lambda zz, yy: softmax(zz[None].astype(np.float64))[0][max(yy, 0)]) for z in epochs]
    )  # (epochs, N, T)
    expected = token_mean(p_y.std(axis=0, ddof=0), labels)
    np.testing.assert_allclose(score.compute()[1], expected, rtol=1e-4)


def test_per_token_state_grows_with_longer_batches_and_survives_a_checkpoint():
    score = get_score("forgetting")(3)
    score.update(torch.tensor([0]), correct_logits([[1, 1]]), torch.tensor([[0, 0]]))
    score.update(torch.tensor([1, 2]), correct_logits([[0, 0, 1], [1, 1, 1]]), torch.tensor([[0, 0, 0], [0, -100, 0]]))
    score.end_epoch()
    assert score.tokens == 3
    restored = get_score("forgetting")(3)
    restored.load_state_dict(score.state_dict())
    for s in (score, restored):
        s.update(
            torch.arange(3),
            correct_logits([[0, 0, 0], [0, 0, 0], [0, 0, 0]]),
            torch.tensor([[0, 0, -100], [0, 0, 0], [0, -100, 0]]),
        )
        s.end_epoch()
    np.testing.assert_array_equal(score.compute()[1], restored.compute()[1])
    # example 0 forgot both tokens, example 1 only its third, example 2 its first and third
    np.testing.assert_array_equal(score.compute()[1], [1.0, 1 / 3, 1.0])


def test_mixing_sequences_and_rows_is_refused():
    score = get_score("aum")(2)
    score.update(torch.tensor([0]), torch.zeros(1, 3, 2), torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="a probe's batches must all be one kind"):
        score.update(torch.tensor([1]), torch.zeros(1, 2), torch.zeros(1, dtype=torch.long))


# In a Trainer -----------------------------------------------------------------------------------------
def numpy_token_losses(model, data):
    """Each example's mean token cross-entropy under ``model``, in numpy (float64)."""
    x, y = data.tokens, data.labels.numpy()
    with torch.no_grad():
        z = model(x).double().numpy()
    z = z - z.max(axis=-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    token_loss = -np.take_along_axis(log_p, np.maximum(y, 0)[..., None], axis=-1)[..., 0]
    return token_mean(token_loss, y)


@pytest.mark.parametrize("as_dict", [False, True])
def test_probe_of_a_language_model_scores_log_perplexity(as_dict):
    data = token_data(as_dict=as_dict)
    model = TinyLM()
    scores = ("loss", "el2n", "margin", "aum", "forgetting", "confidence", "variability", "entropy")
    callback = DifficultyCallback(scores=scores)
    quiet_trainer(max_epochs=2, callbacks=[callback]).fit(model, datamodule=PruningDataModule(data, batch_size=8))
    table = callback.score_table
    np.testing.assert_allclose(table["loss"], numpy_token_losses(model.eval(), data), rtol=1e-5)
    for name in scores:
        assert np.isfinite(table[name]).all(), name
    assert table.labels is None  # sequences have no class label per example


def test_prune_during_fit_by_perplexity():
    data = token_data(num_examples=30)
    model = TinyLM(lr=0.0)  # frozen: the numpy reference knows every example's loss
    prune = PruneDuringFit(after_epochs=1, score="loss", keep_fraction=0.5, strategy="easy")
    quiet_trainer(max_epochs=2, callbacks=[prune]).fit(model, datamodule=PruningDataModule(data, batch_size=8))
    expected = select(numpy_token_losses(model, data), 0.5, "easy")
    np.testing.assert_array_equal(prune.kept_indices, expected)


def test_dynamic_pruning_ranks_by_token_mean_loss():
    data = token_data(num_examples=32, as_dict=True)
    model = TinyLM(lr=0.0)
    pruning = DynamicPruning(prune_ratio=0.5, anneal_fraction=0.0)
    quiet_trainer(max_epochs=3, callbacks=[pruning]).fit(model, datamodule=PruningDataModule(data, batch_size=8))
    np.testing.assert_allclose(pruning.scores, numpy_token_losses(model, data), rtol=1e-5)
    assert pruning.kept_per_epoch[0] == 32 and pruning.kept_per_epoch[1] < 32


class CountSteps(TinyLM):
    steps = 0

    def training_step(self, batch, batch_idx):
        CountSteps.steps += 1
        return super().training_step(batch, batch_idx)


@pytest.mark.parametrize(
    "make_callback",
    [
        lambda adapter: DifficultyCallback(scores=("loss",), adapter=adapter),
        lambda adapter: DynamicPruning(adapter=adapter),
    ],
)
def test_labels_equal_to_the_inputs_are_refused_before_training(make_callback):
    data = token_data(as_dict=True)
    data.labels = data.tokens.clone()  # Hugging Face's convention: the causal LM shifts labels in its loss
    CountSteps.steps = 0
    with pytest.raises(ValueError, match=r"labels equal the input tokens.*`Adapter\(shift_labels=True\)`"):
        quiet_trainer(max_epochs=1, callbacks=[make_callback(Adapter())]).fit(
            CountSteps(), datamodule=PruningDataModule(data, batch_size=8)
        )
    assert CountSteps.steps == 0
    shifted = make_callback(Adapter(shift_labels=True))
    quiet_trainer(max_epochs=1, callbacks=[shifted]).fit(CountSteps(), datamodule=PruningDataModule(data, batch_size=8))


@pytest.mark.parametrize(
    "make_callback",
    [
        lambda adapter: DifficultyCallback(scores=("el2n",), adapter=adapter),
        lambda adapter: DynamicPruning(adapter=adapter),
    ],
)
def test_tokens_flattened_into_rows_are_refused_before_training(make_callback):
    flattening = Adapter(logits_fn=lambda out: out.flatten(0, 1), target_fn=lambda batch: batch[1].flatten())
    CountSteps.steps = 0
    with pytest.raises(ValueError, match=r"output \(12, 5\) has 12 rows for a batch of 2 examples.*\(B, T, K\)"):
        quiet_trainer(max_epochs=1, callbacks=[make_callback(flattening)]).fit(
            CountSteps(), datamodule=PruningDataModule(token_data(), batch_size=8)
        )
    assert CountSteps.steps == 0
