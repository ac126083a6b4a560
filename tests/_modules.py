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


class TokenDataset(Dataset):
    """Sequences of tokens padded with ``-100`` labels: items ``(x, y)`` or Hugging Face-style dicts."""

    def __init__(self, tokens, labels, as_dict: bool = False):
        self.tokens, self.labels, self.as_dict = tokens, labels, as_dict

    def __len__(self):
        return len(self.tokens)

    def __getitem__(self, i):
        if self.as_dict:
            return {"input_ids": self.tokens[i], "labels": self.labels[i]}
        return self.tokens[i], self.labels[i]


def token_data(num_examples=24, length=6, vocab=5, seed=0, as_dict=False, dtype=torch.long):
    """Next-token data: ``y[t] = x[t + 1]``, the last position and a random tail of each sequence padded."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(vocab, (num_examples, length + 1), generator=generator)
    x, y = tokens[:, :-1].clone(), tokens[:, 1:].clone()
    for i, real in enumerate(torch.randint(2, length + 1, (num_examples,), generator=generator).tolist()):
        y[i, real:] = -100
    return TokenDataset(x, y, as_dict=as_dict)


class TinyLM(L.LightningModule):
    """A bigram language model (logits ``(B, T, V)``) trained with the token-mean cross-entropy, as LMs are."""

    def __init__(self, vocab: int = 5, width: int = 8, lr: float = 0.5, seed: int = 0, double: bool = False):
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Embedding(vocab, width)
        self.head = nn.Linear(width, vocab)
        if double:
            self.double()
        self.lr = lr

    def forward(self, tokens):
        return self.head(torch.tanh(self.embed(tokens)))

    def training_step(self, batch, batch_idx):
        x, y = (batch["input_ids"], batch["labels"]) if isinstance(batch, dict) else batch
        logits = self(x)
        return F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class Regressor(L.LightningModule):
    """A small MLP trained with a batch-mean ``criterion`` (squared error by default); outputs ``(B,)`` or
    ``(B, D)`` (multi-label logits with ``F.binary_cross_entropy_with_logits``, soft labels with cross-entropy)."""

    def __init__(
        self,
        num_features: int = 4,
        outputs: int = 0,
        lr: float = 0.05,
        seed: int = 0,
        double: bool = False,
        criterion=F.mse_loss,
    ):
        super().__init__()
        self.criterion = criterion
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(num_features, 8), nn.Tanh(), nn.Linear(8, outputs or 1))
        if double:
            self.double()
        self.outputs = outputs
        self.lr = lr

    def forward(self, x):
        out = self.net(x)
        return out if self.outputs else out.squeeze(1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.criterion(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)
