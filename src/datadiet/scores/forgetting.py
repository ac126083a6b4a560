"""Forgetting events (Toneva et al. 2019): correct → incorrect transitions between presentations."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from datadiet.scores import functional as F
from datadiet.scores.base import PresentationScore
from datadiet.scores.registry import register_score


@register_score("forgetting")
class Forgetting(PresentationScore):
    """Counts forgetting events from the training-mode forward pass of each presentation.

    Correctness is ``argmax z = y`` on the logits the training step computed, before the optimizer
    step. An example never classified correctly is ranked hardest (+inf oriented score); the raw
    value is the plain event count.
    """

    bytes_per_example = 4 + 1 + 1 + 4 + 4

    def __init__(self, num_examples: int) -> None:
        super().__init__(num_examples)
        self.add_state("previous_correct", torch.zeros(num_examples, dtype=torch.bool))
        self.add_state("ever_correct", torch.zeros(num_examples, dtype=torch.bool))
        self.add_state("forgetting_count", torch.zeros(num_examples, dtype=torch.int32))
        self.add_state("presentations", torch.zeros(num_examples, dtype=torch.int32))

    presentation_value = staticmethod(F.correct)

    def fold(self, epoch_value: Tensor, part: slice) -> None:
        seen = epoch_value == epoch_value  # not NaN
        previous, count, ever = F.forgetting_update(
            self.previous_correct[part], self.forgetting_count[part], self.ever_correct[part], epoch_value == 1.0, seen
        )
        self.previous_correct[part], self.forgetting_count[part], self.ever_correct[part] = previous, count, ever
        self.presentations[part].add_(seen)

    def compute(self) -> tuple[np.ndarray, np.ndarray]:
        # counts (and +inf, NaN) are exact in float32: half the memory of float64 columns; a slice at a time
        score, raw = np.empty(self.num_examples, dtype=np.float32), np.empty(self.num_examples, dtype=np.float32)
        for start in range(0, self.num_examples, self.fold_chunk):
            part = slice(start, start + self.fold_chunk)
            presented = self.presentations[part]
            count = self.forgetting_count[part]
            score[part] = F.forgetting_score(count, self.ever_correct[part], presented).float().cpu().numpy()
            raw[part] = torch.where(presented > 0, count.float(), float("nan")).cpu().numpy()
        return score, raw
