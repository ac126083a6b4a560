"""Mislabel detection: which training labels look wrong, from the predictions datadiet already computes.

Hard is not wrong: the hardest examples by EL2N, loss or margin are first of all the mislabelled ones, so
selection separates them first (``PruneDuringFit(mislabelled="exclude")``, ``PruningDataModule.prune(...,
mislabelled="exclude")``) and the strategy chooses among the rest.
"""

from datadiet.detection import beyond_snapshot, confident_learning  # noqa: E402,F401  (registers the built-in detectors)
from datadiet.detection.beyond_snapshot import agreement, aum_flags, average_probabilities, threshold_samples
from datadiet.detection.registry import (
    DEFAULT_DETECTOR,
    DETECTORS,
    LabelIssues,
    find_label_issues,
    list_detectors,
    register_detector,
)

__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "LabelIssues",
    "agreement",
    "aum_flags",
    "average_probabilities",
    "find_label_issues",
    "list_detectors",
    "register_detector",
    "threshold_samples",
]
