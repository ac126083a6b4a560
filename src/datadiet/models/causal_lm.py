"""A tiny decoder-only transformer and its LightningModule: next-token prediction, reported in bits per token.

Written as language models are trained: logits ``(B, T, V)``, labels ``(B, T)`` with ``-100`` where a
position does not count, and the token-mean cross-entropy over the batch. datadiet's callbacks read it
without an adapter (each example's loss is its mean over real tokens: its log perplexity).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from datadiet.models.classifier import Classifier


class TinyGPT(nn.Module):
    """A pre-norm decoder-only transformer: token and position embeddings, ``depth`` causal self-attention
    blocks, a final norm and a linear head over the vocabulary.

    Args:
        input_shape: ``(context,)``, the longest sequence.
        num_classes: vocabulary size.
        width: embedding width.
        depth: transformer blocks.
        heads: attention heads.
        dropout: dropout in the blocks.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        width: int = 64,
        depth: int = 2,
        heads: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.context = int(input_shape[-1])
        self.token_embedding = nn.Embedding(num_classes, width)
        self.position_embedding = nn.Embedding(self.context, width)
        layer = nn.TransformerEncoderLayer(
            width,
            heads,
            dim_feedforward=4 * width,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_classes)
        self.register_buffer(
            "causal_mask", nn.Transformer.generate_square_subsequent_mask(self.context), persistent=False
        )

    def forward(self, tokens: Tensor) -> Tensor:
        length = tokens.shape[1]
        positions = torch.arange(length, device=tokens.device)
        hidden = self.token_embedding(tokens) + self.position_embedding(positions)
        mask = self.causal_mask[:length, :length]
        return self.head(self.norm(self.blocks(hidden, mask=mask, is_causal=True)))


class CausalLM(Classifier):
    """Next-token language model around any network ``tokens (B, T) → logits (B, T, V)``.

    Batches are ``(x, y)`` with ``y`` the next tokens (``-100`` where a position does not count). Logs
    ``{train,val,test}/loss`` (nats per token), ``{val,test}/bits_per_token`` and ``{val,test}/acc`` (next-token
    accuracy); for a byte-level model bits per token are bits per byte. Arguments as
    :class:`~datadiet.models.Classifier`'s.
    """

    ignore_index = -100

    @staticmethod
    def token_loss(logits: Tensor, target: Tensor) -> Tensor:
        """The token-mean cross-entropy over the batch (positions labelled ``-100`` left out)."""
        return F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=-100)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        x, y = batch
        loss = self.token_loss(self(x), y)
        self.log(f"{self.hparams.log_prefix}train/loss", loss, prog_bar=True)
        return loss

    def _evaluate(self, batch: Any, stage: str, accuracy: MulticlassAccuracy) -> None:
        x, y = batch
        logits = self(x)
        loss = self.token_loss(logits, y)
        accuracy(logits.transpose(1, 2), y)
        prefix = f"{self.hparams.log_prefix}{stage}"
        self.log(f"{prefix}/loss", loss)
        self.log(f"{prefix}/bits_per_token", loss / math.log(2))
        self.log(f"{prefix}/acc", accuracy)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_accuracy)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_accuracy)


@torch.no_grad()
def bits_per_token(model: nn.Module, dataset: Any, batch_size: int = 256) -> float:
    """Held-out bits per token of ``model`` over a ``(x, y)`` tensor dataset: the mean over every real token.

    Unlike the mean of per-batch means Lightning logs, every token weighs the same.
    """
    x, y = dataset.tensors
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    try:
        for start in range(0, len(x), batch_size):
            logits = model(x[start : start + batch_size])
            target = y[start : start + batch_size]
            total += float(
                F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), ignore_index=-100, reduction="sum")
            )
            tokens += int((target != -100).sum())
    finally:
        model.train(was_training)
    return total / tokens / math.log(2)
