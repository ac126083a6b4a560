"""Lightning callbacks: per-example difficulty recording, a global count of examples trained on,
in-run pruning, and dynamic (per-epoch) pruning."""

from datadiet.callbacks.difficulty import DifficultyCallback
from datadiet.callbacks.dynamic_pruning import DynamicPruning
from datadiet.callbacks.examples_seen import ExamplesSeen
from datadiet.callbacks.prune_during_fit import PruneDuringFit

__all__ = ["DifficultyCallback", "DynamicPruning", "ExamplesSeen", "PruneDuringFit"]
