"""DynamicPruning's weights cannot be silently wrong: the hooked gradient equals the explicitly weighted loss
for a language model, a regressor, two forwards per step and two optimizers under manual optimisation
(float64, max |Δ| ≤ 1e-12); what it cannot weight is refused at the first step."""

import copy

import lightning.pytorch as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from _modules import Regressor, TinyLM, quiet_trainer, token_data
from datadiet import Adapter, DynamicPruning, PruningDataModule

TOLERANCE = 1e-12


class Batches(L.Callback):
    """The original indices of every training batch, per epoch."""

    def __init__(self):
        self.batches = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batches.setdefault(trainer.current_epoch, []).append(trainer.datamodule.batch_original_index.clone())


def lr_zero_then_one(optimizer):
    """Epoch 0 (one step) records the losses without moving; epoch 1 takes one full step."""
    return {
        "optimizer": optimizer,
        "lr_scheduler": {
            "scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.0 if step == 0 else 1.0),
            "interval": "step",
        },
    }


class ScheduledLM(TinyLM):
    def configure_optimizers(self):
        return lr_zero_then_one(torch.optim.SGD(self.parameters(), lr=self.lr))


class ScheduledRegressor(Regressor):
    def configure_optimizers(self):
        return lr_zero_then_one(torch.optim.SGD(self.parameters(), lr=self.lr))


def infobatch_weights(losses, ratio=0.5):
    """InfoBatch's weights for the kept examples: 1 / (1 − r) below the mean loss, 1 elsewhere."""
    return np.where(losses < losses.mean(), 1 / (1 - ratio), 1.0)


def max_difference(a, b):
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))


def one_step_equivalence(model, data, explicit_loss, per_example_losses):
    """Trains two epochs (lr 0, then one step over the kept set) and applies the same step by hand."""
    initial = copy.deepcopy(model)
    pruning, batches = (
        DynamicPruning(
            prune_ratio=0.5,
            anneal_fraction=0.0,
            adapter=Adapter(loss="mse" if isinstance(model, Regressor) else "cross_entropy"),
        ),
        Batches(),
    )
    n = len(data)
    quiet_trainer(max_epochs=2, callbacks=[pruning, batches]).fit(
        model, datamodule=PruningDataModule(data, batch_size=n)
    )
    (kept,) = batches.batches[1]
    assert len(kept) < n  # epoch 1 was pruned
    weights = torch.tensor(infobatch_weights(per_example_losses(initial)))[kept]
    explicit_loss(initial, kept, weights).backward()
    with torch.no_grad():
        for parameter in initial.parameters():
            parameter -= model.lr * parameter.grad
    return max_difference(model, initial)


def test_language_model_hooked_gradient_equals_the_weighted_token_loss():
    data = token_data(num_examples=24, as_dict=True)

    def losses(model):
        with torch.no_grad():
            z = model(data.tokens)
        token = F.cross_entropy(z.transpose(1, 2), data.labels, ignore_index=-100, reduction="none")
        real = data.labels != -100
        return ((token * real).sum(1) / real.sum(1)).numpy()

    def explicit(model, kept, weights):
        # the LM's own loss, the token mean over the batch, with every token of example i weighted by w_i
        logits, labels = model(data.tokens[kept]), data.labels[kept]
        token = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
        real = labels != -100
        return (weights[:, None] * token * real).sum() / real.sum()

    difference = one_step_equivalence(ScheduledLM(double=True), data, explicit, losses)
    print(f"language model: max |hooked − explicitly weighted| parameter difference {difference:.3g}")
    assert difference <= TOLERANCE


@pytest.mark.parametrize("outputs", [0, 3])
def test_regressor_hooked_gradient_equals_the_weighted_squared_error(outputs):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(30, 4, generator=generator, dtype=torch.float64)
    y = torch.randn(30, outputs or 1, generator=generator, dtype=torch.float64)
    y = y if outputs else y.squeeze(1)
    data = TensorDataset(x, y)

    def losses(model):
        with torch.no_grad():
            return ((model(x) - y) ** 2).reshape(30, -1).mean(1).numpy()

    def explicit(model, kept, weights):
        errors = ((model(x[kept]) - y[kept]) ** 2).reshape(len(kept), -1)
        return (weights[:, None] * errors).mean()

    difference = one_step_equivalence(ScheduledRegressor(outputs=outputs, double=True, lr=0.1), data, explicit, losses)
    print(
        f"regressor ({outputs or 1} outputs): max |hooked − explicitly weighted| parameter difference {difference:.3g}"
    )
    assert difference <= TOLERANCE


