"""When Lightning restores a callback's state relative to its `setup` (Lightning 2.6), and what the one shared
"state loaded before setup" path (`callbacks._deferred_state.DeferredState`) is there for."""

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch import nn
from torch.utils.data import TensorDataset

from _modules import LitClassifier, quiet_trainer
from datadiet import DynamicPruning, PruningDataModule
from datadiet.callbacks._deferred_state import DeferredState


class Order(Callback):
    """Test-owned: the order of `setup` and `load_state_dict` calls."""

    def __init__(self):
        self.events = []

    def setup(self, trainer, pl_module, stage):
        self.events.append(f"setup:{stage.value if hasattr(stage, 'value') else stage}")

    def state_dict(self):
        return {"saved": 1}

    def load_state_dict(self, state_dict):
        self.events.append("load_state_dict")


class WithValidation(LitClassifier):
    def validation_step(self, batch, batch_idx):
        return None


def fit_and_checkpoint(tmp_path):
    data = TensorDataset(torch.randn(16, 3), torch.randint(0, 2, (16,)))
    dm = PruningDataModule(data, data, batch_size=8)
    model = WithValidation(nn.Linear(3, 2))
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="last")
    quiet_trainer(max_epochs=1, callbacks=[Order(), checkpoint], enable_checkpointing=True).fit(model, datamodule=dm)
    return model, dm, tmp_path / "last.ckpt"


def test_a_resumed_fit_restores_callbacks_after_setup(tmp_path):
    model, dm, ckpt = fit_and_checkpoint(tmp_path)
    order = Order()
    quiet_trainer(max_epochs=2, callbacks=[order]).fit(model, datamodule=dm, ckpt_path=ckpt)
    assert order.events == ["setup:fit", "load_state_dict"]  # fit never loads a state before `setup`


def test_validate_with_a_checkpoint_restores_after_a_setup_of_another_stage(tmp_path):
    model, dm, ckpt = fit_and_checkpoint(tmp_path)
    order = Order()
    quiet_trainer(callbacks=[order]).validate(model, datamodule=dm, ckpt_path=ckpt)
    # the pruning callbacks build their state at `setup("fit")` only: this is the path DeferredState holds for
    assert order.events == ["setup:validate", "load_state_dict"]


def test_a_state_loaded_before_setup_waits_for_it():
    class Counter(DeferredState):
        def __init__(self):
            self.value = None

        def _state_built(self):
            return self.value is not None

        def _apply_state(self, state_dict):
            self.value = state_dict["value"]

    counter = Counter()
    counter.load_state_dict({"value": 3})
    assert counter.value is None  # nothing to load it into yet
    counter.value = 0  # what `setup` does: build, then apply what waited
    counter._apply_pending_state()
    assert counter.value == 3
    counter.load_state_dict({"value": 5})  # built: applied at once
    assert counter.value == 5


def test_dynamic_pruning_loaded_by_hand_before_fit_continues_the_saved_losses():
    dm = PruningDataModule(TensorDataset(torch.randn(16, 3), torch.randint(0, 2, (16,))), batch_size=8)
    saved = np.linspace(0.0, 1.5, 16)
    pruning = DynamicPruning(prune_ratio=0.5, anneal_fraction=0.0)
    pruning.load_state_dict({"scores": torch.from_numpy(saved), "kept_per_epoch": [16]})
    quiet_trainer(max_epochs=1, callbacks=[pruning]).fit(LitClassifier(nn.Linear(3, 2), lr=0.0), datamodule=dm)
    # epoch 0 chose from the saved losses: 8 below the mean, a floor(0.5 * 8) = 4 of them kept
    assert pruning.kept_per_epoch == [16, 12]
