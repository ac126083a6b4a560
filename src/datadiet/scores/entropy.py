"""Label-free uncertainty of the probe (a small "selector" model): predictive entropy and top-2 margin."""

from datadiet.scores import functional as F
from datadiet.scores.base import EvalPassScore
from datadiet.scores.registry import register_score


@register_score("entropy")
class Entropy(EvalPassScore):
    """``−Σ_k p_k log p_k`` (nats) from the eval-mode scoring pass; needs no labels. Larger = harder."""

    requires_labels = False
    functional = staticmethod(F.entropy)


@register_score("uncertainty_margin")
class UncertaintyMargin(EvalPassScore):
    """``p₍₁₎ − p₍₂₎`` from the scoring pass; needs no labels. Raw is larger for easier examples,
    so the oriented score is ``-raw``."""

    requires_labels = False
    raw_is_easiness = True
    functional = staticmethod(F.uncertainty_margin)