# Several forwards, several optimizers --------------------------------------------------------------
def classification_data(n=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    y = torch.randint(3, (n,), generator=generator)
    x = torch.randn(3, 5, generator=generator, dtype=torch.float64)[y] + torch.randn(
        n, 5, generator=generator, dtype=torch.float64
    )
    return TensorDataset(x, y)


class TwoViews(L.LightningModule):
    """Two forwards per step (an original and a scaled view), both in the loss."""

    def __init__(self, lr=0.5):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
        self.lr = lr

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y) + F.cross_entropy(self(0.5 * x), y)

    def configure_optimizers(self):
        return lr_zero_then_one(torch.optim.SGD(self.parameters(), lr=self.lr))


def test_every_forward_of_a_step_is_weighted():
    data = classification_data()
    x, y = data.tensors

    def losses(model):  # scored from the step's first forward
        with torch.no_grad():
            return F.cross_entropy(model(x), y, reduction="none").numpy()

    def explicit(model, kept, weights):
        views = F.cross_entropy(model(x[kept]), y[kept], reduction="none")
        views = views + F.cross_entropy(model(0.5 * x[kept]), y[kept], reduction="none")
        return (weights * views).mean()

    difference = one_step_equivalence(TwoViews(), data, explicit, losses)
    print(f"two forwards per step: max |Δ| {difference:.3g}")
    assert difference <= TOLERANCE


