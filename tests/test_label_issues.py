"""Mislabel detection: confident learning worked out by hand, cleanlab's own function as a second reference,
the `label_issue` score's columns, and selection that never keeps a flagged example."""

import copy

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.utils.data import TensorDataset

from _modules import LitClassifier, quiet_trainer
from _reference import softmax
from datadiet import DifficultyCallback, PruneDuringFit, PruningDataModule, ScoreTable, select
from datadiet.detection import find_label_issues, list_detectors

# Three classes; example 2 (labelled 0) is confidently a 1, example 8 (labelled 2) confidently a 0.
LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
PROBS = np.array([
    [0.90, 0.05, 0.05], [0.80, 0.10, 0.10], [0.10, 0.80, 0.10],
    [0.10, 0.80, 0.10], [0.05, 0.90, 0.05], [0.20, 0.70, 0.10],
    [0.10, 0.10, 0.80], [0.05, 0.05, 0.90], [0.70, 0.20, 0.10],
])  # fmt: skip


@pytest.mark.parametrize("detector", ["both", "prune_by_noise_rate", "prune_by_class", "confident_learning"])
def test_confident_learning_by_hand(detector):
    # thresholds t = (0.6, 0.8, 0.6); example 5 is confident of no class (0.7 < t_1). Confident joint
    # C[given, true] = [[2, 1, 0], [0, 2, 0], [1, 0, 2]]; calibrated, row 1 scales to its 3 labels: [0, 3, 0].
    # noise rate: one "labelled 0, truly 1" -> the labelled-0 example with the largest p_1 - p_0 (example 2);
    # one "labelled 2, truly 0" -> example 8. By class: 3 - 2 = 1 issue in class 0 (smallest p_0: example 2),
    # none in class 1, one in class 2 (smallest p_2: example 8).
    issues = find_label_issues(LABELS, PROBS, detector)
    assert np.flatnonzero(issues.flagged).tolist() == [2, 8]
    assert issues.noise_rate_estimate == pytest.approx(2 / 9)
    assert issues.predicted_label.tolist() == [0, 0, 1, 1, 1, 1, 2, 2, 0]
    np.testing.assert_allclose(issues.score[[2, 8, 5]], [0.8 - 0.1, 0.7 - 0.1, 0.2 - 0.7])
    assert issues.flagged_indices.tolist() == [2, 8]  # the larger score first


def test_flagged_examples_are_saved_for_fixing(tmp_path):
    issues = find_label_issues(LABELS, PROBS)
    text = issues.save_flagged(tmp_path / "flagged_examples.csv", LABELS).read_text()
    assert text.splitlines() == [
        "original_index,given_label,predicted_label,score",
        "2,0,1,0.700000",
        "8,2,0,0.600000",
    ]


def test_confident_predictions_of_the_given_labels_flag_nothing_and_unscored_rows_do_not_count():
    probs = np.full((9, 3), 0.05)
    probs[np.arange(9), LABELS] = 0.9
    probs[4] = np.nan  # never scored
    issues = find_label_issues(LABELS, probs)
    assert not issues.flagged.any() and issues.noise_rate_estimate == 0
    assert issues.predicted_label[4] == -1 and np.isnan(issues.score[4])
    with_wrong = PROBS.copy()
    with_wrong[4] = np.nan
    assert find_label_issues(LABELS, with_wrong).noise_rate_estimate == pytest.approx(2 / 8)


@pytest.mark.parametrize("detector", ["both", "prune_by_noise_rate", "prune_by_class", "confident_learning"])
def test_the_same_flags_as_cleanlab(detector):
    cleanlab_filter = pytest.importorskip("cleanlab.filter")
    rng = np.random.default_rng(0)
    true = rng.integers(0, 5, size=3000)
    given = np.where(rng.random(3000) < 0.25, rng.integers(0, 5, size=3000), true)
    logits = rng.normal(size=(3000, 5)) + 2.5 * np.eye(5)[true]
    probs = softmax(logits)
    ours = find_label_issues(given, probs, detector).flagged
    theirs = cleanlab_filter.find_label_issues(given, probs, filter_by=detector, n_jobs=1)
    assert 100 < ours.sum() and ours.tolist() == theirs.tolist()


