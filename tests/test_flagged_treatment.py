"""What becomes of flagged examples: relabel (keep, trained with the predicted class) and downweight (keep, presented
in half the epochs), worked out on tiny tables by hand and watched in the batches ``training_step`` receives."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from _modules import LitClassifier, quiet_trainer
from datadiet import PruneDuringFit, PruningDataModule, ScoreTable

# Ten examples, three classes. Flagged: 1 (predicted 2 at 0.9), 3 (predicted 0 at 0.3), 7 (predicted 1 at 0.8).
EL2N = np.array([0.1, 1.3, 0.5, 1.2, 0.9, 0.2, 0.8, 1.1, 0.7, 0.4])
LABELS = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
FLAGGED = np.zeros(10, dtype=bool)
FLAGGED[[1, 3, 7]] = True
PREDICTED = np.array([0, 2, 2, 0, 1, 2, 0, 1, 2, 0])
CONFIDENCE = np.array([0.9, 0.9, 0.8, 0.3, 0.7, 0.9, 0.6, 0.8, 0.9, 0.9], dtype=np.float32)


def table():
    columns = {"mislabelled": FLAGGED, "predicted_label": PREDICTED, "predicted_probability": CONFIDENCE}
    return ScoreTable({"el2n": EL2N}, labels=LABELS, columns=columns)


class RecordsLabels(LitClassifier):
    """Lightning's docs classifier, which also writes down each epoch's (original index, label) pairs it trained on."""

    def __init__(self, datamodule, num_features, num_classes):
        super().__init__(nn.Linear(num_features, num_classes), 0.1)
        self.datamodule, self.seen = datamodule, []

    def training_step(self, batch, batch_idx):
        x, y = batch
        index = self.datamodule.batch_original_index
        self.seen += [(self.current_epoch, int(i), int(label)) for i, label in zip(index, y)]
        return F.cross_entropy(self(x), y)


def data(n=10, features=4):
    x = torch.randn(n, features, generator=torch.Generator().manual_seed(0))
    return PruningDataModule(TensorDataset(x, torch.tensor(LABELS[:n] if n == 10 else np.arange(n) % 3)), batch_size=4)


def test_relabel_keeps_the_confident_flagged_with_their_predicted_class_and_chooses_the_rest_among_the_clean():
    dm = data()
    kept = dm.prune(table(), keep_fraction=0.5, strategy="hard", mislabelled="relabel")
    # budget 5: the confident flagged 1 and 7 first; 3 (0.3 < 0.5) is left out; the hardest 3 clean: 4, 6, 8
    assert kept.tolist() == [1, 4, 6, 7, 8]
    treatment = dm.flagged_treatment
    assert treatment.kind == "relabel" and treatment.indices.tolist() == [1, 7] and treatment.labels.tolist() == [2, 1]
    model = RecordsLabels(dm, 4, 3)
    quiet_trainer(max_epochs=2).fit(model, datamodule=dm)
    seen = {(i, label) for _, i, label in model.seen}
    assert seen == {(1, 2), (4, 1), (6, 0), (7, 1), (8, 2)}  # 1 and 7 as predicted, the others as given
    assert len(model.seen) == 10 and dm.train_examples_served == 10


def test_downweight_keeps_every_flagged_at_half_the_cost_and_presents_each_in_the_epochs_its_seed_draws():
    dm = data()
    kept = dm.prune(table(), keep_fraction=0.5, strategy="hard", mislabelled="downweight", seed=3)
    # three flagged at half an example each: 1.5 of the budget of 5; 3.5 -> the hardest 3 clean (4, 6, 8)
    assert kept.tolist() == [1, 3, 4, 6, 7, 8]
    assert dm.flagged_treatment.indices.tolist() == [1, 3, 7] and dm.flagged_treatment.weight == 0.5
    model = RecordsLabels(dm, 4, 3)
    epochs = 12
    quiet_trainer(max_epochs=epochs).fit(model, datamodule=dm)
    for epoch in range(epochs):
        shown = {i for e, i, _ in model.seen if e == epoch}
        drawn = np.random.default_rng([3, epoch]).random(3) < 0.5  # the module's documented draw
        expected = {4, 6, 8} | {i for i, present in zip([1, 3, 7], drawn) if present}
        # a batch is never emptied: a batch holding only absent flagged examples is trained as it is
        assert expected <= shown <= expected | {1, 3, 7}
    counts = [sum(1 for _, i, _ in model.seen if i == j) for j in (1, 3, 7)]
    assert all(2 <= count <= 10 for count in counts)  # about half of 12 epochs
    assert {label for _, i, label in model.seen if i == 1} == {1}  # its given label, not the predicted one


def test_the_treated_examples_fill_the_budget_most_confident_first():
    dm = data()
    kept = dm.prune(table(), keep_fraction=0.1, strategy="hard", mislabelled="relabel")
    assert kept.tolist() == [1]  # one example of budget: 1 (0.9) before 7 (0.8)
    kept = dm.prune(table(), keep_fraction=0.1, strategy="hard", mislabelled="downweight")
    assert kept.tolist() == [1, 7]  # two half examples: the two most confident


def test_the_treatment_travels_with_checkpoints_and_a_different_one_is_refused():
    dm = data()
    dm.prune(table(), keep_fraction=0.5, mislabelled="relabel")
    state = dm.state_dict()
    resumed = data()
    resumed.load_state_dict(state)
    assert resumed.flagged_treatment.same_as(dm.flagged_treatment)
    assert resumed.kept_indices.tolist() == dm.kept_indices.tolist()
    other = data()
    other.prune(table(), keep_fraction=0.5, mislabelled="downweight")
    other.kept_indices = dm.kept_indices.copy()
    with pytest.raises(ValueError, match="treatment of flagged examples .relabel. differs from this data module's"):
        other.load_state_dict(state)
    dm.reset_pruning()
    assert dm.flagged_treatment is None and dm.kept_indices is None


def test_relabel_refuses_data_without_class_labels_and_tables_without_probabilities():
    flagged_only = ScoreTable(
        {"el2n": EL2N}, labels=LABELS, columns={"mislabelled": FLAGGED, "predicted_label": PREDICTED}
    )
    with pytest.raises(ValueError, match="needs the scoring pass's predicted-class probabilities"):
        data().prune(flagged_only, mislabelled="relabel")
    regression = PruningDataModule(TensorDataset(torch.zeros(10, 2), torch.zeros(10)))
    with pytest.raises(ValueError, match="replaces class labels in .x, y. batches"):
        regression.prune(table(), mislabelled="relabel")


def test_prune_during_fit_relabels_from_its_own_scoring_pass():
    rng = np.random.default_rng(1)
    n, k = 240, 3
    true = rng.integers(0, k, size=n)
    x = rng.normal(size=(n, 6)) * 0.6
    x[:, :k] += 2.0 * np.eye(k)[true]
    given = true.copy()
    flipped = np.sort(rng.choice(n, size=n // 5, replace=False))
    given[flipped] = (true[flipped] + 1) % k
    torch.manual_seed(0)
    dm = PruningDataModule(TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(given)), batch_size=32)
    model = RecordsLabels(dm, 6, k)
    prune = PruneDuringFit(after_epochs=3, keep_fraction=0.5, mislabelled="relabel")

    quiet_trainer(max_epochs=5, callbacks=[prune]).fit(model, datamodule=dm)
    columns = prune.score_table.columns
    treated = dm.flagged_treatment.indices
    assert len(treated) > 20 and columns["mislabelled"][treated].all()
    assert (columns["predicted_probability"][treated] >= 0.5).all()
    after = {(i, label) for epoch, i, label in model.seen if epoch >= 3}
    assert {i for i, _ in after} == set(prune.kept_indices.tolist())
    for i, label in after:
        assert label == (columns["predicted_label"][i] if i in set(treated.tolist()) else given[i])
    # the relabelled are mostly the flipped ones, now with their true class
    relabelled_true = np.mean(columns["predicted_label"][treated] == true[treated])
    assert relabelled_true > 0.8
