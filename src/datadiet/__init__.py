"""datadiet: train on less, better-chosen data — a PyTorch Lightning plugin for data pruning.

Public API: :class:`PruningDataModule`, :class:`DifficultyCallback`, :class:`DynamicPruning`,
:class:`PruneDuringFit`, :class:`ReducibleLossSelection` (with :func:`fit_irreducible_losses`),
:class:`ScoreTable`, :class:`Adapter`, :func:`select`, the score / strategy registries, foundation subsets
(:func:`export_foundation_subset` with its dataset card, :func:`load_foundation_subset`) and distributed scoring
(:class:`ScoreShardWriter`, :class:`ShardSampler`, :func:`merge_score_shards`).
"""

from datadiet import theory as _theory  # noqa: F401  (registers the `auto` strategy)
from datadiet.adapter import Adapter
from datadiet.callbacks import DifficultyCallback, DynamicPruning, PruneDuringFit, ReducibleLossSelection
from datadiet.data import PruningDataModule
from datadiet.files import UnreadableFileError
from datadiet.score_shards import ScoreShardWriter, ShardSampler, merge_score_shards
from datadiet.scores import get_score, list_scores, register_score
from datadiet.scores.rho_loss import fit_irreducible_losses
from datadiet.selection import list_strategies, register_strategy, select
from datadiet.store import ScoreTable
from datadiet.subset import export_foundation_subset, load_foundation_subset

__version__ = "0.1.0"

__all__ = [
    "Adapter",
    "DifficultyCallback",
    "DynamicPruning",
    "PruneDuringFit",
    "PruningDataModule",
    "ReducibleLossSelection",
    "ScoreShardWriter",
    "ScoreTable",
    "ShardSampler",
    "UnreadableFileError",
    "__version__",
    "export_foundation_subset",
    "fit_irreducible_losses",
    "get_score",
    "list_scores",
    "list_strategies",
    "load_foundation_subset",
    "merge_score_shards",
    "register_score",
    "register_strategy",
    "select",
]
