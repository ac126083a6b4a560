"""A user's own LightningModule and LightningDataModule, for the app (``model=custom``, ``data=custom``)."""

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class UserDataModule(L.LightningDataModule):
    """Gaussian clusters; no ``input_shape`` / ``num_classes`` unless asked for."""

    def __init__(self, num_samples: int = 200, features: int = 6, classes: int = 3, with_shape: bool = False):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        y = torch.randint(classes, (num_samples,), generator=generator)
        x = 2 * torch.randn(classes, features, generator=generator)[y] + torch.randn(
            num_samples, features, generator=generator
        )
        self.train_set = TensorDataset(x[: num_samples * 3 // 4], y[: num_samples * 3 // 4])
        self.test_set = TensorDataset(x[num_samples * 3 // 4 :], y[num_samples * 3 // 4 :])
        if with_shape:
            self.input_shape, self.num_classes = (features,), classes

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=16, shuffle=True)

    def test_dataloader(self):
        return DataLoader(self.test_set, batch_size=64)


class UserModule(L.LightningModule):
    """Knows its own sizes; logs ``test/accuracy`` (not the app's ``test/acc``) and no ``test/loss``."""

    def __init__(self, features: int = 6, classes: int = 3, lr: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, 16), nn.ReLU(), nn.Linear(16, classes))
        self.lr = lr

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test/accuracy", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class SizedModule(UserModule):
    """Takes ``input_shape`` and ``num_classes`` as the app's built-in models do."""

    def __init__(self, input_shape, num_classes, lr: float = 0.1):
        super().__init__(features=input_shape[0], classes=num_classes, lr=lr)


def not_a_datamodule():
    return [1, 2, 3]
