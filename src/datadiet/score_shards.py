"""Scoring beyond one machine: Lightning's own ``trainer.predict`` under DDP / multi-node, each rank writing its
share of the score table as a shard (:class:`ScoreShardWriter`), and :func:`merge_score_shards`, which reads the
shards one at a time into one :class:`~datadiet.ScoreTable`.

A rank holds only the examples its ``DistributedSampler`` hands it: O(N / world_size) for the scores, never O(N).
A directory of shards is also read directly wherever a score file is (``probe.scores_path``, ``datadiet
task=select``, :func:`datadiet.subset.import_score_table`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DistributedSampler
from typing_extensions import override

from datadiet.adapter import Adapter
from datadiet.files import UnreadableFileError, atomic_save_npz, load_npz
from datadiet.scores import get_score
from datadiet.store import ScoreTable

#: A shard's file name: its rank and the world size.
SHARD_NAME = "scores-rank{rank:05d}-of-{world_size:05d}.npz"
SHARD_GLOB = "scores-rank*-of-*.npz"


class ScoreShardWriter(BasePredictionWriter):
    """Writes the per-example scores of ``trainer.predict`` over the training set, one shard per rank.

    Each batch's predictions are read as logits (and the batch's labels) by ``adapter``, turned into the eval-pass
    scores named (e.g. EL2N, margin, loss), and kept with the batch's dataset positions (Lightning's
    ``batch_indices``: the original indices when the loader reads the training set in order). At the end of the
    pass each rank writes ``scores-rank{r}-of-{w}.npz`` into ``output_dir``. Call ``trainer.predict(...,
    return_predictions=False)`` so the logits are not gathered as well.

    Args:
        output_dir: the folder of the shards (made if missing).
        scores: eval-pass scores (``datadiet.list_scores()`` whose ``phase`` is ``"eval"``).
        adapter: how logits and labels are read from ``predict_step``'s output and the batch (default: the
            output is the logits, the batch is ``(x, y)``).

    Raises:
        ValueError: an unknown score, or one that is not read off a scoring pass of logits.

    Example::

        >>> import tempfile
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> class Linear(pl.LightningModule):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.layer = torch.nn.Linear(3, 2)
        ...     def predict_step(self, batch, batch_idx):
        ...         return self.layer(batch[0])
        >>> data = TensorDataset(torch.randn(10, 3), torch.randint(0, 2, (10,)))
        >>> folder = tempfile.mkdtemp()
        >>> trainer = pl.Trainer(callbacks=[ScoreShardWriter(folder, scores=["el2n"])], logger=False,
        ...                      enable_progress_bar=False, enable_model_summary=False)
        >>> trainer.predict(Linear(), DataLoader(data, batch_size=4), return_predictions=False)
        >>> merge_score_shards(folder).num_examples
        10
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        scores: Sequence[str] = ("el2n", "margin", "loss"),
        adapter: Adapter | None = None,
    ) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.scores = list(scores)
        if not self.scores:
            raise ValueError("`scores` must name at least one eval-pass score, got none")
        for name in self.scores:
            cls = get_score(name)
            if getattr(cls, "phase", None) != "eval" or getattr(cls, "functional", None) is None:
                raise ValueError(
                    f"`scores` can hold scores read off a scoring pass of logits (e.g. el2n, margin, loss), "
                    f"got {name!r}"
                )
        self.adapter = adapter or Adapter()
        self._reset()

    def _reset(self, capacity: int = 0) -> None:
        # preallocated to the rank's share when the sampler says it: the shard is never held twice
        self._filled = 0
        self._indices = np.empty(capacity, dtype=np.int64)
        self._labels = np.empty(capacity, dtype=np.int64)
        self._values = {name: np.empty(capacity, dtype=np.float32) for name in self.scores}

    def _append(self, index: np.ndarray, labels: np.ndarray, values: dict[str, np.ndarray]) -> None:
        end = self._filled + len(index)
        if end > len(self._indices):  # a sampler of unknown length: grow geometrically
            capacity = max(end, 2 * len(self._indices))
            self._indices = np.resize(self._indices, capacity)
            self._labels = np.resize(self._labels, capacity)
            self._values = {name: np.resize(column, capacity) for name, column in self._values.items()}
        self._indices[self._filled : end] = index
        self._labels[self._filled : end] = labels
        for name, column in self._values.items():
            column[self._filled : end] = values[name]
        self._filled = end

    @override
    def on_predict_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        sampler = getattr(_predict_loader(trainer), "sampler", None)
        try:
            capacity = len(sampler)  # type: ignore[arg-type]
        except TypeError:
            capacity = 0
        self._reset(capacity)

    @override
    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        if batch_indices is None or len(batch_indices) == 0:
            raise ValueError(
                "ScoreShardWriter needs each batch's dataset positions: predict with a torch DataLoader "
                "(Lightning then records them), not another iterable"
            )
        logits, target = self.adapter.read(prediction, batch)
        if target is None:
            raise ValueError("ScoreShardWriter scores need labels; the adapter read none from the batch")
        logits = logits.detach().float()
        values = {
            name: get_score(name).functional(logits, target).detach().to("cpu", torch.float32).numpy()
            for name in self.scores
        }
        self._append(np.asarray(batch_indices, dtype=np.int64), target.detach().cpu().numpy(), values)

    @override
    def on_predict_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        filled = self._filled
        arrays: dict[str, np.ndarray] = {
            "original_index": self._indices[:filled],
            "label": self._labels[:filled],
            "num_examples": np.asarray(len(_predict_loader(trainer).dataset), dtype=np.int64),
        }
        for name in self.scores:  # raw values only: the merge orients them (larger = harder)
            arrays[f"raw/{name}"] = self._values[name][:filled]
        self.output_dir.mkdir(parents=True, exist_ok=True)
        atomic_save_npz(
            self.output_dir / SHARD_NAME.format(rank=trainer.global_rank, world_size=trainer.world_size), arrays
        )
        del arrays
        self._reset()  # the rank's share is on disk: nothing O(N / world_size) stays held

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"output_dir": str(self.output_dir), "scores": list(self.scores)}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.output_dir = Path(state_dict.get("output_dir", self.output_dir))
        self.scores = list(state_dict.get("scores", self.scores))


