"""``pruning.mislabelled`` and its keys: how the run treats the examples the mislabel detector flags.

``auto`` (the default) looks for wrong labels only where a probe of this run scores the examples anyway to
choose among them; elsewhere — all data kept (the full-data reference, wrong labels included), a score-free
strategy (no probe to add), imported scores or subsets, dynamic pruning, averaged probe seeds — it trains as
``null`` does.
"""

from __future__ import annotations

from typing import Optional

from omegaconf import DictConfig

from datadiet.app.config_checks import keys_under
from datadiet.app.modes import pruning_mode
from datadiet.callbacks.noisy_labels import (
    DEFAULT_NOISE_THRESHOLD,
    DEFAULT_NOISY_EXTRA_EPOCHS,
    validate_extra_epochs,
    validate_noise_threshold,
)
from datadiet.data.datamodule import MISLABELLED_HANDLING
from datadiet.data.flagged import TREATMENTS
from datadiet.detection import DEFAULT_DETECTOR, DETECTORS
from datadiet.selection import needs_scores


def read_mislabelled(
    node: DictConfig, keep_fraction: float, scores_path: Optional[str], probe_seeds: int
) -> tuple[Optional[str], str, float, int]:
    """``(mislabelled, detector, noise_threshold, noisy_extra_epochs)`` of the ``pruning`` node, ``auto``
    resolved to ``None`` where it would not detect.

    Raises:
        ValueError: an unknown handling or detector, a bad threshold or number of extra epochs, naming the key.
    """
    mislabelled, detector = node.get("mislabelled"), node.get("detector", DEFAULT_DETECTOR)
    handling = [name for name in MISLABELLED_HANDLING if name not in TREATMENTS]
    if mislabelled in TREATMENTS:
        raise ValueError(
            f"`pruning.mislabelled={mislabelled}` is for now a library setting (PruneDuringFit(mislabelled="
            f"{mislabelled!r}), PruningDataModule.prune): the run's kept-subset files record which examples are kept, "
            "not how they are trained, so a restarted run or `pruning.subset_path` could not honour it. Measured on "
            f"Fashion-MNIST with 20 % wrong labels it does not beat `exclude` (docs/noisy_labels.md#treatments); use "
            f"one of null, {', '.join(handling)}, auto"
        )
    if mislabelled is not None and mislabelled not in (*MISLABELLED_HANDLING, "auto"):
        raise ValueError(f"`pruning.mislabelled` can be null, {', '.join(handling)}, auto, got {mislabelled!r}")
    DETECTORS.get(detector)
    with keys_under("pruning"):
        threshold = validate_noise_threshold(node.get("noise_threshold", DEFAULT_NOISE_THRESHOLD))
        extra_epochs = validate_extra_epochs(node.get("noisy_extra_epochs", DEFAULT_NOISY_EXTRA_EPOCHS))
    detects = (
        keep_fraction < 1.0
        and needs_scores(node.strategy)
        and not node.get("subset_path")
        and not scores_path
        and probe_seeds == 1
        and pruning_mode(node.get("mode", "static")).selects_subset
    )
    if mislabelled == "auto" and not detects:
        mislabelled = None
    return mislabelled, detector, threshold, extra_epochs
