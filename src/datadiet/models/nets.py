"""Small networks for the built-in datasets; each takes ``input_shape`` and ``num_classes``."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn


class MLP(nn.Module):
    """A ReLU multilayer perceptron over the flattened input.

    Args:
        input_shape: shape of one example (flattened inside).
        num_classes: number of output logits.
        hidden_sizes: widths of the hidden layers.
        dropout: dropout after each hidden layer.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        hidden_sizes: Sequence[int] = (256, 256),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = hidden
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class CNN1D(nn.Module):
    """The small 1-D convolutional net of the MNIST-1D paper (Greydanus & Kobak), for 1-D signals.

    Args:
        input_shape: ``(length,)`` or ``(channels, length)``.
        num_classes: number of output logits.
        channels: channels of each of the three strided convolutions.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, channels: int = 25) -> None:
        super().__init__()
        in_channels = 1 if len(input_shape) == 1 else input_shape[0]
        self.features = nn.Sequential(
            nn.Conv1d(in_channels, channels, 5, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            width = self.features(torch.zeros(1, in_channels, input_shape[-1])).shape[1]
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 2:
            x = x.unsqueeze(1)
        return self.head(self.features(x))
