"""ScoreTable: per-example scores indexed by original index, saved as an uncompressed npz with its provenance.

The file (format 2) is a zip of plain ``.npy`` arrays, readable with numpy alone:

- ``score/<name>``: the score oriented larger = harder, in its own float dtype (float32 where the statistic
  is kept in float32: EL2N, margin, forgetting; float64 for means such as AUM);
- ``raw/<name>``: the published value, only where it is neither the score itself nor its negation (the
  JSON says which: ``"raw": {"el2n": "score", "margin": "-score", "forgetting": "raw/forgetting"}``);
- ``labels``: per-example class labels, when known;
- ``column/<name>``: further per-example columns of any bool, integer or float dtype (a mislabel flag, a
  predicted label, ...);
- ``__table__``: the description above and the provenance, as JSON text, written in the same atomic
  write as the arrays; ``<path>.json`` beside it holds the same for people and tools that read JSON.

Why an uncompressed npz rather than Parquet: no dependency beyond numpy; the file names and layout of every
existing run directory, probe cache and subset stay valid (format-1 tables, deflated and with a raw copy of
every score, still load); each column keeps its exact dtype with NaN and ±inf; members are stored, so saving
and loading run at disk speed (deflate ran at ~11 MB/s), and a column can be read alone. Pandas, polars and
DuckDB read it through numpy in one line (see the README); a Parquet file would let SQL engines open it
without Python, at the price of a pyarrow dependency.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

import numpy as np

from datadiet.files import UnreadableFileError, atomic_save_npz, atomic_write_json, json_text, load_npz, read_json

#: The format written by :meth:`ScoreTable.save`.
FORMAT = "datadiet.ScoreTable/2"
#: The npz member holding the table's description and provenance (JSON text).
DESCRIPTION_KEY = "__table__"
_CHUNK = 1 << 20


def _float_column(name: str, values: Any) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind != "f":
        values = values.astype(np.float64)
    if values.ndim != 1:
        raise ValueError(f"score {name!r} must be 1-D (one value per example), got shape {values.shape}")
    return values


def _same_values(first: np.ndarray, second: np.ndarray, negated: bool = False) -> bool:
    """Whether ``first`` equals ``second`` (or ``-second``) bit for bit as numbers: NaN matches NaN, -0.0 only -0.0."""
    if len(first) != len(second):
        return False
    for start in range(0, len(first), _CHUNK):
        a, b = first[start : start + _CHUNK], second[start : start + _CHUNK]
        if negated:
            b = -b
        same = ((a == b) & (np.signbit(a) == np.signbit(b))) | (np.isnan(a) & np.isnan(b))
        if not same.all():
            return False
    return True


class ScoreTable(Mapping[str, np.ndarray]):
    """Per-example scores of one dataset, oriented so that larger = harder.

    ``table["el2n"]`` is a float array of length ``len(train_dataset)`` indexed by original index, NaN where
    the probe never saw an example (float32 where the score is computed in float32, else float64).
    ``table.raw("margin")`` is the published value before orientation (a margin is larger for easier
    examples, so ``table["margin"] == -table.raw("margin")``). A raw value equal to the score, or to its
    negation, is not stored twice.

    Args:
        scores: name → oriented per-example values, all of the same length (float dtypes are kept; others
            become float64).
        raw: name → raw values of some of the scores; defaults to the oriented ones.
        labels: optional per-example integer labels (used by class-balanced selection).
        metadata: provenance (dataset fingerprint, probe config, seed, ...), JSON-serialisable.
        columns: further per-example columns (bool, integer or float), e.g. a mislabel flag; saved with the
            table and read back as ``table.columns[name]``.

    Raises:
        ValueError: values that are not 1-D, of different lengths, raw values of a score not in ``scores``,
            or a column of another dtype (strings, objects).

    Example::

        table = ScoreTable({"el2n": np.random.rand(100)})   # or a callback's score_table
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
        self._scores = {name: _float_column(name, values) for name, values in scores.items()}
        self._raw: dict[str, np.ndarray] = {}
        self._negated: set[str] = set()
        self.labels = None if labels is None else np.asarray(labels)
        if self.labels is not None and self.labels.ndim != 1:
            raise ValueError(f"`labels` must be 1-D (one label per example), got shape {self.labels.shape}")
        self.columns: dict[str, np.ndarray] = {}
        for name, values in (columns or {}).items():
            values = np.asarray(values)
            if values.ndim != 1 or values.dtype.kind not in "biuf":
                raise ValueError(
                    f"column {name!r} must be 1-D bool, integer or float (one value per example), got "
                    f"{values.dtype} of shape {values.shape}"
                )
            self.columns[str(name)] = values
        self.metadata: dict[str, Any] = dict(metadata or {})
        lengths = {name: len(values) for name, values in self._scores.items()}
        for name, values in (raw or {}).items():
            if name not in self._scores:
                raise ValueError(f"raw values for {name!r}, which is not a score of this table ({self.names})")
            values = _float_column(name, values) if values is not self._scores[name] else values
            lengths[f"raw {name}"] = len(values)
            self._keep_raw(name, values)
        if self.labels is not None:
            lengths["labels"] = len(self.labels)
        lengths.update({f"column {name}": len(values) for name, values in self.columns.items()})
        if len(set(lengths.values())) > 1:
            raise ValueError(f"all scores, labels and columns must have one value per example; got lengths {lengths}")

    def _keep_raw(self, name: str, values: np.ndarray) -> None:
        score = self._scores[name]
        if values is score or _same_values(values, score):
            return
        if _same_values(values, score, negated=True):
            self._negated.add(name)
            return
        self._raw[name] = values

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
        for values in (*self._scores.values(), *self.columns.values()):
            return len(values)
        return 0 if self.labels is None else len(self.labels)

    @property
    def nbytes(self) -> int:
        """Bytes the table's arrays hold (scores, stored raw values, labels, columns)."""
        arrays = [*self._scores.values(), *self._raw.values(), *self.columns.values()]
        return sum(values.nbytes for values in arrays) + (0 if self.labels is None else self.labels.nbytes)

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
        """The raw (un-oriented) value of score ``name`` (a new array when it is the score's negation)."""
        score = self[name]  # raises with the available names
        if name in self._negated:
            return -score
        return self._raw.get(name, score)

    def __repr__(self) -> str:
        extra = f", columns={list(self.columns)}" if self.columns else ""
        return f"ScoreTable(num_examples={self.num_examples}, scores={self.names}{extra})"

    # Persistence -------------------------------------------------------------------------------
    def description(self) -> dict[str, Any]:
        """What the saved file holds: its format, scores, where each raw value is, labels, columns."""
        raw = {
            name: "-score" if name in self._negated else f"raw/{name}" if name in self._raw else "score"
            for name in self._scores
        }
        return {
            "format": FORMAT,
            "scores": {name: str(values.dtype) for name, values in self._scores.items()},
            "raw": raw,
            "labels": None if self.labels is None else str(self.labels.dtype),
            "columns": {name: str(values.dtype) for name, values in self.columns.items()},
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Writes ``path`` (uncompressed npz, no pickles) and ``path`` with suffix ``.json``, each atomically.

        The npz alone is complete (its ``__table__`` member holds the provenance): a crash between the two
        writes leaves a table whose data and provenance agree.
        """
        path = Path(path)
        description = self.description()
        arrays: dict[str, np.ndarray] = {f"score/{name}": values for name, values in self._scores.items()}
        arrays.update({f"raw/{name}": values for name, values in self._raw.items()})
        if self.labels is not None:
            arrays["labels"] = self.labels
        arrays.update({f"column/{name}": values for name, values in self.columns.items()})
        arrays[DESCRIPTION_KEY] = np.array(json_text({"table": description, "metadata": self.metadata}))
        atomic_save_npz(path, arrays)
        atomic_write_json(path.with_suffix(".json"), {"scores": self.names, "table": description, **self.metadata})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, remedy: str = "") -> "ScoreTable":
        """Reads a table written by :meth:`save` (format 2, or format 1: deflated, raw copies, provenance only
        in the optional JSON sidecar).

        Args:
            path: the ``.npz``.
            remedy: what the error of an unreadable file tells the user to do (default: delete it and rerun).

        Raises:
            FileNotFoundError: no file at ``path``.
            UnreadableFileError: a truncated or corrupt file, or one that is not a score table.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no score table at {path}")
        arrays = load_npz(path, remedy=remedy)
        if not any(key.startswith("score/") for key in arrays):
            raise UnreadableFileError(path, "it holds no `score/<name>` arrays, so it is not a score table", remedy)
        described = arrays.pop(DESCRIPTION_KEY, None)
        if described is not None:
            try:
                parsed = json.loads(str(described))
                description, metadata = parsed["table"], dict(parsed["metadata"])
            except (ValueError, KeyError, TypeError) as error:
                raise UnreadableFileError(path, f"its `{DESCRIPTION_KEY}` is malformed ({error})", remedy) from None
        else:  # format 1: provenance in the sidecar, if any
            sidecar = path.with_suffix(".json")
            metadata = read_json(sidecar, remedy) if sidecar.exists() else {}
            if not isinstance(metadata, dict):
                raise UnreadableFileError(sidecar, "it is not a JSON object", remedy)
            metadata.pop("scores", None)
            metadata.pop("table", None)
            description = {}

        def part(prefix: str) -> dict[str, np.ndarray]:
            return {key[len(prefix) :]: values for key, values in arrays.items() if key.startswith(prefix)}

        table = cls(part("score/"), raw=part("raw/"), labels=arrays.get("labels"), metadata=metadata,
                    columns=part("column/"))  # fmt: skip
        table._negated.update(name for name, where in description.get("raw", {}).items() if where == "-score")
        return table
