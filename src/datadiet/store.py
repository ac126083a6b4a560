"""ScoreTable: per-example scores indexed by original index, saved as npz + JSON provenance."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

import numpy as np

from datadiet._io import atomic_save_npz, atomic_write_json


class ScoreTable(Mapping[str, np.ndarray]):
    """Per-example scores of one dataset, oriented so that larger = harder.

    ``table["el2n"]`` is a float64 array of length ``len(train_dataset)`` indexed by original index,
    NaN where the probe never saw an example. ``table.raw("margin")`` is the published value before
    orientation (a margin is larger for easier examples, so ``table["margin"] == -table.raw("margin")``).

    Args:
        scores: name → oriented per-example values, all of the same length.
        raw: name → raw values; defaults to the oriented ones.
        labels: optional per-example integer labels (used by class-balanced selection).
        metadata: provenance (dataset fingerprint, probe config, seed, ...), JSON-serialisable.
        columns: per-example values that are not difficulty scores, e.g. ``mislabelled`` (bool) and
            ``predicted_label`` (int) from the ``label_issue`` score; read them with ``table.columns[name]``.

    Example::

        table = callback.score_table
        hardest = np.argsort(table["el2n"])[::-1][:10]
        table.save("scores.npz")
        same = ScoreTable.load("scores.npz")
    """

    def __init__(
        self,
        scores: Mapping[str, Any],
        raw: Optional[Mapping[str, Any]] = None,
        labels: Optional[Any] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        columns: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self._scores = {name: np.asarray(values, dtype=np.float64) for name, values in scores.items()}
        self._raw = {name: np.asarray(values, dtype=np.float64) for name, values in (raw or {}).items()}
        for name, values in {**self._scores, **self._raw}.items():
            if values.ndim != 1:
                raise ValueError(f"score {name!r} must be 1-D (one value per example), got shape {values.shape}")
        #: Per-example columns that are not scores (``mislabelled``, ``predicted_label``), by original index.
        self.columns: dict[str, np.ndarray] = {name: np.asarray(values) for name, values in (columns or {}).items()}
        for name, values in self.columns.items():
            if values.ndim != 1:
                raise ValueError(f"column {name!r} must be 1-D (one value per example), got shape {values.shape}")
        lengths = {name: len(values) for name, values in {**self._scores, **self._raw, **self.columns}.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"all scores must have one value per example; got lengths {lengths}")
        self.labels = None if labels is None else np.asarray(labels)
        if self.labels is not None and self.labels.ndim != 1:
            raise ValueError(f"`labels` must be 1-D (one label per example), got shape {self.labels.shape}")
        self.metadata: dict[str, Any] = dict(metadata or {})
        if self.labels is not None and lengths and len(self.labels) != next(iter(lengths.values())):
            raise ValueError(
                f"`labels` has length {len(self.labels)}, but the scores have {next(iter(lengths.values()))}"
            )

    # Mapping interface -------------------------------------------------------------------------
    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._scores:
            raise KeyError(f"no score {name!r} in this table; it has: {', '.join(self.names) or 'none'}")
        return self._scores[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._scores)

    def __len__(self) -> int:
        """Number of scores in the table (use :attr:`num_examples` for the number of examples)."""
        return len(self._scores)

    @property
    def names(self) -> list[str]:
        return list(self._scores)

    @property
    def num_examples(self) -> int:
        for values in self._scores.values():
            return len(values)
        return 0 if self.labels is None else len(self.labels)

    @property
    def dataset_fingerprint(self) -> Optional[str]:
        """The fingerprint of the training set the scores were computed on, when recorded.

        ``metadata["dataset_fingerprint"]`` (set by :class:`~datadiet.DifficultyCallback`) or the app's
        ``metadata["dataset"]["fingerprint"]``; ``None`` for tables without provenance (imported ones).
        """
        recorded = self.metadata.get("dataset_fingerprint")
        dataset = self.metadata.get("dataset")
        if recorded is None and isinstance(dataset, Mapping):
            recorded = dataset.get("fingerprint")
        return None if recorded is None else str(recorded)

    def raw(self, name: str) -> np.ndarray:
        """The raw (un-oriented) value of score ``name``."""
        self[name]  # raises with the available names
        return self._raw.get(name, self._scores[name])

    def __repr__(self) -> str:
        return f"ScoreTable(num_examples={self.num_examples}, scores={self.names})"

    # Persistence -------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Writes ``path`` (npz, no pickles) and ``path`` with suffix ``.json`` (provenance), atomically."""
        path = Path(path)
        arrays = {f"score/{name}": values for name, values in self._scores.items()}
        arrays.update({f"raw/{name}": values for name, values in self._raw.items()})
        arrays.update({f"column/{name}": values for name, values in self.columns.items()})
        if self.labels is not None:
            arrays["labels"] = self.labels
        atomic_save_npz(path, arrays)
        atomic_write_json(path.with_suffix(".json"), {"scores": self.names, **self.metadata})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ScoreTable":
        """Reads a table written by :meth:`save` (the JSON sidecar is optional)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no score table at {path}")
        with np.load(path, allow_pickle=False) as data:
            scores = {key[len("score/") :]: data[key] for key in data.files if key.startswith("score/")}
            raw = {key[len("raw/") :]: data[key] for key in data.files if key.startswith("raw/")}
            columns = {key[len("column/") :]: data[key] for key in data.files if key.startswith("column/")}
            labels = data["labels"] if "labels" in data.files else None
        metadata: dict[str, Any] = {}
        sidecar = path.with_suffix(".json")
        if sidecar.exists():
            metadata = json.loads(sidecar.read_text())
            metadata.pop("scores", None)
        return cls(scores, raw=raw, labels=labels, metadata=metadata, columns=columns)
