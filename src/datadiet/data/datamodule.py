"""PruningDataModule: wraps any map-style dataset, tracks original indices, trains on a kept subset."""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np
import lightning.pytorch as pl
from lightning.pytorch.utilities.model_helpers import is_overridden
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
import torch
from torch import Tensor
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    Subset,
    WeightedRandomSampler,
)

from datadiet.data.epoch_sampler import EpochSampler
from datadiet.data.indexed import IndexedBatch, IndexedCollate, IndexedDataset
from datadiet.data.labels import dataset_labels
from datadiet.fingerprint import dataset_fingerprint
from datadiet.selection import select
from datadiet.store import ScoreTable

_FORWARDED_HOOKS = ("transfer_batch_to_device", "on_after_batch_transfer")
#: DataLoader arguments ``loader_options`` may set (the others have their own constructor argument).
LOADER_OPTIONS = (
    "worker_init_fn", "generator", "prefetch_factor", "timeout", "multiprocessing_context",
    "persistent_workers", "pin_memory_device", "in_order",
)  # fmt: skip
#: ``prune`` refuses a score that is NaN (never scored) for more than this share of the training set.
MAX_UNSCORED_FRACTION = 0.5


class _LoaderIfAvailable:
    """``val_dataloader`` and co.: defined for Lightning only when there is data behind them.

    A data module without a validation set then behaves as a plain one without ``val_dataloader``
    (Lightning skips the loop, with its usual warnings only); ``trainer.test`` without a test set fails
    as Lightning's own does, instead of testing on nothing.
    """

    def __init__(self, dataset_attribute: str) -> None:
        self.dataset_attribute = dataset_attribute

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type) -> Any:
        if instance is None:
            return getattr(owner, f"_{self.name}")
        wrapped = instance.__dict__.get("_wrapped")
        if wrapped is not None:
            available = is_overridden(self.name, wrapped)
        else:
            available = getattr(instance, self.dataset_attribute, None) is not None
        if available:
            return getattr(instance, f"_{self.name}")
        # Lightning's `is_overridden` sees through a partial: the base class's hook, i.e. "not defined"
        return functools.partial(getattr(pl.LightningDataModule, self.name), instance)


