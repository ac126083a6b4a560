"""PruningDataModule: wraps any map-style dataset, tracks original indices, trains on a kept subset."""

from __future__ import annotations

import os
import warnings
from typing import Any, Callable, Optional, Union

import numpy as np
import lightning.pytorch as pl
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, SequentialSampler, Subset

from datadiet.data.indexed import IndexedBatch, IndexedCollate, IndexedDataset
from datadiet.data.labels import dataset_labels
from datadiet.fingerprint import dataset_fingerprint
from datadiet.selection import select
from datadiet.store import ScoreTable

_FORWARDED_HOOKS = ("transfer_batch_to_device", "on_after_batch_transfer")


class PruningDataModule(pl.LightningDataModule):
    """A ``LightningDataModule`` whose training set can be pruned to a kept subset.

    The training loader yields :class:`IndexedBatch` pairs; :meth:`on_before_batch_transfer` strips
    them, so ``training_step`` receives exactly the wrapped dataset's batches (``x, y = batch`` keeps
    working) while the original index of each example is left in :attr:`batch_original_index` for
    :class:`~datadiet.DifficultyCallback`. After :meth:`prune`, the next ``train_dataloader()`` iterates
    only over the kept examples (a new ``Trainer``, or ``reload_dataloaders_every_n_epochs=1``, picks
    it up); under DDP Lightning shards that subset with an ordinary ``DistributedSampler``.

    Args:
        train_dataset: any map-style dataset; item ``i`` keeps original index ``i``.
        val_dataset: optional validation dataset (never pruned).
        test_dataset: optional test dataset (never pruned).
        batch_size: training batch size.
        num_workers: ``DataLoader`` workers.
        eval_batch_size: batch size of validation, test and scoring loaders (default: ``batch_size``).
        shuffle: shuffle the training set each epoch.
        drop_last: drop the last incomplete training batch.
        pin_memory: pin host memory in every loader.
        collate_fn: the collate function for the wrapped items (default: torch's ``default_collate``).
        name: a short dataset name used in summaries and provenance.

    Raises:
        ValueError: a non-positive ``batch_size`` or negative ``num_workers``.

    Example::

        dm = PruningDataModule(train_set, val_set, test_set, batch_size=128)
        probe = Trainer(max_epochs=5, callbacks=[DifficultyCallback()])
        probe.fit(probe_model, datamodule=dm)
        dm.prune(probe.callbacks[0].score_table, score="el2n", keep_fraction=0.5, strategy="hard")
        Trainer(max_epochs=50).fit(model, datamodule=dm)   # trains on the kept half
    """

    def __init__(
        self,
        train_dataset: Dataset,
        val_dataset: Optional[Dataset] = None,
        test_dataset: Optional[Dataset] = None,
        batch_size: int = 64,
        num_workers: int = 0,
        eval_batch_size: Optional[int] = None,
        shuffle: bool = True,
        drop_last: bool = False,
        pin_memory: bool = False,
        collate_fn: Optional[Callable[[list], Any]] = None,
        name: Optional[str] = None,
    ) -> None:
        super().__init__()
        for arg_name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"`{arg_name}` must be a positive integer, got {value!r}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"`num_workers` must be an integer >= 0, got {num_workers!r}")
        if not hasattr(train_dataset, "__getitem__") or not hasattr(train_dataset, "__len__"):
            raise TypeError(
                f"`train_dataset` must be a map-style dataset (with __getitem__ and __len__), "
                f"got {type(train_dataset).__name__}"
            )
        self.train_dataset = train_dataset
        self.val_dataset = val_dataset
        self.test_dataset = test_dataset
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.pin_memory = pin_memory
        self.collate_fn = collate_fn
        self.name = name or type(train_dataset).__name__
        #: Shape of one input and number of classes, when known (the built-in sources set them).
        self.input_shape: Optional[tuple[int, ...]] = None
        self.num_classes: Optional[int] = None
        self.kept_indices: Optional[np.ndarray] = None
        #: Original indices of the training batch being processed (set before it reaches the device).
        self.batch_original_index: Optional[Tensor] = None
        #: Training examples handed to ``training_step`` so far (a compute counter for summaries).
        self.train_examples_served = 0
        self._indexed_train = IndexedDataset(train_dataset)
        self._wrapped: Optional[pl.LightningDataModule] = None
        self._labels: Optional[np.ndarray] = None
        self._labels_read = False

    @classmethod
    def from_datamodule(cls, datamodule: pl.LightningDataModule, **overrides: Any) -> "PruningDataModule":
        """Wraps an existing ``LightningDataModule``.

        Calls ``prepare_data()`` and ``setup("fit")`` on it, reads its training loader's dataset,
        batch size, workers and collate function, and forwards validation, test and predict loaders
        and its batch-transfer hooks to it unchanged.

        Args:
            datamodule: the user's data module.
            **overrides: constructor arguments that replace what was read from its training loader.

        Raises:
            TypeError: if its ``train_dataloader()`` is not a single ``DataLoader`` over a map-style dataset.
        """
        datamodule.prepare_data()
        datamodule.setup("fit")
        loader = datamodule.train_dataloader()
        if not isinstance(loader, DataLoader):
            raise TypeError(
                f"`from_datamodule` needs `train_dataloader()` to return one DataLoader, got {type(loader).__name__}"
            )
        if not isinstance(loader.sampler, (RandomSampler, SequentialSampler)):
            warnings.warn(
                f"the training loader's {type(loader.sampler).__name__} is replaced by plain shuffling "
                "so that pruning can change the training set",
                stacklevel=2,
            )
        settings: dict[str, Any] = dict(
            batch_size=loader.batch_size or 1,
            num_workers=loader.num_workers,
            shuffle=isinstance(loader.sampler, RandomSampler),
            drop_last=loader.drop_last,
            pin_memory=loader.pin_memory,
            collate_fn=loader.collate_fn,
            name=type(datamodule).__name__,
        )
        settings.update(overrides)
        wrapper = cls(loader.dataset, **settings)
        wrapper._wrapped = datamodule
        for hook in _FORWARDED_HOOKS:
            if is_overridden(hook, datamodule):
                setattr(wrapper, hook, getattr(datamodule, hook))
        return wrapper

    # Properties ---------------------------------------------------------------------------------
    @property
    def num_examples(self) -> int:
        """Number of examples in the full (unpruned) training set."""
        return len(self.train_dataset)  # type: ignore[arg-type]

    @property
    def labels(self) -> Optional[np.ndarray]:
        """Integer labels of the full training set, or ``None`` if it has none (read once, cached)."""
        if not self._labels_read:
            self._labels = dataset_labels(self.train_dataset)
            self._labels_read = True
        return self._labels

    def fingerprint(self) -> str:
        """A content hash of the training set (see :func:`datadiet.fingerprint.dataset_fingerprint`)."""
        return dataset_fingerprint(self.train_dataset)

    # Pruning ------------------------------------------------------------------------------------
    def prune(
        self,
        table: Union[ScoreTable, np.ndarray, Tensor],
        score: str = "el2n",
        keep_fraction: float = 0.5,
        strategy: str = "hard",
        class_balanced: bool = False,
        seed: int = 0,
        **options: Any,
    ) -> np.ndarray:
        """Keeps a subset of the full training set chosen from per-example scores.

        Selection always starts from the full dataset, so calling it again replaces the subset.

        Args:
            table: a :class:`ScoreTable`, or a 1-D array of scores (larger = harder) per original index.
            score: which score of the table to rank by.
            keep_fraction: fraction to keep, in (0, 1].
            strategy: ``hard``, ``easy``, ``random`` or any registered strategy.
            class_balanced: keep the same fraction of every class.
            seed: seeds ties and random choices.
            **options: passed to the strategy.

        Returns:
            The sorted original indices of the kept examples.

        Raises:
            ValueError: unknown score or strategy, ``keep_fraction`` outside (0, 1], or a table whose
                length does not match the dataset.
        """
        labels = None
        if isinstance(table, ScoreTable):
            if score not in table:
                raise ValueError(f"unknown score {score!r}: the score table has {', '.join(table.names) or 'none'}")
            scores = table[score]
            labels = table.labels
        else:
            scores = table.detach().cpu().numpy() if isinstance(table, Tensor) else np.asarray(table)
        if scores.ndim != 1 or len(scores) != self.num_examples:
            raise ValueError(
                f"the score table has {scores.shape[0] if scores.ndim else 0} values but the training set has "
                f"{self.num_examples} examples; scores must be indexed by original index over the whole dataset"
            )
        if class_balanced and labels is None:
            labels = self.labels
            if labels is None:
                raise ValueError("`class_balanced=True` needs class labels, but the training set has none")
        kept = select(
            scores, keep_fraction, strategy, labels=labels, class_balanced=class_balanced, seed=seed, **options
        )
        self.kept_indices = kept
        return kept.copy()

    def reset_pruning(self) -> None:
        """Goes back to training on the full dataset."""
        self.kept_indices = None

    # Loaders ------------------------------------------------------------------------------------
    def _current_train_set(self) -> Dataset:
        if self.kept_indices is None:
            return self._indexed_train
        return Subset(self._indexed_train, self.kept_indices.tolist())

    def train_dataloader(self) -> DataLoader:
        """The (possibly pruned) training set; yields :class:`IndexedBatch` pairs.

        Inside a one-process ``Trainer`` the shuffle order is a function of (seed, epoch) — a
        ``DistributedSampler`` of one replica, whose epoch Lightning sets — so a run resumed from a
        checkpoint sees the same batches as an uninterrupted one. Under DDP Lightning injects its own
        ``DistributedSampler`` with the same seed.
        """
        dataset = self._current_train_set()
        sampler = None
        if self.shuffle and self.trainer is not None and self.trainer.world_size == 1:
            seed = int(os.environ.get("PL_GLOBAL_SEED", 0))  # the seed Lightning gives its DistributedSampler
            sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=seed)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=self.shuffle if sampler is None else False,
            sampler=sampler,
            drop_last=self.drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            collate_fn=IndexedCollate(self.collate_fn),
        )

    def scoring_dataloader(self, batch_size: Optional[int] = None) -> DataLoader:
        """The current training set in order, unshuffled, with indices: the eval-mode scoring pass."""
        return DataLoader(
            self._current_train_set(),
            batch_size=batch_size or self.eval_batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            collate_fn=IndexedCollate(self.collate_fn),
        )

    def _eval_loader(self, dataset: Optional[Dataset]) -> Union[DataLoader, list]:
        if dataset is None:
            return []
        return DataLoader(
            dataset,
            batch_size=self.eval_batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            collate_fn=self.collate_fn,
        )

    def val_dataloader(self) -> Any:
        if self._wrapped is not None:
            return self._wrapped.val_dataloader()
        return self._eval_loader(self.val_dataset)

    def test_dataloader(self) -> Any:
        if self._wrapped is not None:
            return self._wrapped.test_dataloader()
        return self._eval_loader(self.test_dataset)

    def predict_dataloader(self) -> Any:
        if self._wrapped is not None:
            return self._wrapped.predict_dataloader()
        return self._eval_loader(self.test_dataset)

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self._share_kept_subset()
        if self._wrapped is not None and stage != "fit":
            self._wrapped.setup(stage)

    def _share_kept_subset(self) -> None:
        """Under DDP every rank trains on rank 0's kept subset (decided once, then broadcast).

        ``prune`` runs outside the Trainer, on every rank; from the merged score table it normally
        picks the same subset everywhere, but rank 0's choice is the one saved with the run, so it wins.
        """
        trainer = self.trainer
        if trainer is None or trainer.world_size == 1:
            return
        kept = trainer.strategy.broadcast(self.kept_indices, src=0)
        self.kept_indices = None if kept is None else np.asarray(kept, dtype=np.int64)

    def teardown(self, stage: str) -> None:
        if self._wrapped is not None:
            self._wrapped.teardown(stage)

    # Hooks ----------------------------------------------------------------------------------------
    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Strips the original indices off training batches, then runs the user's own hook, if any."""
        if isinstance(batch, IndexedBatch):
            self.batch_original_index = batch.original_index
            self.train_examples_served += len(batch.original_index)
            batch = batch.batch
        if self._wrapped is not None and is_overridden("on_before_batch_transfer", self._wrapped):
            return self._wrapped.on_before_batch_transfer(batch, dataloader_idx)
        trainer = self.trainer
        module = trainer.lightning_module if trainer is not None else None
        if module is not None and is_overridden("on_before_batch_transfer", module):
            return module.on_before_batch_transfer(batch, dataloader_idx)
        return batch

    def state_dict(self) -> dict[str, Any]:
        """The kept subset travels with checkpoints, so a resumed run trains on the same examples."""
        return {
            "kept_indices": None if self.kept_indices is None else self.kept_indices.tolist(),
            "num_examples": self.num_examples,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        num_examples = state_dict.get("num_examples", self.num_examples)
        if num_examples != self.num_examples:
            raise ValueError(
                f"the checkpoint's data module had {num_examples} training examples, this one has {self.num_examples}"
            )
        kept = state_dict.get("kept_indices")
        kept = None if kept is None else np.asarray(kept, dtype=np.int64)
        if self.kept_indices is not None and (kept is None or not np.array_equal(kept, self.kept_indices)):
            # A resumed run must train on the subset it was pruned to, never on one chosen anew.
            raise ValueError(
                f"the checkpoint's kept subset ({'none' if kept is None else f'{len(kept)} examples'}) differs from "
                f"this data module's ({len(self.kept_indices)} examples); call `reset_pruning()` first to adopt it"
            )
        self.kept_indices = kept