class TwoOptimizers(L.LightningModule):
    """Manual optimisation: the body, then the head, each stepped after its own forward (no update in epoch 0)."""

    def __init__(self, lr=0.5):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Linear(5, 8).double()
        self.head = nn.Linear(8, 3).double()
        self.automatic_optimization = False
        self.lr = lr

    def forward(self, x):
        return self.head(torch.tanh(self.body(x)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        body_opt, head_opt = self.optimizers()
        for optimizer in (body_opt, head_opt):
            optimizer.zero_grad()
            self.manual_backward(F.cross_entropy(self(x), y))
            if self.current_epoch > 0:
                optimizer.step()

    def configure_optimizers(self):
        return torch.optim.SGD(self.body.parameters(), lr=self.lr), torch.optim.SGD(self.head.parameters(), lr=self.lr)


def test_two_optimizers_under_manual_optimisation_are_both_weighted():
    data = classification_data()
    x, y = data.tensors
    model = TwoOptimizers()
    initial = copy.deepcopy(model)
    pruning, batches = DynamicPruning(prune_ratio=0.5, anneal_fraction=0.0), Batches()
    quiet_trainer(max_epochs=2, callbacks=[pruning, batches]).fit(
        model, datamodule=PruningDataModule(data, batch_size=32)
    )
    (kept,) = batches.batches[1]
    with torch.no_grad():
        losses = F.cross_entropy(initial(x), y, reduction="none").numpy()
    weights = torch.tensor(infobatch_weights(losses))[kept]
    for part in (initial.body, initial.head):  # the reference: both updates with the weighted loss
        initial.zero_grad()
        (weights * F.cross_entropy(initial(x[kept]), y[kept], reduction="none")).mean().backward()
        with torch.no_grad():
            for parameter in part.parameters():
                parameter -= 0.5 * parameter.grad
    difference = max_difference(model, initial)
    print(f"two optimizers, manual optimisation: max |Δ| {difference:.3g}")
    assert len(kept) < 32 and difference <= TOLERANCE


class ManualSchedule(TwoOptimizers):
    """Manual optimisation with a OneCycle schedule sized from `estimated_stepping_batches`, stepped per batch."""

    def __init__(self, interval="step"):
        super().__init__(lr=0.1)
        self.interval = interval

    def training_step(self, batch, batch_idx):
        x, y = batch
        optimizer, _ = self.optimizers()
        optimizer.zero_grad()
        self.manual_backward(F.cross_entropy(self(x), y))
        optimizer.step()
        self.lr_schedulers().step()

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.5, total_steps=total)
        return [optimizer, torch.optim.SGD(self.head.parameters(), lr=0.0)], [
            {"scheduler": scheduler, "interval": self.interval}
        ]


def test_manual_optimisation_step_schedule_ends_at_its_last_step():
    data = classification_data(64)
    model, batches = ManualSchedule(), Batches()
    trainer = quiet_trainer(max_epochs=4, callbacks=[DynamicPruning(prune_ratio=0.7, anneal_fraction=0.0), batches])
    trainer.fit(model, datamodule=PruningDataModule(data, batch_size=8))
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert sum(len(b) for b in batches.batches.values()) < 4 * 8  # pruned epochs are shorter
    assert scheduler.total_steps == 4 * 8 and scheduler.last_epoch == 4 * 8  # ended at its last step


def test_manual_optimisation_epoch_schedule_stepped_per_batch_is_refused():
    data = classification_data(64)
    trainer = quiet_trainer(max_epochs=2, callbacks=[DynamicPruning(prune_ratio=0.5, anneal_fraction=0.0)])
    with pytest.raises(ValueError, match=r"OneCycleLR is stepped within epochs .* declared with the epoch interval"):
        trainer.fit(ManualSchedule(interval="epoch"), datamodule=PruningDataModule(data, batch_size=8))
    assert trainer.global_step <= 2  # the first batch


# Weighting in training_step -------------------------------------------------------------------------
class WeightsItself(TwoViews):
    def __init__(self, pruning, read=True):
        super().__init__()
        self.pruning, self.read = pruning, read

    def training_step(self, batch, batch_idx):
        x, y = batch
        per_example = F.cross_entropy(self(x), y, reduction="none")
        return (per_example * self.pruning.batch_weights).mean() if self.read else per_example.mean()


def test_weighting_in_training_step_equals_the_hook_and_works_in_epoch_0():
    data = classification_data()
    results = []
    for weight_gradients in (True, False):
        pruning = DynamicPruning(prune_ratio=0.5, anneal_fraction=0.0, weight_gradients=weight_gradients)
        model = WeightsItself(pruning, read=not weight_gradients)
        quiet_trainer(max_epochs=3, callbacks=[pruning]).fit(model, datamodule=PruningDataModule(data, batch_size=8))
        results.append(model)
    difference = max_difference(*results)
    print(f"weights in training_step vs hook: max |Δ| {difference:.3g}")
    assert difference <= TOLERANCE


def test_weight_gradients_false_without_reading_the_weights_is_refused():
    pruning = DynamicPruning(prune_ratio=0.5, anneal_fraction=0.0, weight_gradients=False)
    with pytest.raises(
        RuntimeError,
        match=r"weight_gradients=False\) leaves weighting to training_step, but this "
        r"weighted step never read `pruning.batch_weights`",
    ):
        quiet_trainer(max_epochs=2, callbacks=[pruning]).fit(
            WeightsItself(pruning, read=False), datamodule=PruningDataModule(classification_data(), batch_size=8)
        )


class ReturnsExampleLoss(TwoViews):
    def training_step(self, batch, batch_idx):
        x, y = batch
        per_example = F.cross_entropy(self(x), y, reduction="none")
        return {"loss": per_example.mean(), "example_loss": 3 * per_example.detach()}


def test_training_step_can_give_each_examples_loss():
    data = classification_data()
    model = ReturnsExampleLoss(lr=0.0)
    pruning = DynamicPruning(prune_ratio=0.5, anneal_fraction=0.0)
    quiet_trainer(max_epochs=2, callbacks=[pruning]).fit(model, datamodule=PruningDataModule(data, batch_size=8))
    x, y = data.tensors
    with torch.no_grad():
        expected = 3 * F.cross_entropy(model(x), y, reduction="none").numpy()
    np.testing.assert_allclose(pruning.scores, expected, rtol=1e-6)


class OddSecondForward(TwoViews):
    """A second forward on part of the batch, in the loss: its rows are not the batch's examples."""

    def __init__(self, no_grad=False):
        super().__init__()
        self.no_grad = no_grad

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        if self.no_grad:
            with torch.no_grad():
                self(x[:2])
            return loss
        return loss + self(x[:2]).square().mean()


def test_a_forward_with_other_rows_is_refused_at_the_first_step():
    data = classification_data()
    trainer = quiet_trainer(max_epochs=2, callbacks=[DynamicPruning(prune_ratio=0.5)])
    with pytest.raises(ValueError, match=r"forward call 2 returned \(2, 3\) for a batch of 8 examples.*torch.no_grad"):
        trainer.fit(OddSecondForward(), datamodule=PruningDataModule(data, batch_size=8))
    assert trainer.global_step == 1
    quiet_trainer(max_epochs=2, callbacks=[DynamicPruning(prune_ratio=0.5)]).fit(
        OddSecondForward(no_grad=True), datamodule=PruningDataModule(data, batch_size=8)
    )
