"""ReducibleLossSelection (online RHO-LOSS) against a worked case, a plain-PyTorch reference loop, and in real
Trainers."""

from collections import namedtuple

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from _modules import DictDataset, quiet_trainer
from _recorder import BatchRecorder
from datadiet import Adapter, DynamicPruning, PruningDataModule, ReducibleLossSelection
from datadiet.compute import ComputeAccount
from datadiet.data.batch_rows import take_rows
from datadiet.scores.rho_loss import IrreducibleLosses

# The worked case: logits are the inputs (an identity layer, lr 0), two classes, large batches of 4, n_b = 2.
#   example  logits   label  loss = logsumexp(z) - z_y   irreducible  reducible
#   0        (2, 0)   0      log(1 + e^-2) = 0.1269       0.0          0.1269
#   1        (2, 0)   1      log(1 + e^2)  = 2.1269       1.9          0.2269   a wrong label: largest loss
#   2        (0, 0)   0      log 2         = 0.6931       0.1          0.5931
#   3        (0, 1)   0      log(1 + e)    = 1.3133       0.3          1.0133
#   4        (1, 0)   1      log(1 + e)    = 1.3133       1.3          0.0133
#   5        (0, 3)   1      log(1 + e^-3) = 0.0486       0.05        -0.0014
#   6        (0, 0)   1      log 2         = 0.6931       0.2          0.4931
#   7        (5, 0)   1      (holdout: no irreducible loss, never trained on)
# Batches (no shuffle, 7 candidates): [0, 1, 2, 3] keeps the 2 largest, {3, 2} (the largest *loss* would take
# the wrong label 1); [4, 5, 6] keeps max(1, ⌊0.5 · 3⌋) = 1: {6}.
LOGITS = [[2, 0], [2, 0], [0, 0], [0, 1], [1, 0], [0, 3], [0, 0], [5, 0]]
LABELS = [0, 1, 0, 0, 1, 1, 1, 1]
IRREDUCIBLE = [0.0, 1.9, 0.1, 0.3, 1.3, 0.05, 0.2, float("nan")]
SELECTED = [[2, 3], [6]]


