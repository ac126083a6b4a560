"""Lightning callbacks: per-example difficulty recording (and the Scorer it records with), a global count of
examples trained on, in-run pruning, dynamic (per-epoch) pruning, and online batch selection (RHO-LOSS)."""

from datadiet.callbacks.difficulty import DifficultyCallback
from datadiet.callbacks.dynamic_pruning import DynamicPruning
from datadiet.callbacks.examples_seen import ExamplesSeen
from datadiet.callbacks.prune_during_fit import PruneDuringFit
from datadiet.callbacks.reducible_loss_selection import ReducibleLossSelection
from datadiet.callbacks.scorer import Scorer

__all__ = ["DifficultyCallback", "DynamicPruning", "ExamplesSeen", "PruneDuringFit", "ReducibleLossSelection", "Scorer"]