class _WeightedSubsetSampler(Sampler[int]):
    """A ``WeightedRandomSampler`` over the current (kept) training set, seeded by (seed, epoch).

    The epoch is the Trainer's (``epoch_fn``: also under DDP, where Lightning wraps this sampler and sets
    the wrapper's epoch only), else the one ``set_epoch`` gave, else the number of iterations so far; so a
    resumed run draws what an uninterrupted one draws, and every rank draws the same before sharding.
    """

    def __init__(
        self, weights: np.ndarray, replacement: bool, seed: int, epoch_fn: Optional[Callable[[], int]] = None
    ) -> None:
        self.weights = torch.as_tensor(weights, dtype=torch.double)
        self.replacement = replacement
        self.seed = seed
        self.epoch_fn = epoch_fn
        self.epoch: Optional[int] = None
        self._iterations = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.weights)

    def __iter__(self) -> Iterator[int]:
        epoch = self.epoch_fn() if self.epoch_fn is not None else self.epoch
        epoch = int(epoch) if epoch is not None else self._iterations
        self._iterations += 1
        generator = torch.Generator().manual_seed(self.seed + epoch)
        drawn = torch.multinomial(self.weights, len(self.weights), self.replacement, generator=generator)
        return iter(drawn.tolist())


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
        sample_weights: per original index, draw training examples in proportion to these weights (a
            ``WeightedRandomSampler``), restricted to the kept subset after :meth:`prune`; an epoch then
            draws as many examples as the current training set has. Replaces ``shuffle``.
        sample_with_replacement: draw with replacement when ``sample_weights`` are given.
        loader_options: further ``DataLoader`` arguments for the training and scoring loaders, any of
            :data:`LOADER_OPTIONS` (``worker_init_fn``, ``generator``, ``prefetch_factor``, ``timeout``,
            ``multiprocessing_context``, ``persistent_workers``, ``pin_memory_device``, ``in_order``).
            A ``generator``'s seed seeds the shuffle order (instead of ``PL_GLOBAL_SEED``).
            ``persistent_workers`` defaults to ``num_workers > 0`` for the training loader.

    Raises:
        ValueError: a non-positive ``batch_size``, negative ``num_workers``, ``sample_weights`` that are not
            one non-negative finite weight per example, or ``loader_options`` naming another argument.

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
        sample_weights: Optional[Sequence[float]] = None,
        sample_with_replacement: bool = True,
        loader_options: Optional[Mapping[str, Any]] = None,
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
        self.sample_weights = None if sample_weights is None else self._checked_weights(sample_weights, train_dataset)
        self.sample_with_replacement = sample_with_replacement
        self.loader_options = self._checked_loader_options(loader_options, num_workers)
        #: Shape of one input and number of classes, when known (the built-in sources set them).
        self.input_shape: Optional[tuple[int, ...]] = None
        self.num_classes: Optional[int] = None
        self.kept_indices: Optional[np.ndarray] = None
        #: Original indices of the training batch being processed (set before it reaches the device).
        self.batch_original_index: Optional[Tensor] = None
        #: Training examples handed to ``training_step`` so far (a compute counter for summaries).
        self.train_examples_served = 0
        #: ``epoch -> original indices`` the training epoch presents (``None``: the whole current training
        #: set); set by :class:`~datadiet.DynamicPruning` for the length of a ``fit``.
        self.epoch_subset_fn: Optional[Callable[[int], Optional[np.ndarray]]] = None
        self._epoch_positions_cache: Optional[tuple[np.ndarray, np.ndarray]] = None
        self._indexed_train = IndexedDataset(train_dataset)
        self._wrapped: Optional[pl.LightningDataModule] = None
        self._labels: Optional[np.ndarray] = None
        self._labels_read = False
        self._fingerprint: Optional[tuple[int, str]] = None

    @staticmethod
    def _checked_weights(weights: Any, dataset: Any) -> np.ndarray:
        weights = (weights.detach().cpu().numpy() if isinstance(weights, Tensor) else np.asarray(weights)).astype(float)
        if weights.shape != (len(dataset),) or not np.isfinite(weights).all() or (weights < 0).any():
            raise ValueError(
                f"`sample_weights` must be one finite weight >= 0 per training example ({len(dataset)}), "
                f"got shape {weights.shape}"
            )
        return weights

    @staticmethod
    def _checked_loader_options(options: Optional[Mapping[str, Any]], num_workers: int) -> dict[str, Any]:
        options = dict(options or {})
        unknown = sorted(set(options) - set(LOADER_OPTIONS))
        if unknown:
            raise ValueError(
                f"`loader_options` can set {', '.join(LOADER_OPTIONS)}; got {unknown} (batch size, shuffling, "
                "workers, drop_last, pin_memory and collate_fn have their own arguments)"
            )
        if num_workers == 0:
            for key in ("prefetch_factor", "persistent_workers"):
                if options.get(key):
                    raise ValueError(f"`loader_options['{key}']={options[key]!r}` needs `num_workers` > 0, got 0")
        return options

    @classmethod
    def from_datamodule(cls, datamodule: pl.LightningDataModule, **overrides: Any) -> "PruningDataModule":
        """Wraps an existing ``LightningDataModule``, keeping its training pipeline.

        Calls ``prepare_data()`` and ``setup("fit")`` on it and reads its training loader: dataset, batch
        size, shuffling, ``drop_last``, workers, ``pin_memory``, collate function and the
        :data:`LOADER_OPTIONS` (``worker_init_fn``, ``generator``, ``persistent_workers``,
        ``prefetch_factor``, ``timeout``, ...). A ``WeightedRandomSampler`` keeps its weights, restricted
        to the kept subset after pruning; a plain ``BatchSampler`` gives its batch size and ``drop_last``.
        Any other sampler or batch sampler draws from the full dataset's indices and cannot follow a
        pruned subset: it is refused, unless ``overrides`` choose the order (``shuffle`` or
        ``sample_weights``, and ``batch_size`` for a batch sampler). Validation, test and predict loaders
        and the batch-transfer hooks are forwarded unchanged; a loader it does not define stays undefined,
        as in plain Lightning.

        Args:
            datamodule: the user's data module.
            **overrides: constructor arguments that replace what was read from its training loader.

        Raises:
            TypeError: its ``train_dataloader()`` is not a single ``DataLoader``, or uses a sampler or batch
                sampler that cannot follow a pruned subset.
            ValueError: a ``RandomSampler`` drawing with replacement or a set ``num_samples``, or a
                ``WeightedRandomSampler`` whose ``num_samples`` is not the dataset size.
        """
        datamodule.prepare_data()
        datamodule.setup("fit")
        loader = datamodule.train_dataloader()
        if not isinstance(loader, DataLoader):
            raise TypeError(
                f"`from_datamodule` needs `train_dataloader()` to return one DataLoader, got {type(loader).__name__}"
            )
        settings = _training_loader_settings(loader, overrides)
        settings["name"] = type(datamodule).__name__
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
        """A content hash of the training set (see :func:`datadiet.fingerprint.dataset_fingerprint`).

        Computed once per training set object and cached (a dataset changed in place keeps its hash).
        """
        if self._fingerprint is None or self._fingerprint[0] != id(self.train_dataset):
            self._fingerprint = (id(self.train_dataset), dataset_fingerprint(self.train_dataset))
        return self._fingerprint[1]

    # Pruning ------------------------------------------------------------------------------------
    def prune(
        self,
        table: Union[ScoreTable, np.ndarray, Tensor],
        score: str = "el2n",
        keep_fraction: float = 0.5,
        strategy: str = "hard",
        class_balanced: bool = False,
        seed: int = 0,
        max_unscored_fraction: float = MAX_UNSCORED_FRACTION,
        **options: Any,
    ) -> np.ndarray:
        """Keeps a subset of the full training set chosen from per-example scores.

        Selection always starts from the full dataset, so calling it again replaces the subset.

        A table that cannot be trusted for this dataset is refused before anything is selected: one
        whose recorded dataset fingerprint (``metadata["dataset_fingerprint"]``, or the app's
        ``metadata["dataset"]["fingerprint"]``) is not this training set's, and a score that is NaN
        (never scored) for every example or for more than ``max_unscored_fraction`` of them. Fewer NaN
        are accepted with a warning naming their count: they rank as hardest, so ``hard`` keeps them
        first and ``easy`` drops them first (``random`` ignores scores). To use a table on other data on
        purpose, pass its scores as an array (``table["el2n"]``), which carries no provenance.

        Args:
            table: a :class:`ScoreTable`, or a 1-D array of scores (larger = harder) per original index.
            score: which score of the table to rank by.
            keep_fraction: fraction to keep, in (0, 1].
            strategy: ``hard``, ``easy``, ``random`` or any registered strategy.
            class_balanced: keep the same fraction of every class.
            seed: seeds ties and random choices.
            max_unscored_fraction: the largest share of NaN scores accepted, in [0, 1].
            **options: passed to the strategy.

        Returns:
            The sorted original indices of the kept examples.

        Raises:
            ValueError: unknown score or strategy, ``keep_fraction`` outside (0, 1], scores that are not
                1-D or whose length does not match the dataset, a table computed on another dataset, or
                too many NaN scores.
        """
        labels = None
        if isinstance(table, ScoreTable):
            if score not in table:
                raise ValueError(f"unknown score {score!r}: the score table has {', '.join(table.names) or 'none'}")
            scores = table[score]
            labels = table.labels
            made_for = table.dataset_fingerprint
            if made_for is not None and made_for != self.fingerprint():
                raise ValueError(
                    f"the score table was computed on dataset {made_for}, but this training set's fingerprint is "
                    f"{self.fingerprint()} ({self.num_examples} examples): its scores belong to other data. Compute "
                    f"the scores on this training set, or pass `table[{score!r}]` (an array) to use them anyway"
                )
        else:
            scores = table.detach().cpu().numpy() if isinstance(table, Tensor) else np.asarray(table)
        if scores.ndim != 1:
            raise ValueError(f"scores must be 1-D (one value per original index), got shape {scores.shape}")
        if len(scores) != self.num_examples:
            raise ValueError(
                f"the score table has {len(scores)} values but the training set has "
                f"{self.num_examples} examples; scores must be indexed by original index over the whole dataset"
            )
        if not 0.0 <= max_unscored_fraction <= 1.0:
            raise ValueError(f"`max_unscored_fraction` must be in [0, 1], got {max_unscored_fraction!r}")
        if strategy != "random":
            self._check_unscored(np.asarray(scores, dtype=np.float64), score, max_unscored_fraction)
        if class_balanced and labels is None:
            labels = self.labels
            if labels is None:
                raise ValueError(
                    "`class_balanced=True` needs class labels, but the training set's items are not (x, y) with "
                    "integer y; pass a ScoreTable with `labels` (the DifficultyCallback reads them with its Adapter)"
                )
        kept = select(
            scores, keep_fraction, strategy, labels=labels, class_balanced=class_balanced, seed=seed, **options
        )
        self.kept_indices = kept
        return kept.copy()

    def _check_unscored(self, scores: np.ndarray, score: str, max_unscored_fraction: float) -> None:
        unscored = int(np.isnan(scores).sum())
        if unscored == 0:
            return
        total = len(scores)
        if unscored == total:
            raise ValueError(
                f"score {score!r} is NaN for all {total} examples: the probe never scored them (no training "
                "presentation, e.g. `limit_train_batches=0`, or no eval pass), so there is nothing to rank by"
            )
        if unscored > max_unscored_fraction * total:
            raise ValueError(
                f"score {score!r} is NaN (never scored) for {unscored} of {total} examples ({unscored / total:.0%}), "
                f"more than `max_unscored_fraction={max_unscored_fraction}`; pruning would rank them by nothing. "
                "Probe on the whole training set, or raise `max_unscored_fraction` to accept it"
            )
        rank_zero_warn(
            f"score {score!r} is NaN (never scored) for {unscored} of {total} examples ({unscored / total:.1%}); "
            "they rank as hardest: strategy 'hard' keeps them first, 'easy' drops them first"
        )

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

        Inside a one-process ``Trainer`` the shuffle order is a function of (seed, epoch) — that of a
        ``DistributedSampler`` of one replica, with the epoch read from the ``Trainer``, since Lightning
        creates a resumed run's first iterator (which workers draw from at once) before it calls
        ``set_epoch`` — so a run resumed from a checkpoint sees the same batches as an uninterrupted one,
        with or without workers. Under DDP Lightning injects its own
        ``DistributedSampler`` with the same seed (``PL_GLOBAL_SEED``), unless ``loader_options`` give a
        ``generator``, whose seed is then used on every rank. ``sample_weights`` are drawn from by
        (seed, epoch) the same way, over the kept examples only.
        """
        dataset = self._current_train_set()
        options = dict(self.loader_options)
        options.setdefault("persistent_workers", self.num_workers > 0)
        generator = options.get("generator")
        # the seed Lightning gives its DistributedSampler, unless the user's loader had its own generator
        seed = generator.initial_seed() if generator is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))
        trainer = self.trainer
        epoch_subsets = self.epoch_subset_fn is not None and trainer is not None
        if epoch_subsets and self.sample_weights is not None:
            raise ValueError(
                "dynamic pruning chooses each epoch's examples itself and cannot also draw by `sample_weights`; "
                "pass `sample_weights=None`"
            )
        sampler: Optional[Sampler] = None
        if self.sample_weights is not None:
            weights = self.sample_weights if self.kept_indices is None else self.sample_weights[self.kept_indices]
            if not weights.sum() > 0:
                raise ValueError(f"every one of the {len(weights)} training examples has sample weight 0")
            epoch_fn = None if trainer is None else (lambda: trainer.current_epoch)
            sampler = _WeightedSubsetSampler(weights, self.sample_with_replacement, seed, epoch_fn)
        elif trainer is not None and (
            epoch_subsets or (self.shuffle and (trainer.world_size == 1 or generator is not None))
        ):  # without epoch subsets, exactly a DistributedSampler's order and shards
            sampler = EpochSampler(
                dataset,
                self._epoch_positions,
                lambda: trainer.current_epoch,
                num_replicas=trainer.world_size,
                rank=trainer.global_rank,
                shuffle=self.shuffle,
                seed=seed,
            )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=self.shuffle if sampler is None else False,
            sampler=sampler,
            drop_last=self.drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            collate_fn=IndexedCollate(self.collate_fn),
            **options,
        )

    def _epoch_positions(self, epoch: int) -> Optional[np.ndarray]:
        """Positions in the current training set of the examples ``epoch_subset_fn`` picks for ``epoch``."""
        subset = None if self.epoch_subset_fn is None else self.epoch_subset_fn(epoch)
        if subset is None or self.kept_indices is None:
            return subset
        cached = self._epoch_positions_cache
        if cached is not None and cached[0] is subset:  # asked twice per epoch: by `len` and by `iter`
            return cached[1]
        lookup = np.full(self.num_examples, -1, dtype=np.int64)
        lookup[self.kept_indices] = np.arange(len(self.kept_indices))
        positions = lookup[subset]
        if (positions < 0).any():
            raise ValueError(
                f"the epoch subset holds {int((positions < 0).sum())} examples outside the kept training subset"
            )
        self._epoch_positions_cache = (subset, positions)
        return positions

    def _one_pass_options(self) -> dict[str, Any]:
        """``loader_options`` for loaders read once (scoring, evaluation): no persistent workers."""
        return {key: value for key, value in self.loader_options.items() if key != "persistent_workers"}

    def scoring_dataloader(
        self, batch_size: Optional[int] = None, *, num_replicas: int = 1, rank: int = 0
    ) -> DataLoader:
        """The current training set in order, unshuffled, with indices: the eval-mode scoring pass.

        With ``num_replicas > 1`` each rank reads its ``DistributedSampler`` share (padded, unshuffled).
        """
        dataset = self._current_train_set()
        sampler = None
        if num_replicas > 1:
            sampler = DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        return DataLoader(
            dataset,
            batch_size=batch_size or self.eval_batch_size,
            shuffle=False,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            collate_fn=IndexedCollate(self.collate_fn),
            **self._one_pass_options(),
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
            **self._one_pass_options(),
        )

    # Defined for Lightning only when there is data behind them (see `_LoaderIfAvailable`).
    val_dataloader = _LoaderIfAvailable("val_dataset")
    test_dataloader = _LoaderIfAvailable("test_dataset")
    predict_dataloader = _LoaderIfAvailable("test_dataset")

    def _val_dataloader(self) -> Any:
        if self._wrapped is not None:
            return self._wrapped.val_dataloader()
        return self._eval_loader(self.val_dataset)

    def _test_dataloader(self) -> Any:
        if self._wrapped is not None:
            return self._wrapped.test_dataloader()
        return self._eval_loader(self.test_dataset)

    def _predict_dataloader(self) -> Any:
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
            "dataset_fingerprint": self.fingerprint(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        num_examples = state_dict.get("num_examples", self.num_examples)
        if num_examples != self.num_examples:
            raise ValueError(
                f"the checkpoint's data module had {num_examples} training examples, this one has {self.num_examples}"
            )
        made_for = state_dict.get("dataset_fingerprint")  # absent in older checkpoints
        if made_for is not None and made_for != self.fingerprint():
            raise ValueError(
                f"the checkpoint was trained on dataset {made_for}, this training set's fingerprint is "
                f"{self.fingerprint()}: resume only with the data it was trained on"
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


def _training_loader_settings(loader: DataLoader, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The constructor arguments that rebuild ``loader``'s pipeline over a training set that can be pruned."""
    chooses_order = "shuffle" in overrides or "sample_weights" in overrides
    sampler, batch_size, drop_last = loader.sampler, loader.batch_size, loader.drop_last
    batch_sampler = loader.batch_sampler
    if batch_size is None and "batch_size" not in overrides:
        if batch_sampler is None:
            raise TypeError(
                "the training loader has `batch_size=None` (no automatic batching), so its items are not single "
                "examples that pruning can select; return a loader with a `batch_size` from `train_dataloader()`, "
                "or pass `batch_size=` to `from_datamodule`"
            )
        if type(batch_sampler) is BatchSampler:
            sampler, batch_size, drop_last = batch_sampler.sampler, batch_sampler.batch_size, batch_sampler.drop_last
        elif not chooses_order:
            raise TypeError(
                f"the training loader's batch sampler {type(batch_sampler).__name__} yields batches of the full "
                "dataset's indices, which cannot follow a pruned subset; return a loader with `batch_size` and "
                "`shuffle` (or a `sampler`) from `train_dataloader()`, or pass `batch_size=` and `shuffle=` to "
                "`from_datamodule` to replace it"
            )
    settings: dict[str, Any] = dict(
        batch_size=batch_size,
        num_workers=loader.num_workers,
        drop_last=drop_last,
        pin_memory=loader.pin_memory,
        collate_fn=loader.collate_fn,
    )
    if not chooses_order:
        settings.update(_sampler_settings(sampler, len(loader.dataset)))  # type: ignore[arg-type]
    options: dict[str, Any] = {}
    generator = loader.generator if loader.generator is not None else getattr(sampler, "generator", None)
    if generator is not None:
        options["generator"] = generator
    if loader.worker_init_fn is not None:
        options["worker_init_fn"] = loader.worker_init_fn
    if loader.num_workers > 0:
        options.update(persistent_workers=loader.persistent_workers, prefetch_factor=loader.prefetch_factor)
        if loader.multiprocessing_context is not None:
            options["multiprocessing_context"] = loader.multiprocessing_context
    if loader.timeout:
        options["timeout"] = loader.timeout
    if loader.pin_memory_device:
        options["pin_memory_device"] = loader.pin_memory_device
    if not getattr(loader, "in_order", True):
        options["in_order"] = False
    settings["loader_options"] = options
    return settings


