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

    Sequences: events are counted per token, and an example's raw value is the mean over its real tokens.
    Its oriented score is the mean over tokens of the same count, where a token never predicted correctly
    counts as forgotten at each of its presentations — more than a learned token can be (at most half of
    them), so, as Toneva's +inf does for one token, never-learned tokens outrank any number of events,
    while the mean still ranks examples that have a few of them.
    """

    bytes_per_example = 4 + 1 + 1 + 4 + 4
    per_token = True

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
        # counts (and +inf, NaN) are exact in float32: half the memory of float64 columns; a slice at a time.
        # Per token, an example's value is a mean over its tokens: float64.
        dtype = np.float64 if self.tokens else np.float32
        score, raw = np.empty(self.num_examples, dtype=dtype), np.empty(self.num_examples, dtype=dtype)
        for start in range(0, self.num_examples, self.fold_chunk):
            part = slice(start, start + self.fold_chunk)
            presented = self.presentations[part]
            count = self.forgetting_count[part]
            part_score = F.forgetting_score(count, self.ever_correct[part], presented)
            part_raw = torch.where(presented > 0, count.double(), float("nan"))
            if self.tokens:  # never learned counts as every presentation forgotten (see the class docstring)
                part_score = self.example_mean(torch.where(torch.isinf(part_score), presented.double(), part_score))
                part_raw = self.example_mean(part_raw)
            score[part] = part_score.cpu().numpy()
            raw[part] = part_raw.cpu().numpy()
        return score, raw
