"""What training does with the examples a mislabel detector flags, besides leaving them out.

:meth:`PruningDataModule.prune` (and ``PruneDuringFit``, and the app's ``pruning.mislabelled``) takes, besides
``keep`` and ``exclude``:

- ``relabel`` (Prune4ReL, Park et al. NeurIPS 2023: keep and relabel): a flagged example whose predicted class has
  probability at least :data:`RELABEL_CONFIDENCE` in the scoring pass is kept and trained with the predicted class
  as its label; a flagged example predicted less confidently is left out, as with ``exclude``.
- ``downweight``: every flagged example is kept with its given label, but presented in only a share
  :data:`DOWNWEIGHT` of the epochs (drawn per epoch and example from the selection's seed, the same on every rank):
  its expected weight in the gradient is :data:`DOWNWEIGHT`, whatever the user's loss.

Either way the treated examples come first out of the ``keep_fraction`` budget (a down-weighted one counts as
:data:`DOWNWEIGHT` of an example, the compute it costs), and the strategy chooses the rest of it among the
unflagged examples, as ``exclude`` does. What the treatment changes is applied to each training batch after it
reaches its device, before ``training_step`` (and before a ``train_batch_fn``): the batches of a user's loader are
untouched, and a checkpoint carries the treatment with the kept subset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor

from datadiet.data.batch_rows import take_rows
from datadiet.selection import num_to_keep

#: ``relabel``: the smallest predicted-class probability at which a flagged example is relabelled (and kept).
RELABEL_CONFIDENCE = 0.5
#: ``downweight``: the share of the epochs a flagged example is presented in.
DOWNWEIGHT = 0.5
#: The treatments of flagged examples that keep them (``exclude`` and ``exclude_disagreeing`` leave them out).
TREATMENTS = ("relabel", "downweight")


@dataclass
class FlaggedTreatment:
    """The flagged examples kept and how they are trained (see the module's documentation).

    Attributes:
        kind: ``relabel`` or ``downweight``.
        indices: sorted original indices of the treated examples (all of them kept).
        labels: ``relabel``: each treated example's new label (the predicted class), else ``None``.
        weight: ``downweight``: the share of epochs each treated example is presented in (1 for ``relabel``).
        seed: seeds which epochs present a down-weighted example.
    """

    kind: str
    indices: np.ndarray
    labels: Optional[np.ndarray] = None
    weight: float = 1.0
    seed: int = 0
    _present: Optional[tuple[int, np.ndarray]] = field(default=None, repr=False, compare=False)  # the last epoch's

    @property
    def cost(self) -> float:
        """Examples' worth of compute per epoch the treated examples cost, on average."""
        return len(self.indices) * self.weight

    def apply(self, batch: Any, original_index: Tensor, epoch: int) -> tuple[Any, Tensor]:
        """The training batch as the treatment wants it: relabelled rows, or the rows not presented this epoch cut."""
        index = original_index.cpu().numpy()
        position = np.minimum(np.searchsorted(self.indices, index), max(len(self.indices) - 1, 0))
        hit = self.indices[position] == index if len(self.indices) else np.zeros(len(index), dtype=bool)
        if not hit.any():
            return batch, original_index
        if self.kind == "relabel":
            return _with_labels(batch, np.flatnonzero(hit), self.labels[position[hit]], len(index)), original_index
        absent = np.zeros(len(index), dtype=bool)
        absent[hit] = ~self.presented(epoch)[position[hit]]
        if not absent.any() or absent.all():  # a batch is never emptied: a step without examples has no loss
            return batch, original_index
        rows = torch.from_numpy(np.flatnonzero(~absent))
        return take_rows(batch, rows, len(index)), original_index.index_select(0, rows)

    def presented(self, epoch: int) -> np.ndarray:
        """``downweight``: which treated examples ``epoch`` presents (a boolean per ``indices``)."""
        if self._present is None or self._present[0] != epoch:
            self._present = (epoch, np.random.default_rng([self.seed, epoch]).random(len(self.indices)) < self.weight)
        return self._present[1]

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "indices": torch.from_numpy(np.asarray(self.indices, dtype=np.int64)),
            "labels": None if self.labels is None else torch.from_numpy(np.asarray(self.labels, dtype=np.int64)),
            "weight": self.weight,
            "seed": self.seed,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "FlaggedTreatment":
        labels = state.get("labels")
        return cls(
            str(state["kind"]),
            np.asarray(state["indices"], dtype=np.int64),
            None if labels is None else np.asarray(labels, dtype=np.int64),
            float(state["weight"]),
            int(state["seed"]),
        )

    def same_as(self, other: Optional["FlaggedTreatment"]) -> bool:
        return (
            other is not None
            and self.kind == other.kind
            and np.array_equal(self.indices, other.indices)
            and (self.labels is None) == (other.labels is None)
            and (self.labels is None or np.array_equal(self.labels, other.labels))
            and self.weight == other.weight
            and self.seed == other.seed
        )


def plan_treatment(
    kind: str, columns: dict[str, np.ndarray], keep_fraction: float, num_examples: int, seed: int
) -> tuple[FlaggedTreatment, float]:
    """The treatment of a score table's flagged examples, and the fraction of the training set left for the
    strategy to choose among the unflagged: the whole examples of the budget (``num_to_keep``) that the treated ones'
    cost leaves (0 when they fill it).

    Where the treated examples alone would exceed the budget, the most confidently predicted fill it.

    Raises:
        ValueError: an unknown ``kind``; ``relabel`` with a table without ``predicted_probability`` (tables
            written before it was recorded: score again).
    """
    if kind not in TREATMENTS:
        raise ValueError(f"a treatment of flagged examples can be {', '.join(TREATMENTS)}, got {kind!r}")
    flagged = np.asarray(columns["mislabelled"], dtype=bool)
    confidence = columns.get("predicted_probability")
    if confidence is None:
        if kind == "relabel":
            raise ValueError(
                "`mislabelled='relabel'` needs the scoring pass's predicted-class probabilities (the score table's "
                "`predicted_probability` column, recorded by the `label_issue` score); this "
                "table has none: score again, or use mislabelled='exclude'"
            )
        confidence = np.ones(num_examples)
    confidence = np.asarray(confidence, dtype=np.float64)
    if kind == "relabel":
        candidates = np.flatnonzero(flagged & (confidence >= RELABEL_CONFIDENCE))
    else:
        candidates = np.flatnonzero(flagged)
    weight = 1.0 if kind == "relabel" else DOWNWEIGHT
    budget = num_to_keep(num_examples, keep_fraction)
    most = int(budget // weight + 1e-9)
    if len(candidates) > most:  # the most confident first; ties by index
        order = np.lexsort((candidates, -confidence[candidates]))
        candidates = candidates[order[:most]]
    indices = np.sort(candidates).astype(np.int64)
    labels = None
    if kind == "relabel":
        labels = np.asarray(columns["predicted_label"], dtype=np.int64)[indices]
    treatment = FlaggedTreatment(kind, indices, labels, weight, int(seed))
    rest = int(np.floor(budget - treatment.cost + 1e-9))  # whole examples, the budget never exceeded
    return treatment, max(0, rest) / num_examples


def _with_labels(batch: Any, rows: np.ndarray, labels: np.ndarray, size: int) -> Any:
    """An ``(x, y, ...)`` batch with ``y[rows]`` replaced by ``labels``."""
    target = batch[1] if isinstance(batch, (tuple, list)) and len(batch) >= 2 else None
    if (
        not isinstance(target, Tensor)
        or target.ndim != 1
        or len(target) != size
        or target.dtype.is_floating_point
        or target.dtype == torch.bool
    ):
        second = (
            type(target).__name__
            if not isinstance(target, Tensor)
            else f"a {target.dtype} tensor of shape {tuple(target.shape)}"
        )
        raise ValueError(
            f"`mislabelled='relabel'` replaces the integer class labels of (x, y) batches; a training batch is a "
            f"{type(batch).__name__} whose second element is {second}; use mislabelled='exclude' or 'downweight'"
        )
    relabelled = target.clone()
    relabelled[torch.from_numpy(rows).to(target.device)] = torch.from_numpy(labels).to(target.device, target.dtype)
    items = [batch[0], relabelled, *batch[2:]]
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*items)
    return type(batch)(items)
