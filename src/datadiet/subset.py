"""Importing published per-example scores, and exporting / loading a reusable "foundation subset".

A foundation subset is the kept subset of one run — original indices, their scores, and where they
came from — saved so that another run trains on it without probing::

    export_foundation_subset("cifar10_el2n_30.npz", kept, table, score="el2n", provenance={...})
    datadiet pruning.subset_path=cifar10_el2n_30.npz         # train on it, no probe

Files are an ``.npz`` (no pickles) with ``kept_indices`` and ``kept_scores`` (plus ``score/<name>``
for every score of the table, restricted to the kept examples) and a ``.json`` sidecar with the
provenance, both written atomically. The app's ``kept_indices.npz`` has the same layout, so any run's
kept subset can be loaded back.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
from lightning.pytorch.utilities.rank_zero import rank_zero_warn

from datadiet.card import card_markdown, subset_card
from datadiet.files import (
    UnreadableFileError,
    atomic_save_npz,
    atomic_write_json,
    atomic_write_text,
    load_npz,
    read_json,
)
from datadiet.store import ScoreTable


def import_score_table(
    path: str | os.PathLike,
    *,
    name: str = "imported",
    index_column: str = "index",
    score_column: str = "score",
    num_examples: Optional[int] = None,
    larger_is_harder: bool = True,
    labels: Optional[np.ndarray] = None,
) -> ScoreTable:
    """Reads (index, score) pairs from a CSV (with a header) or an ``.npz`` into a :class:`ScoreTable`.

    A table saved by :meth:`ScoreTable.save` is loaded as is, and a folder of shards written by
    :class:`~datadiet.score_shards.ScoreShardWriter` is merged (:func:`~datadiet.score_shards.merge_score_shards`).
    Otherwise the file has an integer
    ``index_column`` (original index) and a float ``score_column``; examples it does not list get NaN,
    with a warning naming how many: :meth:`PruningDataModule.prune` ranks them hardest, and refuses a
    table with more than ``max_unscored_fraction`` (default half) of them.

    Args:
        path: ``.csv`` or ``.npz`` file, or a folder of score shards.
        name: the score's name in the table.
        index_column: column / array of original indices.
        score_column: column / array of scores.
        num_examples: training set size (default ``max(index) + 1``).
        larger_is_harder: ``False`` for published values that grow with easiness (a margin, AUM); the
            table then stores ``-value`` as the score and the published value as raw.
        labels: optional per-example labels for class-balanced selection.

    Raises:
        FileNotFoundError: no such file.
        ValueError: missing columns, duplicate or negative indices, or an index ≥ ``num_examples``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no score file at {path}")
    if path.is_dir():  # the shards of a distributed scoring pass (datadiet.score_shards)
        from datadiet.score_shards import merge_score_shards

        return merge_score_shards(path)
    if path.suffix == ".npz":
        data = load_npz(path, remedy="it is not a score file datadiet can read")
        if any(key.startswith("score/") for key in data):
            return ScoreTable.load(path)
        missing = [key for key in (index_column, score_column) if key not in data]
        if missing:
            raise ValueError(f"{path} has no {missing} array(s); it has {sorted(data)}")
        index, values = data[index_column], data[score_column]
    elif path.suffix == ".csv":
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [key for key in (index_column, score_column) if key not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{path} has no column(s) {missing}; its header is {reader.fieldnames}")
            rows = [(row[index_column], row[score_column]) for row in reader]
        index = np.array([int(i) for i, _ in rows], dtype=np.int64)
        values = np.array([float(v) if v not in ("", "nan", "NaN") else np.nan for _, v in rows])
    else:
        raise ValueError(f"score files must be .csv or .npz, got {path.name}")
    index = np.asarray(index, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    if index.ndim != 1 or index.shape != values.shape:
        raise ValueError(f"index and score must be 1-D of one length, got {index.shape} and {values.shape}")
    if len(np.unique(index)) != len(index) or (index < 0).any():
        raise ValueError(f"{path}: original indices must be unique and >= 0")
    size = int(index.max()) + 1 if num_examples is None and len(index) else int(num_examples or 0)
    if len(index) and index.max() >= size:
        raise ValueError(f"{path}: index {int(index.max())} is out of range for {size} examples")
    raw = np.full(size, np.nan)
    raw[index] = values
    unscored = int(np.isnan(raw).sum())
    if unscored:
        rank_zero_warn(
            f"{path} gives no score (missing row or NaN) for {unscored} of {size} examples; they get NaN, which "
            "`prune` ranks as hardest (strategy 'hard' keeps them first, 'easy' drops them first), and it refuses "
            "the table when more than `max_unscored_fraction` (default half) of the examples are NaN"
        )
    return ScoreTable(
        {name: raw if larger_is_harder else -raw},
        raw={name: raw},
        labels=labels,
        metadata={"imported_from": str(path), "num_examples": size, "num_unscored": unscored},
    )


@dataclass
class FoundationSubset:
    """A kept subset loaded back: original indices, their scores, and provenance."""

    kept_indices: np.ndarray
    kept_scores: Optional[np.ndarray] = None
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def check_dataset(self, num_examples: int, fingerprint: Optional[str] = None) -> None:
        """Fails when the subset was made from another dataset (content fingerprint, else size), naming both."""
        expected = self.metadata.get("num_examples")
        made_for = self.metadata.get("dataset_fingerprint")
        if fingerprint is not None and made_for is not None and made_for != fingerprint:
            raise ValueError(
                f"the subset was made for another dataset: fingerprint {made_for} ({expected} training examples), this "
                f"dataset's fingerprint is {fingerprint} ({num_examples} training examples); choose a subset of this "
                "data (datadiet task=select with the same data settings)"
            )
        if expected is not None and int(expected) != num_examples:
            raise ValueError(f"the subset was made for {expected} training examples, this dataset has {num_examples}")
        if len(self.kept_indices) and (self.kept_indices.min() < 0 or self.kept_indices.max() >= num_examples):
            raise ValueError(f"the subset's indices fall outside [0, {num_examples})")


def export_foundation_subset(
    path: str | os.PathLike,
    kept_indices: np.ndarray,
    table: Optional[ScoreTable] = None,
    *,
    score: Optional[str] = None,
    provenance: Optional[Mapping[str, Any]] = None,
    card: bool = False,
    labels: Optional[np.ndarray] = None,
    num_examples: Optional[int] = None,
) -> Path:
    """Writes a foundation subset: ``path`` (npz) and ``path.json`` (provenance), atomically; with ``card``, also
    its dataset card: ``README.md`` beside it and the same facts as ``<name>_card.json``
    (see :func:`datadiet.card.subset_card`).

    Args:
        path: the ``.npz`` to write.
        kept_indices: original indices of the kept examples.
        table: the score table the subset was selected from (its scores of the kept examples are saved).
        score: the score the selection ranked by (saved as ``kept_scores``).
        provenance: anything else to record (pruning config, dataset fingerprint, ...). For the card, the keys
            ``dataset`` (``name``, ``fingerprint``, ``num_examples``), ``selection`` (``selector``, ``score``,
            ``strategy``, ``keep_fraction``, ``class_balanced``, ``label_noise``), ``cost`` (``flops``,
            ``wall_time_s``) and ``train_command`` are shown.
        card: write the dataset card too.
        labels: every training example's label, for the card's per-class counts (default: the table's).
        num_examples: the training set's size (default: the table's); the card needs one of them.

    Example::

        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> table = ScoreTable({"el2n": np.array([0.9, 0.1, 0.8, 0.2])}, labels=np.array([0, 1, 1, 0]))
        >>> path = export_foundation_subset(f"{folder}/subset.npz", [0, 2], table, score="el2n", card=True)
        >>> sorted(p.name for p in Path(folder).iterdir())
        ['README.md', 'subset.json', 'subset.npz', 'subset_card.json']

    Raises:
        ValueError: ``card=True`` with neither a table nor ``num_examples``.
    """
    path = Path(path)
    kept = np.sort(np.asarray(kept_indices, dtype=np.int64))
    arrays: dict[str, np.ndarray] = {"kept_indices": kept}
    metadata: dict[str, Any] = {"num_kept": int(len(kept))}
    if table is not None:
        arrays.update({f"score/{name}": table[name][kept] for name in table.names})
        if score is not None:
            arrays["kept_scores"] = table[score][kept]
        metadata["num_examples"] = table.num_examples
        for key in ("probe_fingerprint", "dataset"):
            if key in table.metadata:
                metadata[key] = table.metadata[key]
        dataset = table.metadata.get("dataset")
        if isinstance(dataset, Mapping) and "fingerprint" in dataset:
            metadata["dataset_fingerprint"] = dataset["fingerprint"]
    metadata["score"] = score
    metadata.update(dict(provenance or {}))
    size = num_examples if num_examples is not None else (table.num_examples if table is not None else None)
    if size is not None:
        metadata.setdefault("num_examples", int(size))
    dataset = metadata.get("dataset")
    if isinstance(dataset, Mapping) and "fingerprint" in dataset:
        metadata.setdefault("dataset_fingerprint", dataset["fingerprint"])
    if card and size is None:
        raise ValueError("a subset's card needs the training set's size: pass `num_examples` or the score `table`")
    atomic_save_npz(path, arrays)
    atomic_write_json(path.with_suffix(".json"), metadata)
    if card:
        if labels is None and table is not None:
            labels = table.labels
        facts = subset_card(
            kept,
            num_examples=int(size),
            labels=labels,
            scores=table[score] if table is not None and score is not None else None,
            provenance={"subset_file": path.name, **metadata},
        )
        atomic_write_json(path.with_name(f"{path.stem}_card.json"), facts)
        atomic_write_text(path.with_name("README.md"), card_markdown(facts))
    return path


def load_foundation_subset(path: str | os.PathLike, remedy: str = "") -> FoundationSubset:
    """Reads a subset written by :func:`export_foundation_subset` (or an app run's ``kept_indices.npz``).

    Raises:
        FileNotFoundError: no file at ``path``.
        UnreadableFileError: a truncated or corrupt file (or its ``.json``), or one without ``kept_indices``;
            ``remedy`` says what to do (default: delete it and rerun).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no foundation subset at {path}")
    data = load_npz(path, keys=("kept_indices",), remedy=remedy)
    kept = np.asarray(data["kept_indices"], dtype=np.int64)
    if kept.ndim != 1:
        raise UnreadableFileError(
            path, f"its `kept_indices` has shape {kept.shape}, not one index per kept example", remedy
        )
    kept_scores = data.get("kept_scores")
    scores = {key[len("score/") :]: values for key, values in data.items() if key.startswith("score/")}
    sidecar = path.with_suffix(".json")
    metadata = read_json(sidecar, remedy) if sidecar.exists() else {}
    if not isinstance(metadata, dict):
        raise UnreadableFileError(sidecar, "it is not a JSON object", remedy)
    return FoundationSubset(kept, kept_scores, scores, metadata)


def subset_for_datamodule(path: str | os.PathLike, datamodule: Any, remedy: str = "") -> np.ndarray:
    """The kept indices of a foundation subset, checked against ``datamodule``'s training set."""
    subset = load_foundation_subset(path, remedy)
    subset.check_dataset(datamodule.num_examples, datamodule.fingerprint())
    return np.sort(subset.kept_indices)


def table_for_datamodule(path: str | os.PathLike, datamodule: Any, score: str) -> ScoreTable:
    """A score table for ``datamodule`` from ``path``: a saved :class:`ScoreTable`, or (index, score)
    columns imported as score ``score``; its length must match the training set."""
    table = import_score_table(path, name=score, num_examples=datamodule.num_examples)
    if table.num_examples != datamodule.num_examples:
        raise ValueError(f"{path} scores {table.num_examples} examples, the training set has {datamodule.num_examples}")
    if score not in table:
        raise ValueError(f"`pruning.score={score}` is not in {path}; it has {table.names}")
    if table.labels is None:
        table.labels = datamodule.labels
    return table


def subset_group(path: str | os.PathLike) -> str:
    """The name that groups the runs trained on one subset (W&B group, scaling-curve line): its folder's last two
    parts and the file's stem, e.g. ``2026-12-06_10-00-00_subset`` for ``outputs/2026-12-06/10-00-00/subset.npz``."""
    resolved = Path(path).resolve()
    return "_".join([*resolved.parent.parts[-2:], resolved.stem])