def _sampler_settings(sampler: Any, num_examples: int) -> dict[str, Any]:
    """``shuffle`` / ``sample_weights`` reproducing a training loader's sampler, or a refusal naming it."""
    name = type(sampler).__name__
    if type(sampler) is SequentialSampler:
        return {"shuffle": False}
    if type(sampler) is RandomSampler:
        if sampler.replacement or sampler._num_samples is not None:
            raise ValueError(
                f"the training loader's RandomSampler(replacement={sampler.replacement}, "
                f"num_samples={sampler._num_samples}) cannot be carried over: a PruningDataModule shuffles the kept "
                "subset once per epoch without replacement; use a plain RandomSampler (or shuffle=True), or pass "
                "`shuffle=True` to `from_datamodule` to accept that"
            )
        return {"shuffle": True}
    if type(sampler) is WeightedRandomSampler:
        if sampler.num_samples != num_examples:
            raise ValueError(
                f"the training loader's WeightedRandomSampler draws num_samples={sampler.num_samples} per epoch for "
                f"{num_examples} examples; a PruningDataModule draws as many as the (kept) training set has, so "
                f"use num_samples=len(dataset), or pass `sample_weights=` to `from_datamodule` to accept that"
            )
        weights = sampler.weights.numpy()
        return {"shuffle": True, "sample_weights": weights, "sample_with_replacement": sampler.replacement}
    raise TypeError(
        f"the training loader's sampler {name} draws from the full dataset's indices and cannot follow a pruned "
        "subset; use shuffle=True, a RandomSampler or a WeightedRandomSampler in `train_dataloader()`, or pass "
        "`shuffle=` (or `sample_weights=`) to `from_datamodule` to replace it (under DDP, Lightning adds the "
        "DistributedSampler itself)"
    )
