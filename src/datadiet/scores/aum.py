"""Area under the margin (Pleiss et al. 2020): the logit margin averaged over training presentations."""

from __future__ import annotations

from datadiet.scores import functional as F
from datadiet.scores.base import PresentationMean
from datadiet.scores.registry import register_score


@register_score("aum")
class AUM(PresentationMean):
    """Mean over presentations of ``z_y − max_{k≠y} z_k``, from the training forward pass of each one.

    The margins are those of the logits the training step computed (training mode, before the optimizer
    step), one per example per epoch. The raw AUM is larger for easier examples (mislabelled ones go
    negative), so the oriented score is ``-AUM``. NaN for an example never presented.
    """

    presentation_value = staticmethod(F.logit_margin)
    raw_is_easiness = True