class Identity(pl.LightningModule):
    """logits = x (a 2 x 2 identity layer), float64; records what ``training_step`` and ``forward`` saw."""

    def __init__(self, lr=0.0):
        super().__init__()
        self.layer = nn.Linear(2, 2, bias=False).double()
        with torch.no_grad():
            self.layer.weight.copy_(torch.eye(2))
        self.lr = lr
        self.steps, self.forward_modes = [], []

    def forward(self, x):
        self.forward_modes.append(self.training)
        return self.layer(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.steps.append((x.clone(), y.clone()))
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", F.cross_entropy(self(batch[0]), batch[1]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def worked_data():
    return TensorDataset(torch.tensor(LOGITS, dtype=torch.float64), torch.tensor(LABELS))


def fit(module, callbacks, epochs=2, data=None, batch_size=4, **trainer_options):
    dm = PruningDataModule(data or worked_data(), batch_size=batch_size, shuffle=False)
    trainer = quiet_trainer(max_epochs=epochs, callbacks=callbacks, **trainer_options)
    trainer.fit(module, datamodule=dm)
    return trainer, dm


def test_worked_case_trains_on_the_largest_reducible_losses():
    selection = ReducibleLossSelection(np.array(IRREDUCIBLE), selected_fraction=0.5)
    module = Identity()
    _, dm = fit(module, [selection], epochs=2)
    x, y = worked_data().tensors
    seen = [step[0] for step in module.steps]
    expected = [x[rows] for rows in SELECTED] * 2
    assert len(seen) == len(expected)
    for got, want in zip(seen, expected):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(module.steps[0][1], y[[2, 3]], rtol=0, atol=0)  # labels cut with the inputs
    assert selection.scored_per_epoch == [7, 7] and selection.presentations_per_epoch == [3, 3]
    np.testing.assert_array_equal(selection.times_selected, [0, 0, 2, 2, 0, 0, 2, 0])
    assert dm.train_examples_served == 6  # what training_step saw, not the large batches


def test_compute_account_counts_selection_forwards_and_the_irreducible_model():
    record = IrreducibleLosses(
        np.array(IRREDUCIBLE), np.array([7]), False, train_presentations=10, scored_examples=7, flops_per_example=5.0
    )
    selection = ReducibleLossSelection(record, selected_fraction=0.5)
    fit(Identity(), [selection], epochs=2)
    account = selection.compute_account(flops_per_example=8.0)
    # main model: 2 epochs x (3 trained at 3x + 7 scored at 1x); IL model: 10 trained at 3x + 7 scored at 1x
    assert account.total_flops == 8.0 * (2 * (3 * 3 + 7)) + 5.0 * (3 * 10 + 7)
    assert account == ComputeAccount(
        8.0,
        train_presentations=6,
        probe_flops_per_example=5.0,
        probe_presentations=10,
        probe_scored=7,
        in_run_scored=14,
    )
    with pytest.raises(ValueError, match="cost"):
        ReducibleLossSelection(np.array(IRREDUCIBLE)).compute_account(8.0)


def test_selected_fraction_one_trains_on_everything_without_scoring():
    selection = ReducibleLossSelection(np.zeros(8), selected_fraction=1.0)
    module = Identity()
    fit(module, [selection], epochs=1)
    assert [len(step[0]) for step in module.steps] == [4, 4] and len(module.forward_modes) == 2
    assert selection.scored_per_epoch == [0] and selection.presentations_per_epoch == [8]


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_selection_mode(mode):
    module = Identity()
    fit(module, [ReducibleLossSelection(np.array(IRREDUCIBLE), 0.5, selection_mode=mode)], epochs=1)
    # each step: the selection forward, then training_step's; the module trains in train mode either way
    assert module.forward_modes == [mode == "train", True] * 2


def reference_run(x, y, irreducible, batches, fraction, lr, steps_per_epoch, epochs):
    """Plain PyTorch: per step, the top ``⌊fraction · n_B⌋`` of the large batch by loss − irreducible, one SGD step."""
    weight = torch.eye(2, dtype=torch.float64).requires_grad_()
    chosen = []
    for epoch in range(epochs):
        for rows in batches:
            with torch.no_grad():
                logits = x[rows] @ weight.T
                losses = torch.logsumexp(logits, 1) - logits[torch.arange(len(rows)), y[rows]]
            reducible = losses.numpy() - irreducible[rows]
            count = max(1, int(np.floor(fraction * len(rows))))
            keep = np.sort(np.argsort(-reducible, kind="stable")[:count])
            picked = np.asarray(rows)[keep]
            chosen.append(picked.tolist())
            loss = F.cross_entropy(x[picked] @ weight.T, y[picked])
            (grad,) = torch.autograd.grad(loss, weight)
            with torch.no_grad():
                weight -= lr * grad
    return weight.detach(), chosen


def test_training_follows_a_plain_pytorch_reference():
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(40, 2, generator=generator, dtype=torch.float64)
    y = (x[:, 0] + 0.3 * torch.randn(40, generator=generator, dtype=torch.float64) > 0).long()
    irreducible = np.random.default_rng(0).uniform(0, 1, 40)
    module = Identity(lr=0.5)
    selection = ReducibleLossSelection(irreducible, selected_fraction=0.3)
    record = BatchRecorder()
    fit(module, [selection, record], epochs=3, data=TensorDataset(x, y), batch_size=10)
    chosen = [batch for epoch in sorted(record.batches) for batch in record.batches[epoch]]
    batches = [list(range(start, start + 10)) for start in range(0, 40, 10)]
    weight, expected = reference_run(x, y, irreducible, batches, 0.3, 0.5, 4, 3)
    assert chosen == expected
    torch.testing.assert_close(module.layer.weight.detach(), weight, rtol=0, atol=1e-12)


def test_take_rows_keeps_the_structure_of_a_batch():
    Pair = namedtuple("Pair", "image label")
    batch = {
        "pair": Pair(torch.arange(8).view(4, 2), torch.tensor([0, 1, 2, 3])),
        "names": ["a", "b", "c", "d"],
        "shared": torch.ones(3),
        "scale": 2.0,
    }
    cut = take_rows(batch, torch.tensor([3, 1]), 4)
    assert isinstance(cut["pair"], Pair)
    torch.testing.assert_close(cut["pair"].image, torch.tensor([[6, 7], [2, 3]]))
    torch.testing.assert_close(cut["pair"].label, torch.tensor([3, 1]))
    assert cut["names"] == ["d", "b"] and cut["scale"] == 2.0
    torch.testing.assert_close(cut["shared"], torch.ones(3))  # not per example: passed through
    assert batch["names"] == ["a", "b", "c", "d"]  # the input is left as it was


class DictModule(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(2, 2)
        self.batch_sizes = []

    def forward(self, x):
        return self.layer(x)

    def training_step(self, batch, batch_idx):
        self.batch_sizes.append((len(batch["x"]), len(batch["y"])))
        return F.cross_entropy(self(batch["x"]), batch["y"])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_dict_batches_through_an_adapter():
    x, y = worked_data().tensors
    adapter = Adapter(input_fn=lambda b: b["x"], target_fn=lambda b: b["y"])
    module = DictModule()
    selection = ReducibleLossSelection(np.zeros(8), selected_fraction=0.25, adapter=adapter)
    fit(module, [selection], epochs=1, data=DictDataset(x.float(), y))
    assert module.batch_sizes == [(1, 1), (1, 1)]
    # without an adapter, x / y (and Hugging Face's input_ids / labels) are read by name; other keys are refused
    fit(DictModule(), [ReducibleLossSelection(np.zeros(8), 0.25)], epochs=1, data=DictDataset(x.float(), y))
    other_keys = [{"features": features, "cls": label} for features, label in zip(x.float(), y)]
    with pytest.raises(ValueError, match="input_fn"):
        fit(DictModule(), [ReducibleLossSelection(np.zeros(8), 0.25)], epochs=1, data=other_keys)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"selected_fraction": 0}, "selected_fraction"),
        ({"selected_fraction": 1.5}, "selected_fraction"),
        ({"selected_fraction": True}, "selected_fraction"),
        ({"selection_mode": "test"}, "selection_mode"),
        ({"irreducible_losses": np.zeros((2, 4))}, "1-D"),
        ({"irreducible_losses": np.array([0.0, np.inf])}, "infinite"),
        ({"adapter": "x"}, "adapter"),
        ({"batch_subset_fn": 3}, "batch_subset_fn"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ReducibleLossSelection(**{"irreducible_losses": np.zeros(8), **kwargs})


def test_refused_before_training():
    with pytest.raises(ValueError, match="8 examples"):
        fit(Identity(), [ReducibleLossSelection(np.zeros(5))])
    with pytest.raises(ValueError, match="NaN"):
        fit(Identity(), [ReducibleLossSelection(np.full(8, np.nan))])
    with pytest.raises(ValueError, match="DynamicPruning"):
        fit(Identity(), [ReducibleLossSelection(np.zeros(8)), DynamicPruning()])
    loader = DataLoader(worked_data(), batch_size=4)
    with pytest.raises(RuntimeError, match="PruningDataModule"):
        quiet_trainer(max_epochs=1, callbacks=[ReducibleLossSelection(np.zeros(8))]).fit(Identity(), loader)


def test_a_later_fit_without_the_callback_trains_on_everything():
    data = worked_data()
    dm = PruningDataModule(data, batch_size=4, shuffle=False)
    quiet_trainer(max_epochs=1, callbacks=[ReducibleLossSelection(np.array(IRREDUCIBLE), 0.5)]).fit(
        Identity(), datamodule=dm
    )
    module = Identity()
    quiet_trainer(max_epochs=1).fit(module, datamodule=dm)
    assert [len(step[0]) for step in module.steps] == [4, 4]


def separable_data(num=48, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(num, 2, generator=generator, dtype=torch.float64)
    return TensorDataset(x, (x[:, 0] > 0).long())


@pytest.mark.parametrize("validation", [False, True])
def test_resume_gives_the_same_selections_and_counts(tmp_path, validation):
    data = separable_data()
    irreducible = np.random.default_rng(1).uniform(0, 1, 48)
    make_dm = lambda: PruningDataModule(data, data if validation else None, batch_size=12)
    reference, module = ReducibleLossSelection(irreducible, 0.5), Identity(lr=0.3)
    quiet_trainer(max_epochs=4, callbacks=[reference]).fit(module, datamodule=make_dm())
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    quiet_trainer(
        max_epochs=2, callbacks=[ReducibleLossSelection(irreducible, 0.5), checkpoint], enable_checkpointing=True
    ).fit(Identity(lr=0.3), datamodule=make_dm())
    resumed, resumed_module = ReducibleLossSelection(irreducible, 0.5), Identity(lr=0.3)
    quiet_trainer(max_epochs=4, callbacks=[resumed]).fit(
        resumed_module, datamodule=make_dm(), ckpt_path=tmp_path / "last.ckpt"
    )
    assert resumed.scored_per_epoch == reference.scored_per_epoch == [48] * 4
    assert resumed.presentations_per_epoch == reference.presentations_per_epoch == [24] * 4
    np.testing.assert_array_equal(resumed.times_selected, reference.times_selected)
    torch.testing.assert_close(resumed_module.layer.weight, module.layer.weight, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="other irreducible losses"):
        quiet_trainer(max_epochs=4, callbacks=[ReducibleLossSelection(irreducible + 1, 0.5)]).fit(
            Identity(lr=0.3), datamodule=make_dm(), ckpt_path=tmp_path / "last.ckpt"
        )


class UserDataModule(pl.LightningDataModule):
    """A user's data module whose own hook runs on the device: its loader yields −x, its hook restores x."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def train_dataloader(self):
        x, y = worked_data().tensors
        return DataLoader(TensorDataset(-x, y), batch_size=4, shuffle=False)

    def on_after_batch_transfer(self, batch, dataloader_idx):
        self.calls += 1
        x, y = batch
        return [-x, y]


class HookedIdentity(Identity):
    def on_after_batch_transfer(self, batch, dataloader_idx):
        self.hook_calls = getattr(self, "hook_calls", 0) + 1
        return batch


def test_the_users_on_after_batch_transfer_runs_before_the_selection():
    user = UserDataModule()
    dm = PruningDataModule.from_datamodule(user)
    module = Identity()
    quiet_trainer(max_epochs=1, callbacks=[ReducibleLossSelection(np.array(IRREDUCIBLE), 0.5)]).fit(
        module, datamodule=dm
    )
    assert user.calls == 2  # two large batches, each seen by the user's hook first
    x, _ = worked_data().tensors
    for got, rows in zip([step[0] for step in module.steps], SELECTED):  # selected on the restored inputs
        torch.testing.assert_close(got, x[rows], rtol=0, atol=0)
    module = HookedIdentity()
    fit(module, [ReducibleLossSelection(np.array(IRREDUCIBLE), 0.5)], epochs=1)
    assert module.hook_calls == 2 and [len(step[0]) for step in module.steps] == [2, 1]


class RegressionIdentity(Identity):
    """The same identity layer as a regressor: outputs (B, 2) against float targets (B, 2), trained by MSE."""

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.steps.append((x.clone(), y.clone()))
        return F.mse_loss(self(x), y)


def test_a_regressor_is_ranked_by_its_own_loss_through_the_adapter():
    # MSE per example = mean over the 2 outputs of (x - 0)^2:  0, 1, 2, 4.5; irreducible 0, 0, 1.9, 4.0;
    # reducible 0, 1, 0.1, 0.5: the 2 kept are {1, 3} (by the largest loss alone they would be {3, 2}).
    x = torch.tensor([[0, 0], [1, 1], [2, 0], [0, 3]], dtype=torch.float64)
    data = TensorDataset(x, torch.zeros(4, 2, dtype=torch.float64))
    selection = ReducibleLossSelection(
        np.array([0.0, 0.0, 1.9, 4.0]), selected_fraction=0.5, adapter=Adapter(loss="mse")
    )
    module = RegressionIdentity()
    fit(module, [selection], epochs=1, data=data)
    torch.testing.assert_close(module.steps[0][0], x[[1, 3]], rtol=0, atol=0)
    bad = ReducibleLossSelection(np.zeros(4), selected_fraction=0.5, adapter=Adapter(loss=lambda out, batch: out))
    with pytest.raises(ValueError, match=r"one loss per example, got losses of shape \(4, 2\)"):
        fit(RegressionIdentity(), [bad], epochs=1, data=data)
