"""Per-example difficulty scores, found by name; each has a pure functional twin in ``functional``.

Every score is oriented so that larger = harder; the raw published value is kept beside it.
"""

from datadiet.scores import functional
from datadiet.scores.base import EvalPassScore, PerExampleScore, PresentationScore, merge_seen
from datadiet.scores.registry import SCORES, get_score, list_scores, register_score

# Built-in scores register themselves on import.
from datadiet.scores import el2n, forgetting, margin  # noqa: E402,F401  isort: skip
from datadiet.scores import aum, cartography, entropy, grand, label_issue, loss, prototype, rho_loss  # noqa: E402,F401  isort: skip
from datadiet.scores.context import ScoreContext  # noqa: E402

__all__ = [
    "EvalPassScore",
    "PerExampleScore",
    "PresentationScore",
    "SCORES",
    "ScoreContext",
    "functional",
    "get_score",
    "list_scores",
    "merge_seen",
    "register_score",
]
