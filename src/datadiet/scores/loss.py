"""The per-example loss of the probe at the end of training, from the eval-mode scoring pass."""

from datadiet.scores import functional as F
from datadiet.scores.base import EvalPassScore
from datadiet.scores.registry import register_score


@register_score("loss")
class Loss(EvalPassScore):
    """The example's loss from the scoring pass. Larger = harder; raw and oriented are the same.

    ``−log p_y`` (nats) by default; for sequences the mean over the example's real tokens (its log
    perplexity); with ``Adapter(loss=...)`` that loss (``bce``, ``mse``, ``l1`` or a callable).
    """

    needs_class_probabilities = False
    from_example_loss = True
    functional = staticmethod(F.cross_entropy)
