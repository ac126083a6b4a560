"""Dataset cartography (Swayamdipta et al. 2020): confidence, variability and correctness over epochs.

All three read ``p_y`` (or ``argmax z = y``) from the training forward pass of each presentation, one
value per example per epoch, before the optimizer step. For sequences each is the mean over the example's
real tokens of the per-token statistic (per-token moments, since a standard deviation is not a mean).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from datadiet.scores import functional as F
from datadiet.scores.base import PresentationMean, PresentationScore
from datadiet.scores.registry import register_score


class _LabelProbabilityMoments(PresentationScore):
    """Running mean and population variance of ``p_y`` over presentations (Welford, float32)."""

    bytes_per_example = 4 + 4 + 4 + 4
    per_token = True

    def __init__(self, num_examples: int) -> None:
        super().__init__(num_examples)
        self.add_state("presentations", torch.zeros(num_examples, dtype=torch.int32))
        self.add_state("mean", torch.zeros(num_examples))
        self.add_state("squared_deviations", torch.zeros(num_examples))

    presentation_value = staticmethod(F.label_probability)

    def fold(self, epoch_value: Tensor, part: slice) -> None:
        seen = epoch_value == epoch_value  # not NaN
        mean = self.mean[part]
        value = torch.where(seen, epoch_value, mean)
        count = self.presentations[part] + seen.to(torch.int32)
        delta = value - mean
        new_mean = mean + delta / count.clamp(min=1).to(delta.dtype)
        self.squared_deviations[part].add_(torch.where(seen, delta * (value - new_mean), 0.0))
        self.mean[part] = torch.where(seen, new_mean, mean)
        self.presentations[part] = count

    def _unseen_to_nan(self, values: Tensor) -> np.ndarray:
        values = torch.where(
            self.presentations > 0, values.double(), torch.full_like(values, float("nan"), dtype=torch.float64)
        )
        return self.example_mean(values).cpu().numpy()


@register_score("confidence")
class Confidence(_LabelProbabilityMoments):
    """Mean of ``p_y`` over training presentations. Raw is larger for easier examples; score = ``-raw``."""

    def compute(self) -> tuple[np.ndarray, np.ndarray]:
        raw = self._unseen_to_nan(self.mean)
        return -raw, raw


@register_score("variability")
class Variability(_LabelProbabilityMoments):
    """Population standard deviation (``ddof=0``, divide by the number of presentations) of ``p_y``.

    Oriented as is: larger variability (the "ambiguous" region of the cartography map) ranks harder.
    One presentation gives 0.
    """

    def compute(self) -> tuple[np.ndarray, np.ndarray]:
        variance = self.squared_deviations.clamp(min=0) / self.presentations.clamp(min=1).to(self.mean.dtype)
        raw = self._unseen_to_nan(variance.sqrt())
        return raw.copy(), raw


@register_score("correctness")
class Correctness(PresentationMean):
    """Fraction of presentations where ``argmax z = y``. Raw is larger for easier examples; score = ``-raw``."""

    presentation_value = staticmethod(F.correct)
    raw_is_easiness = True
