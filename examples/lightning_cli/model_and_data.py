"""A tiny classifier and data module for the PruningCLI example (Gaussian clusters; trains in seconds on CPU)."""

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class ClusterData(L.LightningDataModule):
    """Labelled Gaussian clusters; calls ``save_hyperparameters()`` as many data modules do."""

    def __init__(
        self, num_samples: int = 600, features: int = 8, classes: int = 4, batch_size: int = 32, seed: int = 0
    ):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage: str) -> None:
        h = self.hparams
        generator = torch.Generator().manual_seed(h.seed)
        y = torch.randint(h.classes, (h.num_samples,), generator=generator)
        centres = 2 * torch.randn(h.classes, h.features, generator=generator)
        x = centres[y] + torch.randn(h.num_samples, h.features, generator=generator)
        split = h.num_samples * 4 // 5
        self.train_set, self.val_set = TensorDataset(x[:split], y[:split]), TensorDataset(x[split:], y[split:])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=256)


class ClusterClassifier(L.LightningModule):
    """A two-layer MLP; ``x, y = batch`` as usual (the PruningDataModule hands over exactly your batches)."""

    def __init__(self, features: int = 8, classes: int = 4, hidden: int = 32, lr: float = 0.05):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, classes))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
