"""LightningModules written the way Lightning's documentation writes them, used verbatim by the tests."""

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset


class LitClassifier(L.LightningModule):
    """Lightning's docs classifier: ``x, y = batch; logits = self(x); loss = F.cross_entropy(logits, y)``."""

    def __init__(self, model: nn.Module, lr: float = 0.1):
        super().__init__()
        self.model = model
        self.lr = lr

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class DictDataset(Dataset):
    """Items are dicts ``{"x": ..., "y": ...}``, for :class:`DictTupleClassifier`."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


class DictTupleClassifier(L.LightningModule):
    """Batches are dicts and ``forward`` returns ``(logits, features)``: needs the one-line adapter."""

    def __init__(self, num_features: int, num_classes: int):
        super().__init__()
        self.body = nn.Linear(num_features, 16)
        self.head = nn.Linear(16, num_classes)

    def forward(self, x):
        features = torch.relu(self.body(x))
        return self.head(features), features

    def training_step(self, batch, batch_idx):
        logits, _ = self(batch["x"])
        return F.cross_entropy(logits, batch["y"])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.2)


def quiet_trainer(**kwargs) -> L.Trainer:
    options = dict(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
    )
    options.update(kwargs)
    return L.Trainer(**options)
