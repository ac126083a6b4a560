"""A second `trainer.fit` with the same DifficultyCallback, and class labels read through an Adapter."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from _modules import DictDataset, DictTupleClassifier, LitClassifier, quiet_trainer
from datadiet import Adapter, DifficultyCallback, PruningDataModule
from datadiet.data.labels import dataset_labels

N, D, K = 24, 3, 3


def labelled(n=N):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, D, generator=generator)
    return TensorDataset(x, torch.arange(n) % K)


def presentations(callback):
    return callback.scores["forgetting"].presentations.tolist()


def test_a_fit_that_trains_nothing_keeps_the_table():
    dm = PruningDataModule(labelled(), batch_size=6)
    callback = DifficultyCallback(scores=("forgetting", "el2n"))
    trainer = quiet_trainer(max_epochs=2, callbacks=[callback])
    module = LitClassifier(nn.Linear(D, K))
    trainer.fit(module, datamodule=dm)
    table = callback.score_table
    before = {name: table[name].copy() for name in table}
    trainer.fit(module, datamodule=dm)  # max_epochs already reached: Lightning trains nothing
    assert callback.score_table is table and callback.epochs_recorded == 2
    for name, values in before.items():
        np.testing.assert_array_equal(callback.score_table[name], values)
    assert presentations(callback) == [2] * N


def test_training_the_same_model_further_continues_the_statistics():
    dm = PruningDataModule(labelled(), batch_size=6)
    callback = DifficultyCallback(scores=("forgetting",))
    module = LitClassifier(nn.Linear(D, K))
    quiet_trainer(max_epochs=2, callbacks=[callback]).fit(module, datamodule=dm)
    quiet_trainer(max_epochs=1, callbacks=[callback]).fit(module, datamodule=dm)  # a new Trainer, same model
    assert callback.epochs_recorded == 3
    assert presentations(callback) == [3] * N  # 2 + 1 epochs, every example once per epoch
    assert not np.isnan(callback.score_table["forgetting"]).any()


def test_a_new_model_is_refused_until_reset():
    dm = PruningDataModule(labelled(), batch_size=6)
    callback = DifficultyCallback(scores=("forgetting",))
    quiet_trainer(max_epochs=2, callbacks=[callback]).fit(LitClassifier(nn.Linear(D, K)), datamodule=dm)
    table = callback.score_table
    with pytest.raises(RuntimeError, match=r"2 epoch\(s\) of statistics of another model.*callback.reset\(\)"):
        quiet_trainer(max_epochs=1, callbacks=[callback]).fit(LitClassifier(nn.Linear(D, K)), datamodule=dm)
    assert callback.score_table is table  # the good table is still there
    callback.reset()
    quiet_trainer(max_epochs=1, callbacks=[callback]).fit(LitClassifier(nn.Linear(D, K)), datamodule=dm)
    assert callback.epochs_recorded == 1 and presentations(callback) == [1] * N


def test_a_data_module_of_another_size_is_refused():
    callback = DifficultyCallback(scores=("forgetting",))
    module = LitClassifier(nn.Linear(D, K))
    dm = PruningDataModule(labelled(), batch_size=6)
    quiet_trainer(max_epochs=1, callbacks=[callback]).fit(module, datamodule=dm)
    with pytest.raises(ValueError, match="statistics of 24 training examples .* the data module has 12"):
        quiet_trainer(max_epochs=1, callbacks=[callback]).fit(module, datamodule=PruningDataModule(labelled(12)))


def test_class_balanced_pruning_uses_the_adapters_labels_for_dict_batches():
    x, y = labelled()[:]
    dm = PruningDataModule(DictDataset(x, y), batch_size=6)
    assert dataset_labels(dm.train_dataset) is None  # nothing to read without the adapter
    adapter = Adapter(input_fn=lambda b: b["x"], target_fn=lambda b: b["y"], logits_fn=lambda out: out[0])
    callback = DifficultyCallback(scores=("el2n", "forgetting"), adapter=adapter)
    quiet_trainer(max_epochs=1, callbacks=[callback]).fit(DictTupleClassifier(D, K), datamodule=dm)
    table = callback.score_table
    np.testing.assert_array_equal(table.labels, (np.arange(N) % K))
    kept = dm.prune(table, score="el2n", keep_fraction=0.5, class_balanced=True)
    assert np.bincount(np.arange(N)[kept] % K).tolist() == [4, 4, 4]  # half of each class of 8


class WithAuxiliary(Dataset):
    """Items (x, group, y): the second element is not the class, so `dataset_labels` would read the wrong one."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], i % 2, self.y[i]


class ThirdIsTarget(LitClassifier):
    def training_step(self, batch, batch_idx):
        x, _, y = batch
        return F.cross_entropy(self(x), y)


def test_the_adapters_labels_win_over_the_datasets_second_element_also_for_unseen_examples():
    x, y = labelled()[:]
    dm = PruningDataModule(WithAuxiliary(x, y), batch_size=6, shuffle=False)
    callback = DifficultyCallback(scores=("forgetting",), adapter=Adapter(target_fn=lambda b: b[2]))
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=2, callbacks=[callback])
    with pytest.warns(UserWarning, match="12 of 24 training examples were never presented"):
        trainer.fit(ThirdIsTarget(nn.Linear(D, K)), datamodule=dm)
    # 12 labels seen in training, the other 12 read through the adapter
    np.testing.assert_array_equal(callback.score_table.labels, np.arange(N) % K)
