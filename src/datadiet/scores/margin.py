"""Logit margin ``z_y − max_{k≠y} z_k`` from the scoring pass; oriented as its negation."""

from datadiet.scores import functional as F
from datadiet.scores.base import EvalPassScore
from datadiet.scores.registry import register_score


@register_score("margin")
class Margin(EvalPassScore):
    """Logit margin from the eval-mode scoring pass at the end of the probe.

    The raw margin is larger for easier examples, so the oriented score is ``-margin``.
    """

    functional = staticmethod(F.logit_margin)
    raw_is_easiness = True
