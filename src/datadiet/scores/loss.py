"""Per-example cross-entropy of the probe at the end of training, from the eval-mode scoring pass."""

from datadiet.scores import functional as F
from datadiet.scores.base import EvalPassScore
from datadiet.scores.registry import register_score


@register_score("loss")
class Loss(EvalPassScore):
    """``−log p_y`` (nats) from the scoring pass. Larger = harder; raw and oriented are the same."""

    functional = staticmethod(F.cross_entropy)
