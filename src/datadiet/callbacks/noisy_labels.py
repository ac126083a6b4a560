"""``mislabelled="auto"`` of :class:`~datadiet.callbacks.PruneDuringFit`: clean labels change nothing; noisy ones
buy the detector more epochs, paid for by a lower keep fraction.

At the scoring epoch the detector's noise estimate decides. At most ``noise_threshold`` (the detector's false
flags on clean data, measured in ``benchmarks/label_issues.py``): the labels are taken as clean, the flags are
recorded and nothing else changes — the same kept subset, the same training, as ``mislabelled=None``. Above it,
the model trains ``extra_epochs`` more epochs on all data (early predictions flag many correctly labelled hard
examples too; a few epochs later the wrong labels stand apart), scores again, and keeps a fraction of the
training set among the unflagged examples lowered so that the run's planned compute does not change.

Compute, in training presentations per example (a scoring-pass forward is ``1 / TRAIN_FORWARD_MULTIPLE`` of
one): with ``E`` epochs, ``p`` before pruning, keep ``k`` and one scoring pass ``s``,
``p + (E − p)·k + s``. Extended by ``x`` epochs and a second pass: ``p + x + (E − p − x)·k' + 2s``. Equal when
``k' = ((E − p)·k − x − s) / (E − p − x)``: E = 15, p = 2, k = 0.5, x = 1 gives k' = 0.4306. A run too short
to pay for ``x`` extra epochs (``k' < k / 2``, or no epoch left after them; or ``E`` unknown) waits fewer, down
to none: the flagged examples are then excluded at ``p``, at the planned keep fraction.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Optional

import numpy as np

from datadiet.compute import TRAIN_FORWARD_MULTIPLE
from datadiet.store import ScoreTable

#: Noise estimates at most this are taken as clean labels. After 2 of 15 epochs the detector flags 1.5–4.5 %
#: of clean MNIST-1D (5 seeds: 2.9 % ± 1.1 %, so mean + 3 std = 6.2 %), 22.1 % ± 1.0 % at 20 % noise and
#: 38.8 % at 40 % (``python -m benchmarks.label_issues --after-epochs 2 --clean-seeds 5``).
DEFAULT_NOISE_THRESHOLD = 0.07
#: More epochs on all data before the detector runs again, when the labels look noisy.
DEFAULT_NOISY_EXTRA_EPOCHS = 1
#: What :class:`~datadiet.callbacks.PruneDuringFit` and the app do with flagged examples when not told: ``auto``
#: (one default for both; ``None`` lost 21 pt on Fashion-MNIST with 20 % of its labels wrong).
DEFAULT_MISLABELLED = "auto"

# The regime guard of ``auto``: where static selection cannot pay, keep all (see `static_pruning_guard`).
#: Fewest training examples in any class for static pruning. Set by: 8×8 digits (1,294 training examples, about
#: 130 a class) lost 2.2 pt to all data at the same compute with every static subset, while MNIST-1D (4,500 a
#: class) and Fashion-MNIST (5,400) held or beat the line with ``auto`` on noisy labels; 1,000 lies between
#: (Sorscher et al. 2022: with little data, keeping the hardest examples hurts).
GUARD_MIN_EXAMPLES_PER_CLASS = 1000
#: Fewest epochs left on the kept subset after the (last) scoring pass: fewer cannot amortise the change of data.
GUARD_MIN_EPOCHS_LEFT = 3
#: Noise estimates above this are too many wrong labels for static selection. Set by the frontier (``auto`` with
#: ``below_chance``, hardest half after 2 epochs): MNIST-1D with 20 % of its labels wrong (the detector flags
#: 19 %) +0.42 pt over all data at the same compute and Fashion-MNIST at 20 % (20 % flagged) +0.63, but MNIST-1D at
#: 40 % (35 % flagged) −0.67: the hardest half of what the detector leaves gathers the wrong labels it missed.
#: 30 % lies between.
GUARD_MAX_NOISE_ESTIMATE = 0.3
#: Confident learning's noise estimate above the detector's by more than this: the wrong labels are concentrated
#: in pairs of classes (a shirt labelled as the next class), where the model learns to give the wrong class more
#: than chance and ``below_chance`` cannot tell them from ambiguous examples. Set by Fashion-MNIST with 30 % of
#: every class moved to the next (after 2 epochs: ``below_chance`` flags 4 %, confident learning 29 %); on clean
#: labels and on symmetric noise up to 40 % the two differ by 0.2–6 points (MNIST-1D, Fashion-MNIST).
GUARD_MAX_UNRESOLVED_NOISE = 0.1


def validate_noise_threshold(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value < 1:
        raise ValueError(
            f"`noise_threshold` is the noise estimate above which labels count as noisy: a share in [0, 1) "
            f"(e.g. 0.07), got {value!r}"
        )
    return float(value)


def validate_extra_epochs(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"`noisy_extra_epochs` is how many more epochs train on all data before the detector runs again on "
            f"noisy labels: an integer >= 0 (e.g. 1), got {value!r}"
        )
    return value


def noisy_keep_fraction(keep_fraction: float, max_epochs: int, after_epochs: int, extra_epochs: int) -> float:
    """The keep fraction that costs the same as ``keep_fraction`` after ``after_epochs`` with one scoring pass,
    when pruning waits ``extra_epochs`` more epochs and scores a second time (see the module docstring)."""
    if extra_epochs == 0:
        return keep_fraction
    scoring = 1.0 / TRAIN_FORWARD_MULTIPLE
    remaining = max_epochs - after_epochs - extra_epochs
    return ((max_epochs - after_epochs) * keep_fraction - extra_epochs - scoring) / remaining


def class_counts(labels: np.ndarray | None) -> np.ndarray | None:
    """Training examples per class for the regime guard; ``None`` where the labels are not one integer class each."""
    return None if labels is None or labels.ndim != 1 or labels.dtype.kind not in "iu" else np.bincount(labels)


def static_pruning_guard(
    class_counts: Optional[np.ndarray],
    max_epochs: Optional[int],
    prune_epoch: int,
    estimate: float,
    confident_learning_estimate: Optional[float] = None,
) -> Optional[str]:
    """Why static pruning cannot pay here (``auto`` then keeps all), or ``None`` where it may.

    Args:
        class_counts: training examples per class (``None``: unknown, not judged).
        max_epochs: the fit's epochs (``None``: unknown, not judged).
        prune_epoch: the epoch count on all data after which the subset would be chosen.
        estimate: the detector's noise estimate.
        confident_learning_estimate: confident learning's (``both``) on the same probabilities (``None``: not
            judged).
    """
    if class_counts is not None and len(class_counts) and int(np.min(class_counts)) < GUARD_MIN_EXAMPLES_PER_CLASS:
        total, fewest = int(np.sum(class_counts)), int(np.min(class_counts))
        return (
            f"{total:,} training examples ({fewest:,} in the smallest class, under "
            f"{GUARD_MIN_EXAMPLES_PER_CLASS:,}) are too few for static pruning to pay"
        )
    if max_epochs is not None and max_epochs >= 0 and max_epochs - prune_epoch < GUARD_MIN_EPOCHS_LEFT:
        return (
            f"{max_epochs - prune_epoch} epoch(s) left after scoring at epoch {prune_epoch} of {max_epochs} are "
            f"too few for static pruning to pay (at least {GUARD_MIN_EPOCHS_LEFT})"
        )
    if estimate > GUARD_MAX_NOISE_ESTIMATE:
        return (
            f"a noise estimate of {estimate:.0%} is too many wrong labels for static pruning to pay "
            f"(over {GUARD_MAX_NOISE_ESTIMATE:.0%})"
        )
    if confident_learning_estimate is not None and confident_learning_estimate - estimate > GUARD_MAX_UNRESOLVED_NOISE:
        return (
            f"confident learning estimates {confident_learning_estimate:.0%} of the labels wrong where the detector "
            f"flags {estimate:.0%} (more than {GUARD_MAX_UNRESOLVED_NOISE:.0%} apart): wrong labels concentrated in "
            "pairs of classes, which the detector cannot tell from ambiguous examples"
        )
    return None


def affordable_extra_epochs(
    keep_fraction: float, max_epochs: Optional[int], after_epochs: int, extra_epochs: int
) -> int:
    """The most extra epochs, up to ``extra_epochs``, that leave an epoch to train and cost at most half the kept
    set (``k' >= k / 2``); 0 when ``max_epochs`` is unknown."""
    if max_epochs is None or max_epochs < 0:
        return 0
    for extra in range(extra_epochs, 0, -1):
        if (
            after_epochs + extra < max_epochs
            and noisy_keep_fraction(keep_fraction, max_epochs, after_epochs, extra) >= keep_fraction / 2
        ):
            return extra
    return 0


@dataclass(frozen=True)
class NoiseDecision:
    """What ``mislabelled="auto"`` decided at the scoring epoch (recorded in checkpoints and score tables)."""

    estimate: float
    threshold: float
    after_epochs: int
    #: The extra epochs on all data before pruning when noisy (fewer than asked in a short run).
    extra_epochs: int
    keep_fraction: float
    planned_keep_fraction: float
    asked_extra_epochs: int = 0
    #: Why the regime guard kept all data (``keep_fraction`` 1.0), else ``None``.
    guard: Optional[str] = None
    #: Confident learning's noise estimate on the same probabilities (the guard's check of the detector), if known.
    confident_learning_estimate: Optional[float] = None

    @property
    def noisy(self) -> bool:
        return self.estimate > self.threshold

    @property
    def handling(self) -> str:
        """What pruning does with the flagged examples: ``keep`` (clean labels, or all kept by the guard) or
        ``exclude``."""
        return "exclude" if self.noisy and self.guard is None else "keep"

    @property
    def prune_epoch(self) -> int:
        return self.after_epochs + (self.extra_epochs if self.noisy else 0)

    @classmethod
    def make(
        cls,
        estimate: float,
        threshold: float,
        keep_fraction: float,
        max_epochs: Optional[int],
        after_epochs: int,
        extra_epochs: int,
        class_counts: Optional[np.ndarray] = None,
        trained_epochs: Optional[int] = None,
        confident_learning_estimate: Optional[float] = None,
    ) -> "NoiseDecision":
        """``trained_epochs``: epochs of the trained model spent before the subset is chosen (default
        ``after_epochs``; 0 with a separate probe), for the guard's epochs left; ``confident_learning_estimate``:
        the score table's ``confident_learning_noise_estimate``, for the guard's check of the detector."""
        noisy = estimate > threshold
        trained = after_epochs if trained_epochs is None else trained_epochs
        guard = static_pruning_guard(class_counts, max_epochs, trained, estimate, confident_learning_estimate)
        cl_estimate = None if confident_learning_estimate is None else float(confident_learning_estimate)
        if guard is not None:
            return cls(
                estimate=float(estimate),
                threshold=threshold,
                after_epochs=after_epochs,
                extra_epochs=0,
                keep_fraction=1.0,
                planned_keep_fraction=keep_fraction,
                asked_extra_epochs=extra_epochs,
                guard=guard,
                confident_learning_estimate=cl_estimate,
            )
        extra = affordable_extra_epochs(keep_fraction, max_epochs, after_epochs, extra_epochs) if noisy else 0
        return cls(
            estimate=float(estimate),
            threshold=threshold,
            after_epochs=after_epochs,
            extra_epochs=extra,
            keep_fraction=(
                noisy_keep_fraction(keep_fraction, max_epochs, after_epochs, extra) if extra else keep_fraction
            ),
            planned_keep_fraction=keep_fraction,
            asked_extra_epochs=extra_epochs,
            confident_learning_estimate=cl_estimate,
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "noisy": self.noisy}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> NoiseDecision:
        return cls(**{key: state[key] for key in cls.__dataclass_fields__ if key in state})

    def describe(self) -> str:
        """Why the flags were kept or excluded, in words."""
        if self.guard is not None:
            return f"kept all: {self.guard}; training on all data (DynamicPruning saves compute here without a subset)"
        if not self.noisy:
            return (
                f"labels looked clean after {self.after_epochs} epoch(s) (estimate {self.estimate:.1%} <= "
                f"{self.threshold:.0%}): flags recorded, nothing excluded"
            )
        if self.extra_epochs == 0:
            short = (
                f"; the run is too short to pay for {self.asked_extra_epochs} more epoch(s) on all data"
                if self.asked_extra_epochs
                else ""
            )
            return (
                f"labels looked noisy after {self.after_epochs} epoch(s) (estimate {self.estimate:.1%} > "
                f"{self.threshold:.0%}): flagged examples excluded{short}"
            )
        return (
            f"labels looked noisy after {self.after_epochs} epoch(s) (estimate {self.estimate:.1%} > "
            f"{self.threshold:.0%}), so the model trained {self.extra_epochs} more epoch(s) on all data before "
            f"the detector ran again, and kept {self.keep_fraction:.0%} instead of "
            f"{self.planned_keep_fraction:.0%} to stay at the planned compute"
        )


def auto_detector_applies(trainer: Any, pl_module: Any, scorer: Any, needs_scores: bool) -> bool:
    """Whether ``auto``'s detector can read this model's outputs (one forward of the first examples). Per-token
    labels (a language model) have no example label to flag: ``auto`` then drops the detector and prunes as
    ``mislabelled=None`` (said in the log); a score-free strategy would have nothing left to score with, so the
    detector's refusal stands there."""
    from lightning.pytorch.utilities import rank_zero_info

    from datadiet.callbacks._checks import check_first_batch

    detector = scorer.scores.get("label_issue")
    if detector is None:
        return False
    try:
        check_first_batch(trainer, pl_module, scorer.adapter, "PruneDuringFit(mislabelled='auto')", [detector])
    except ValueError as error:
        if not needs_scores:
            raise
        scorer.drop("label_issue")  # this fit only: `setup` builds the scores anew
        rank_zero_info(
            f"PruneDuringFit(mislabelled='auto'): no mislabel detection here ({error}); pruning as "
            "with mislabelled=None"
        )
        return False
    return True


def rescored_table(first: ScoreTable, second: ScoreTable, prune_epoch: int) -> ScoreTable:
    """The second scoring pass's table, with the first's scores that the second did not compute (training-phase
    scores read the first epochs' presentations only)."""
    names = [*second, *(name for name in first if name not in second)]
    source = {name: second if name in second else first for name in names}
    columns = {**first.columns, **second.columns}
    return ScoreTable(
        {name: source[name][name] for name in names},
        raw={name: source[name].raw(name) for name in names},
        labels=second.labels if second.labels is not None else first.labels,
        metadata={**first.metadata, **second.metadata, "probe_epochs": prune_epoch},
        columns=columns,
    )


def table_state(table: ScoreTable | None) -> dict[str, Any] | None:
    """A score table as tensors and plain values, for a checkpoint."""
    import torch

    if table is None:
        return None
    return {
        "scores": {name: torch.from_numpy(table[name].copy()) for name in table},
        "raw": {name: torch.from_numpy(table.raw(name).copy()) for name in table},
        "labels": (
            None
            if table.labels is None or table.labels.dtype.kind not in "biuf"
            else torch.from_numpy(np.array(table.labels))
        ),
        "columns": {name: torch.from_numpy(np.array(values)) for name, values in table.columns.items()},
        "metadata": dict(table.metadata),
    }


def table_from_state(saved: dict[str, Any] | None) -> ScoreTable | None:
    """The inverse of :func:`table_state` (checkpoints from before ``labels`` and ``columns`` were saved too)."""
    if saved is None:
        return None
    labels = saved.get("labels")
    return ScoreTable(
        {name: values.numpy() for name, values in saved["scores"].items()},
        raw={name: values.numpy() for name, values in saved["raw"].items()},
        labels=None if labels is None else labels.numpy(),
        metadata=saved.get("metadata", {}),
        columns={name: values.numpy() for name, values in saved.get("columns", {}).items()},
    )
