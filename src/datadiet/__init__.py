"""datadiet: train on less, better-chosen data — a PyTorch Lightning plugin for data pruning.

Public API: :class:`PruningDataModule`, :class:`DifficultyCallback`, :class:`DynamicPruning`,
:class:`PruneDuringFit`, :class:`ScoreTable`, :class:`Adapter`, :func:`select`, and the score / strategy registries.
"""

from datadiet._io import UnreadableFileError
from datadiet.adapter import Adapter
from datadiet.callbacks import DifficultyCallback, DynamicPruning, PruneDuringFit
from datadiet.data import PruningDataModule
from datadiet.scores import get_score, list_scores, register_score
from datadiet.selection import list_strategies, register_strategy, select
from datadiet.store import ScoreTable
from datadiet import theory as _theory  # noqa: F401  (registers the `auto` strategy)

__version__ = "0.1.0"

__all__ = [
    "Adapter",
    "DifficultyCallback",
    "DynamicPruning",
    "PruneDuringFit",
    "PruningDataModule",
    "ScoreTable",
    "UnreadableFileError",
    "__version__",
    "get_score",
    "list_scores",
    "list_strategies",
    "register_score",
    "register_strategy",
    "select",
]
