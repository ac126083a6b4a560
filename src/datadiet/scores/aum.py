"""Area under the margin (Pleiss et al. 2020): the logit margin averaged over training presentations."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from datadiet.scores import functional as F
from datadiet.scores.base import PresentationScore
from datadiet.scores.registry import register_score


@register_score("aum")
class AUM(PresentationScore):
    """Mean over presentations of ``z_y − max_{k≠y} z_k``, from the training forward pass of each one.

    The margins are those of the logits the training step computed (training mode, before the optimizer
    step), one per example per epoch. The raw AUM is larger for easier examples (mislabelled ones go
    negative), so the oriented score is ``-AUM``. NaN for an example never presented.
    """

    bytes_per_example = 4 + 4 + 4

    def __init__(self, num_examples: int) -> None:
        super().__init__(num_examples)
        self.add_state("margin_sum", torch.zeros(num_examples))
        self.add_state("presentations", torch.zeros(num_examples, dtype=torch.int32))

    presentation_value = staticmethod(F.logit_margin)

    def fold(self, epoch_value: Tensor) -> None:
        seen = ~torch.isnan(epoch_value)
        self.margin_sum += torch.where(seen, epoch_value, torch.zeros_like(epoch_value))
        self.presentations += seen.to(torch.int32)

    def compute(self) -> tuple[np.ndarray, np.ndarray]:
        count = self.presentations.double()
        raw = torch.where(count > 0, self.margin_sum.double() / count.clamp(min=1), torch.full_like(count, float("nan")))
        raw = raw.cpu().numpy()
        return -raw, raw
