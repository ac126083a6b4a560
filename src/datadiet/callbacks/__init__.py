"""Lightning callbacks: per-example difficulty recording, and a global count of examples trained on."""

from datadiet.callbacks.difficulty import DifficultyCallback
from datadiet.callbacks.examples_seen import ExamplesSeen

__all__ = ["DifficultyCallback", "ExamplesSeen"]