def merge_score_shards(directory: str | os.PathLike) -> ScoreTable:
    """One :class:`ScoreTable` from the shards of :class:`ScoreShardWriter` in ``directory``, read one at a time
    (peak memory: the table plus one shard). An example two ranks scored (the sampler's padding) must have one
    value.

    Raises:
        FileNotFoundError: no shards in ``directory``.
        UnreadableFileError: shards of different passes (world sizes or sizes), missing ranks, an example no
            rank scored, or one scored twice with different values.
    """
    directory = Path(directory)
    paths = sorted(directory.glob(SHARD_GLOB))
    if not paths:
        raise FileNotFoundError(f"no score shards ({SHARD_GLOB}) in {directory}")
    world_sizes = {int(path.stem.rsplit("-of-", 1)[1]) for path in paths}
    if len(world_sizes) != 1 or len(paths) != next(iter(world_sizes)):
        raise UnreadableFileError(
            directory,
            f"it holds {len(paths)} shards of world sizes {sorted(world_sizes)}: not one complete pass",
            "rerun the scoring into an empty folder",
        )
    remedy = "rerun the scoring into an empty folder"
    raw: dict[str, np.ndarray] = {}
    labels: np.ndarray | None = None
    seen: np.ndarray | None = None
    for path in paths:
        shard = load_npz(path, keys=("original_index", "label", "num_examples"), remedy=remedy)
        size = int(shard.pop("num_examples"))
        if labels is None:
            labels, seen = np.full(size, -1, dtype=np.int64), np.zeros(size, dtype=bool)
        elif size != len(labels):
            raise UnreadableFileError(path, f"it scores {size} examples, another shard {len(labels)}", remedy)
        index = shard.pop("original_index")
        again = seen[index]
        for key, values in shard.items():
            if key == "label":
                column = labels
            elif key.startswith("raw/"):
                column = raw.setdefault(key[len("raw/") :], np.full(size, np.nan, dtype=np.float32))
            else:
                continue
            if again.any() and not np.array_equal(
                column[index[again]], values[again], equal_nan=values.dtype.kind == "f"
            ):
                raise UnreadableFileError(path, f"example(s) scored by two ranks with different {key}", remedy)
            column[index] = values
        seen[index] = True
        del shard, index, again
    if not seen.all():
        missing = int((~seen).sum())
        raise UnreadableFileError(directory, f"{missing} of {len(seen)} examples were scored by no rank", remedy)
    scores = {name: -values if get_score(name).raw_is_easiness else values for name, values in raw.items()}
    return ScoreTable(
        scores,
        raw=raw,
        labels=labels,
        metadata={"num_examples": len(labels), "imported_from": str(directory), "shards": len(paths)},
    )


class ShardSampler(DistributedSampler):
    """Each rank's contiguous share of ``range(num_examples)``, worked out when iterated: no list of all N indices
    on any rank (a ``DistributedSampler`` builds one). Lightning keeps it as the predict loader's sampler.

    Args:
        num_examples: the dataset's size.

    Example::

        >>> list(ShardSampler(5))  # one process: everything, in order
        [0, 1, 2, 3, 4]
    """

    def __init__(self, num_examples: int) -> None:  # rank and world size are read when iterated, after DDP starts
        if isinstance(num_examples, bool) or not isinstance(num_examples, int) or num_examples < 0:
            raise ValueError(f"`num_examples` must be an integer >= 0, got {num_examples!r}")
        self.num_examples = num_examples

    def _share(self) -> range:
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        rank = dist.get_rank() if world > 1 else 0
        per_rank = -(-self.num_examples // world)
        start = min(rank * per_rank, self.num_examples)
        return range(start, min(start + per_rank, self.num_examples))

    def __iter__(self) -> Any:
        return iter(self._share())

    def __len__(self) -> int:
        return len(self._share())

    def set_epoch(self, epoch: int) -> None:
        """Unshuffled: the epoch changes nothing."""


def _predict_loader(trainer: pl.Trainer) -> Any:
    loaders = trainer.predict_dataloaders
    return loaders[0] if isinstance(loaders, (list, tuple)) else loaders