@pytest.mark.parametrize(
    "labels, probs, message",
    [
        (LABELS, np.log(PROBS), "probabilities` must be in [0, 1]"),
        (LABELS[:5], PROBS, "must be (N, K)"),
        (LABELS + 1, PROBS, "`labels` must be integers in [0, 3)"),
    ],
)
def test_bad_input_is_refused(labels, probs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        find_label_issues(labels, probs)
    with pytest.raises(ValueError, match="unknown mislabel detector 'cleanlab'"):
        find_label_issues(LABELS, PROBS, "cleanlab")
    assert {"both", "prune_by_noise_rate", "prune_by_class", "confident_learning"} <= set(list_detectors())


def test_select_never_keeps_excluded_examples_and_keeps_the_budget():
    scores = np.array([9.0, 8, 7, 6, 5, 4, 3, 2])
    exclude = np.array([True, True, False, False, False, False, False, False])
    assert select(scores, 0.5, "hard", exclude=exclude).tolist() == [2, 3, 4, 5]  # 4 of 8, the hardest allowed
    assert select(scores, 0.5, "easy", exclude=exclude).tolist() == [4, 5, 6, 7]
    assert select(scores, 0.9, "hard", exclude=exclude).tolist() == [2, 3, 4, 5, 6, 7]  # fewer left: all of them
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    # class 0 keeps 2 of its 4 among its allowed (2, 3); class 1 its 2 hardest (4, 5)
    assert select(scores, 0.5, "hard", labels=labels, class_balanced=True, exclude=exclude).tolist() == [2, 3, 4, 5]
    with pytest.raises(ValueError, match="`exclude` covers all 8 examples"):
        select(scores, 0.5, exclude=np.ones(8, dtype=bool))
    with pytest.raises(ValueError, match="`exclude` must be a boolean mask"):
        select(scores, 0.5, exclude=np.ones(3, dtype=bool))


def test_score_table_columns_round_trip(tmp_path):
    table = ScoreTable({"el2n": [0.1, 0.9]}, columns={"mislabelled": [False, True], "predicted_label": [0, 2]})
    loaded = ScoreTable.load(table.save(tmp_path / "scores.npz"))
    assert loaded.columns["mislabelled"].tolist() == [False, True]
    assert loaded.columns["predicted_label"].tolist() == [0, 2] and loaded.names == ["el2n"]
    with pytest.raises(ValueError, match="one value per example"):
        ScoreTable({"el2n": [0.1, 0.9]}, columns={"mislabelled": [True]})


# Training: a linear model on separable clusters with 20 % pairwise noise ------------------------------------
N, D, K = 240, 6, 3


def noisy_data():
    rng = np.random.default_rng(1)
    true = rng.integers(0, K, size=N)
    x = rng.normal(size=(N, D)) * 0.6
    x[:, :K] += 2.0 * np.eye(K)[true]
    flipped = np.sort(rng.choice(N, size=N // 5, replace=False))
    given = true.copy()
    given[flipped] = (true[flipped] + 1) % K
    return torch.tensor(x, dtype=torch.float32), torch.tensor(given), flipped


class WeightsAtEnd(Callback):
    def on_train_end(self, trainer, pl_module):  # listed first: before the scoring pass reads the model
        self.state = copy.deepcopy(pl_module.state_dict())


def reference_issues(state, x, y):
    z = x.double().numpy() @ state["model.weight"].double().numpy().T + state["model.bias"].double().numpy()
    return find_label_issues(y.numpy(), softmax(z))


def test_difficulty_callback_table_gets_the_flag_and_predicted_label_columns():
    torch.manual_seed(0)
    x, y, flipped = noisy_data()
    weights = WeightsAtEnd()
    difficulty = DifficultyCallback(scores=["el2n", "label_issue"])
    dm = PruningDataModule(TensorDataset(x, y), batch_size=32)
    quiet_trainer(max_epochs=3, callbacks=[weights, difficulty]).fit(LitClassifier(nn.Linear(D, K), 0.3), datamodule=dm)
    table = difficulty.score_table
    expected = reference_issues(weights.state, x, y)
    assert table.columns["mislabelled"].tolist() == expected.flagged.tolist()
    assert table.columns["predicted_label"].tolist() == expected.predicted_label.tolist()
    state = {name: value.double().numpy() for name, value in weights.state.items()}
    z = x.double().numpy() @ state["model.weight"].T + state["model.bias"]
    np.testing.assert_allclose(table.columns["predicted_probability"], softmax(z).max(axis=1), atol=1e-5)
    np.testing.assert_allclose(table["label_issue"], expected.score, atol=1e-5)
    assert table.metadata["label_noise_estimate"] == pytest.approx(expected.noise_rate_estimate)
    # confident learning's share on the same probabilities, beside it for auto's regime guard
    z = x.double().numpy() @ state["model.weight"].T + state["model.bias"]
    both = find_label_issues(y.numpy(), softmax(z), "both")
    assert table.metadata["confident_learning_noise_estimate"] == pytest.approx(both.noise_rate_estimate)
    # and it finds the flips of such easy data
    found = np.intersect1d(np.flatnonzero(expected.flagged), flipped)
    assert len(found) >= 0.8 * len(flipped) and len(found) >= 0.8 * expected.num_flagged


@pytest.mark.parametrize("strategy", ["hard", "random"])
def test_prune_during_fit_excludes_the_flagged_then_chooses_among_the_rest(strategy):
    torch.manual_seed(0)
    x, y, _ = noisy_data()
    weights = WeightsAtEnd()

    class AtPruning(Callback):
        def on_train_epoch_end(self, trainer, pl_module):  # listed first: the model the pass will score
            if trainer.current_epoch == 2:
                weights.state = copy.deepcopy(pl_module.state_dict())

    prune = PruneDuringFit(after_epochs=3, keep_fraction=0.5, strategy=strategy, mislabelled="exclude", seed=2)
    dm = PruningDataModule(TensorDataset(x, y), batch_size=32)
    quiet_trainer(max_epochs=4, callbacks=[AtPruning(), prune]).fit(LitClassifier(nn.Linear(D, K), 0.3), datamodule=dm)
    expected = reference_issues(weights.state, x, y)
    issues = prune.label_issues
    assert issues.flagged.tolist() == expected.flagged.tolist() and issues.num_flagged > 20
    assert len(prune.kept_indices) == N // 2 and not issues.flagged[prune.kept_indices].any()
    assert prune.scored_examples == N  # one scoring pass, counted, also for `random`
    state = prune.state_dict()  # the flags travel with checkpoints
    restored = PruneDuringFit(after_epochs=3, keep_fraction=0.5, strategy=strategy, mislabelled="exclude", seed=2)
    restored.load_state_dict(state)
    assert restored.label_issues.flagged.tolist() == issues.flagged.tolist()


def test_exclude_needs_a_flag_column_and_bad_settings_are_refused():
    dm = PruningDataModule(TensorDataset(torch.zeros(4, 2), torch.tensor([0, 1, 0, 1])))
    with pytest.raises(ValueError, match="needs a ScoreTable with a `mislabelled` column"):
        dm.prune(ScoreTable({"el2n": [1.0, 2, 3, 4]}), mislabelled="exclude")
    with pytest.raises(
        ValueError, match="`mislabelled` can be keep, exclude, exclude_disagreeing, relabel, downweight, got .drop."
    ):
        dm.prune(np.arange(4.0), mislabelled="drop")
    with pytest.raises(
        ValueError,
        match="`mislabelled` can be None, keep, exclude, exclude_disagreeing, relabel, downweight or auto, got .fix.",
    ):
        PruneDuringFit(mislabelled="fix")
    with pytest.raises(ValueError, match="unknown mislabel detector"):
        PruneDuringFit(mislabelled="exclude", detector="nope")


def test_auto_counts_only_correct_labels_and_keeps_random_above_the_noise_limit():
    from datadiet.theory import crossover_alpha_tot

    scores = np.random.default_rng(0).random(200)
    alpha = 1.02 * crossover_alpha_tot(0.5)  # just in the keep-hard regime
    assert select(scores, 0.5, "auto", alpha_tot=alpha, seed=1).tolist() == select(scores, 0.5, "hard", seed=1).tolist()
    # 4 % wrong labels: 0.98 alpha of correct ones, on the keep-easy side
    easy = select(scores, 0.5, "easy", seed=1).tolist()
    assert select(scores, 0.5, "auto", alpha_tot=alpha, label_noise=0.04, seed=1).tolist() == easy
    # 20 %: neither end is safe
    noisy = select(scores, 0.5, "auto", alpha_tot=alpha, label_noise=0.2, seed=1).tolist()
    assert noisy == select(scores, 0.5, "random", seed=1).tolist()
    with pytest.raises(ValueError, match=r"`label_noise` must be a share in \[0, 1\), got 1.5"):
        select(scores, 0.5, "auto", alpha_tot=alpha, label_noise=1.5)


def test_prune_tells_auto_the_noise_it_chooses_among():
    n = 10
    dm = PruningDataModule(TensorDataset(torch.zeros(n, 2), torch.zeros(n, dtype=torch.long)))
    flags = np.zeros(n, dtype=bool)
    flags[:2] = True
    table = ScoreTable(
        {"el2n": np.arange(n, dtype=float)}, columns={"mislabelled": flags}, metadata={"label_noise_estimate": 0.2}
    )
    # flagged kept eligible: 20 % noise among the candidates -> random; excluded: none left -> the theory's choice
    kept = dm.prune(table, keep_fraction=0.4, strategy="auto", alpha_tot=100.0, seed=5)
    assert kept.tolist() == select(np.arange(n, dtype=float), 0.4, "random", seed=5).tolist()
    kept = dm.prune(table, keep_fraction=0.4, strategy="auto", alpha_tot=100.0, mislabelled="exclude", seed=5)
    assert kept.tolist() == [6, 7, 8, 9]  # abundant data: the hardest of the unflagged
