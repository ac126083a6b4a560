"""`prune` refuses a score table it cannot trust for this dataset, and says what it does with unscored examples."""

import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

import datadiet.data.datamodule as datamodule_module
from _modules import LitClassifier, quiet_trainer
from datadiet import DifficultyCallback, PruningDataModule, ScoreTable
from datadiet.fingerprint import dataset_fingerprint
from datadiet.subset import import_score_table, table_for_datamodule

N = 20


def data(offset=0.0, n=N):
    x = torch.arange(n, dtype=torch.float32).unsqueeze(1) + offset
    return TensorDataset(x, (torch.arange(n) % 2).long())


def test_a_table_of_other_data_of_the_same_size_is_refused():
    probed, other = PruningDataModule(data()), PruningDataModule(data(offset=0.5))
    scores = np.arange(N, dtype=float)
    table = ScoreTable({"s": scores}, metadata={"dataset_fingerprint": probed.fingerprint()})
    assert probed.prune(table, score="s", keep_fraction=0.5).tolist() == list(range(10, 20))
    with pytest.raises(ValueError, match=f"computed on dataset {probed.fingerprint()}, .*{other.fingerprint()}"):
        other.prune(table, score="s", keep_fraction=0.5)
    app_table = ScoreTable({"s": scores}, metadata={"dataset": {"fingerprint": probed.fingerprint()}})
    with pytest.raises(ValueError, match="its scores belong to other data"):
        other.prune(app_table, score="s", keep_fraction=0.5)
    # the documented way to use them anyway: the bare array carries no provenance
    assert other.prune(table["s"], keep_fraction=0.5).tolist() == list(range(10, 20))


def test_the_callbacks_table_records_the_dataset_fingerprint():
    dm = PruningDataModule(data(), batch_size=5)
    callback = DifficultyCallback(scores=("el2n",))
    quiet_trainer(max_epochs=1, callbacks=[callback]).fit(LitClassifier(nn.Linear(1, 2)), datamodule=dm)
    assert callback.score_table.metadata["dataset_fingerprint"] == dataset_fingerprint(data())
    assert callback.score_table.dataset_fingerprint == dm.fingerprint()


def test_unscored_examples_are_refused_or_announced():
    dm = PruningDataModule(data())
    with pytest.raises(ValueError, match="NaN for all 20 examples"):
        dm.prune(np.full(N, np.nan), keep_fraction=0.5)
    eleven = np.r_[np.full(11, np.nan), np.arange(9.0)]
    with pytest.raises(ValueError, match=r"NaN \(never scored\) for 11 of 20 examples \(55%\)"):
        dm.prune(eleven, keep_fraction=0.5)
    assert len(dm.prune(eleven, keep_fraction=0.5, max_unscored_fraction=0.6)) == 10  # the documented way out
    ten = np.r_[np.full(10, np.nan), np.arange(10.0)]
    with pytest.warns(UserWarning, match=r"NaN \(never scored\) for 10 of 20 examples .*rank as hardest"):
        kept = dm.prune(ten, keep_fraction=0.5, strategy="hard")
    assert kept.tolist() == list(range(10))  # the unscored ten are the "hardest"
    assert len(dm.prune(np.full(N, np.nan), keep_fraction=0.5, strategy="random")) == 10  # random ignores scores


def test_scores_must_be_one_dimensional():
    with pytest.raises(ValueError, match=r"'s' must be 1-D .*got shape \(20, 2\)"):
        ScoreTable({"s": np.zeros((N, 2))})
    with pytest.raises(ValueError, match=r"'s' must be 1-D .*got shape \(\)"):
        ScoreTable({"s": np.float64(1.0)})
    with pytest.raises(ValueError, match=r"`labels` must be 1-D"):
        ScoreTable({"s": np.zeros(N)}, labels=np.zeros((N, 1)))
    with pytest.raises(ValueError, match=r"scores must be 1-D .*got shape \(20, 2\)"):
        PruningDataModule(data()).prune(np.zeros((N, 2)))


def _csv(path, indices):
    path.write_text("index,score\n" + "".join(f"{i},{float(i)}\n" for i in indices))
    return path


def test_an_imported_csv_covering_part_of_the_dataset_says_how_many_are_missing(tmp_path):
    dm = PruningDataModule(data())
    partial = _csv(tmp_path / "partial.csv", range(5, 20))  # examples 0..4 missing
    with pytest.warns(UserWarning, match="for 5 of 20 examples; they get NaN, which `prune` ranks as hardest"):
        table = table_for_datamodule(partial, dm, "el2n")
    assert table.metadata["num_unscored"] == 5
    with pytest.warns(UserWarning, match="for 5 of 20 examples"):
        kept = dm.prune(table, score="el2n", keep_fraction=0.5, strategy="hard")
    assert kept.tolist() == [0, 1, 2, 3, 4, 15, 16, 17, 18, 19]  # the 5 missing, then the 5 largest scores
    sparse = _csv(tmp_path / "sparse.csv", range(12, 20))
    with pytest.warns(UserWarning, match="for 12 of 20 examples"):
        table = import_score_table(sparse, num_examples=N)
    with pytest.raises(ValueError, match="12 of 20 examples"):
        dm.prune(table, score="imported", keep_fraction=0.5)


def test_examples_never_presented_are_named_when_the_table_is_built():
    dm = PruningDataModule(data(n=40), batch_size=8, shuffle=False)
    callback = DifficultyCallback(scores=("forgetting", "el2n"))
    trainer = quiet_trainer(max_epochs=2, limit_train_batches=2, callbacks=[callback])
    with pytest.warns(UserWarning, match=r"24 of 40 training examples were never presented .*\['forgetting'\] are NaN"):
        trainer.fit(LitClassifier(nn.Linear(1, 2)), datamodule=dm)
    table = callback.score_table
    assert table.metadata["examples_never_presented"] == 24  # 2 batches of 8 presented out of 40
    assert np.isnan(table["forgetting"]).sum() == 24 and not np.isnan(table["el2n"]).any()


class AugmentedDataset(Dataset):
    """Random augmentation on every read, and no array attributes: fingerprinted through sampled items."""

    def __len__(self):
        return 30

    def __getitem__(self, i):
        return torch.rand(2) + i, random.random(), i % 2


def test_a_randomly_augmented_dataset_has_one_fingerprint_and_the_callers_rng_is_untouched():
    torch.manual_seed(1)
    random.seed(1)
    state = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    first = dataset_fingerprint(AugmentedDataset())
    assert torch.equal(torch.get_rng_state(), state[0]) and random.getstate() == state[1]
    assert np.array_equal(np.random.get_state()[1], state[2])
    assert dataset_fingerprint(AugmentedDataset()) == first


def test_the_fingerprint_is_computed_once_per_data_module(monkeypatch):
    calls = []
    monkeypatch.setattr(datamodule_module, "dataset_fingerprint", lambda ds: calls.append(ds) or "abc")
    dm = PruningDataModule(data())
    assert dm.fingerprint() == dm.fingerprint() == "abc" and len(calls) == 1
    dm.train_dataset = data(offset=1.0)  # another training set: hashed again
    dm.fingerprint()
    assert len(calls) == 2


def test_a_checkpoint_of_other_data_of_the_same_size_is_refused():
    state = PruningDataModule(data()).state_dict()
    PruningDataModule(data()).load_state_dict(state)  # the same data: fine
    with pytest.raises(ValueError, match="resume only with the data it was trained on"):
        PruningDataModule(data(offset=0.5)).load_state_dict(state)
