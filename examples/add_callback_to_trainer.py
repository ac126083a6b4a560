"""Add datadiet to a Trainer you already have — no Hydra app, no datadiet models.

A plain LightningModule (written the way Lightning's docs write one) on MNIST-1D: a 3-epoch probe with
`DifficultyCallback` scores every training example, `PruningDataModule.prune` keeps the hardest half by
EL2N, and the same Trainer code trains and tests on that half. Runs in about a minute on a laptop CPU:

    python examples/add_callback_to_trainer.py
"""

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from datadiet import DifficultyCallback, PruningDataModule
from datadiet.data.sources import load_mnist1d


class LitClassifier(L.LightningModule):
    def __init__(self, lr: float = 1e-3):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(40, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
        self.lr = lr

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch  # unchanged: the data module strips the original indices before the batch gets here
        loss = F.cross_entropy(self(x), y)
        self.log("train/loss", loss)
        return loss

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test/acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def main() -> None:
    L.seed_everything(0)
    arrays = load_mnist1d(num_samples=5000)  # generated locally and cached, never downloaded
    train = TensorDataset(torch.as_tensor(arrays["x"]), torch.as_tensor(arrays["y"]))
    test = TensorDataset(torch.as_tensor(arrays["x_test"]), torch.as_tensor(arrays["y_test"]))
    dm = PruningDataModule(train, test_dataset=test, batch_size=128)

    # 1. A short probe records how hard every example is.
    difficulty = DifficultyCallback(scores=("el2n", "forgetting", "margin"))
    L.Trainer(max_epochs=3, callbacks=[difficulty], logger=False, enable_checkpointing=False).fit(
        LitClassifier(), datamodule=dm
    )
    table = difficulty.score_table
    print(table, "— hardest example by EL2N:", int(table["el2n"].argmax()))

    # 2. Keep the hardest half, 3. train and test the real model on it with an ordinary Trainer.
    kept = dm.prune(table, score="el2n", keep_fraction=0.5, strategy="hard")
    model = LitClassifier()
    trainer = L.Trainer(max_epochs=20, logger=False, enable_checkpointing=False)
    trainer.fit(model, datamodule=dm)
    accuracy = trainer.test(model, datamodule=dm, verbose=False)[0]["test/acc"]
    print(f"trained on {len(kept)} of {dm.num_examples} examples; test accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
