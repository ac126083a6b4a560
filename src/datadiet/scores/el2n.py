"""EL2N: the L2 norm of the error vector ``softmax(z) − onehot(y)`` (Paul et al. 2021)."""

from datadiet.scores import functional as F
from datadiet.scores.base import EvalPassScore
from datadiet.scores.registry import register_score


@register_score("el2n")
class EL2N(EvalPassScore):
    """EL2N from the eval-mode scoring pass at the end of the probe (the published definition).

    Larger = harder; raw and oriented values are the same.
    """

    functional = staticmethod(F.el2n)
