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
        score = F.forgetting_score(self.forgetting_count, self.ever_correct, self.presentations)
        raw = torch.where(self.presentations > 0, self.forgetting_count.double(), torch.full_like(score, float("nan")))
        if self.tokens:  # per token: never learned counts as every presentation forgotten (see the docstring)
            score = torch.where(torch.isinf(score), self.presentations.double(), score)
            score, raw = self.example_mean(score), self.example_mean(raw)
        return score.cpu().numpy(), raw.cpu().numpy()
