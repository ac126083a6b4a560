"""Classifier: the LightningModule the app trains, written the way Lightning's docs write one."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Optional, Sequence

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


class Classifier(pl.LightningModule):
    """Cross-entropy classifier around any network whose ``forward`` returns logits.

    Args:
        net: a factory ``net(input_shape=..., num_classes=...) -> nn.Module`` (a Hydra ``_partial_``),
            or a ready ``nn.Module``.
        input_shape: shape of one example.
        num_classes: number of classes.
        optimizer: ``adam``, ``adamw`` or ``sgd``.
        lr: learning rate.
        weight_decay: weight decay.
        momentum: momentum (``sgd`` only).
        cosine_schedule: anneal the learning rate to zero over the run (cosine).
        schedule_interval: ``epoch`` — the cosine steps once per epoch over ``trainer.max_epochs`` — or
            ``step`` — once per optimizer step over ``trainer.estimated_stepping_batches`` (runs of a
            fraction of an epoch, ``max_steps`` budgets).
        log_prefix: prefix of logged metric names (``"probe/"`` for the probe model).

    Raises:
        ValueError: an unknown optimizer or schedule interval, or a negative learning rate.
    """

    #: The label the accuracies leave out (padding of sequences; ``None``: every label counts).
    ignore_index: ClassVar[Optional[int]] = None

    def __init__(
        self,
        net: Callable[..., nn.Module] | nn.Module,
        input_shape: Sequence[int],
        num_classes: int,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        cosine_schedule: bool = False,
        schedule_interval: str = "epoch",
        log_prefix: str = "",
    ) -> None:
        super().__init__()
        if optimizer not in _OPTIMIZERS:
            raise ValueError(f"`optimizer` can be {', '.join(_OPTIMIZERS)}, got {optimizer!r}")
        if schedule_interval not in ("epoch", "step"):
            raise ValueError(f"`schedule_interval` can be epoch or step, got {schedule_interval!r}")
        if lr < 0:
            raise ValueError(f"`lr` must be >= 0, got {lr}")
        self.save_hyperparameters(ignore=["net"])
        self.net = net if isinstance(net, nn.Module) else net(input_shape=tuple(input_shape), num_classes=num_classes)
        options = {"average": "micro", "ignore_index": self.ignore_index}
        self.train_accuracy = MulticlassAccuracy(num_classes, **options)
        self.val_accuracy = MulticlassAccuracy(num_classes, **options)
        self.test_accuracy = MulticlassAccuracy(num_classes, **options)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        """The logits of an ``(x, y)`` batch (``trainer.predict`` with :class:`~datadiet.ScoreShardWriter`)."""
        return self(batch[0])

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.train_accuracy(logits, y)
        prefix = self.hparams.log_prefix
        self.log(f"{prefix}train/loss", loss, prog_bar=True)
        self.log(f"{prefix}train/acc", self.train_accuracy, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.val_accuracy(logits, y)
        prefix = self.hparams.log_prefix
        self.log(f"{prefix}val/loss", F.cross_entropy(logits, y))
        self.log(f"{prefix}val/acc", self.val_accuracy, prog_bar=True)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.test_accuracy(logits, y)
        prefix = self.hparams.log_prefix
        self.log(f"{prefix}test/loss", F.cross_entropy(logits, y))
        self.log(f"{prefix}test/acc", self.test_accuracy)

    def configure_optimizers(self) -> Any:
        options: dict[str, Any] = {"lr": self.hparams.lr, "weight_decay": self.hparams.weight_decay}
        if self.hparams.optimizer == "sgd":
            options["momentum"] = self.hparams.momentum
        optimizer = _OPTIMIZERS[self.hparams.optimizer](self.parameters(), **options)
        if not self.hparams.cosine_schedule:
            return optimizer
        if self.hparams.get("schedule_interval", "epoch") == "step":
            steps = self.trainer.estimated_stepping_batches
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, int(steps)))
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
        if not self.trainer.max_epochs or self.trainer.max_epochs < 1:
            return optimizer
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.trainer.max_epochs)
        return {"optimizer": optimizer, "lr_scheduler": schedule}
