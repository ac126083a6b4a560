"""Lightning callbacks: per-example difficulty recording."""

from datadiet.callbacks.difficulty import DifficultyCallback

__all__ = ["DifficultyCallback"]
