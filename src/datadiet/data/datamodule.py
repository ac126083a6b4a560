"""PruningDataModule: wraps a map-style dataset or a stream, tracks original indices, trains on a kept subset.

Its loaders live in :mod:`datadiet.data.loaders`, the reading of a user's data module in
:mod:`datadiet.data.wrapping`.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.utilities.model_helpers import is_overridden
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import Tensor
from torch.utils.data import Dataset, IterableDataset

from datadiet.data.flagged import TREATMENTS, FlaggedTreatment, plan_treatment
from datadiet.data.indexed import IndexedBatch, IndexedDataset
from datadiet.data.label_noise import LabelNoise
from datadiet.data.labels import dataset_labels
from datadiet.data.loaders import (  # noqa: F401  LOADER_OPTIONS: importable from here, as before
    LOADER_OPTIONS,
    PrunedSubsetLoaders,
    checked_loader_options,
    checked_sample_weights,
)
from datadiet.data.streams import IndexedStream, checked_stream, stream_fingerprint
from datadiet.data.wrapping import (
    forward_hooks,
    read_training_loader,
    stream_loader_settings,
    training_loader_settings,
)
from datadiet.fingerprint import dataset_fingerprint
from datadiet.selection import needs_scores, select, validate_keep_fraction
from datadiet.store import ScoreTable

#: ``prune`` refuses a score that is NaN (never scored) for more than this share of the training set.
MAX_UNSCORED_FRACTION = 0.5


class PruningDataModule(PrunedSubsetLoaders, pl.LightningDataModule):
    """A ``LightningDataModule`` whose training set can be pruned to a kept subset.

    The training loader yields :class:`IndexedBatch` pairs; :meth:`on_before_batch_transfer` strips
    them, so ``training_step`` receives exactly the wrapped dataset's batches (``x, y = batch`` keeps
    working) while the original index of each example is left in :attr:`batch_original_index` for
    :class:`~datadiet.DifficultyCallback`. After :meth:`prune`, the next ``train_dataloader()`` iterates
    only over the kept examples (a new ``Trainer``, or ``reload_dataloaders_every_n_epochs=1``, picks
    it up); under DDP Lightning shards that subset with an ordinary ``DistributedSampler``.

    A stream is accepted too (see ``docs/streams.md``): a litdata ``StreamingDataset`` (each item's index is
    its global index in the optimized dataset), or any ``IterableDataset`` whose items carry their original
    index (``index_key`` / ``index_fn``, with ``num_examples``). It is read in its own order, and pruning
    filters it: the examples not kept for an epoch are read and skipped before collation.

    Args:
        train_dataset: any map-style dataset (item ``i`` keeps original index ``i``), a litdata
            ``StreamingDataset`` or an ``IterableDataset`` with ``index_key`` or ``index_fn``.
        val_dataset: optional validation dataset (never pruned).
        test_dataset: optional test dataset (never pruned).
        batch_size: training batch size.
        num_workers: ``DataLoader`` workers.
        eval_batch_size: batch size of validation, test and scoring loaders (default: ``batch_size``).
        shuffle: shuffle the training set each epoch (default: yes for a map-style dataset; a stream orders
            itself, e.g. ``StreamingDataset(shuffle=True)``, and refuses ``shuffle=True``).
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
        input_shape: shape of one model input, for models built from it (the app's ``Classifier`` nets);
            the built-in sources set it.
        num_classes: number of classes (or outputs), for models built from it and prototype k-means.
        index_key: for a stream of dict items, the key holding each item's original index.
        index_fn: for a stream of other items, ``item -> original index``.
        num_examples: for an ``IterableDataset``, the number of distinct examples N (indices run over
            ``[0, N)``; per-example statistics are sized by it). A litdata dataset knows its own.

    Raises:
        ValueError: a non-positive ``batch_size``, negative ``num_workers``, ``sample_weights`` that are not
            one non-negative finite weight per example, ``loader_options`` naming another argument, an
            ``input_shape`` that is not a sequence of positive integers, or a ``num_classes`` below 1; for a
            stream, a missing or bad ``num_examples``/``index_key``/``index_fn``, or a setting a stream cannot
            honour (``sample_weights``, ``shuffle=True``, persistent workers).
        TypeError: a dataset that is neither map-style nor an ``IterableDataset``.

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
        shuffle: Optional[bool] = None,
        drop_last: bool = False,
        pin_memory: bool = False,
        collate_fn: Optional[Callable[[list], Any]] = None,
        name: Optional[str] = None,
        sample_weights: Optional[Sequence[float]] = None,
        sample_with_replacement: bool = True,
        loader_options: Optional[Mapping[str, Any]] = None,
        input_shape: Optional[Sequence[int]] = None,
        num_classes: Optional[int] = None,
        index_key: Optional[str] = None,
        index_fn: Optional[Callable[[Any], Any]] = None,
        num_examples: Optional[int] = None,
    ) -> None:
        super().__init__()
        for arg_name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"`{arg_name}` must be a positive integer, got {value!r}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"`num_workers` must be an integer >= 0, got {num_workers!r}")
        self._stream: Optional[IndexedStream] = None
        if isinstance(train_dataset, IterableDataset):
            self._stream = checked_stream(
                train_dataset, index_key, index_fn, num_examples, shuffle, sample_weights, loader_options
            )
        elif index_key is not None or index_fn is not None or num_examples is not None:
            raise ValueError(
                f"`index_key`, `index_fn` and `num_examples` describe a stream (an IterableDataset); "
                f"{type(train_dataset).__name__} is map-style: item i keeps original index i, so leave them out"
            )
        elif not hasattr(train_dataset, "__getitem__") or not hasattr(train_dataset, "__len__"):
            raise TypeError(
                f"`train_dataset` must be a map-style dataset (with __getitem__ and __len__) or an IterableDataset "
                f"(a stream, see `index_key`/`index_fn`), got {type(train_dataset).__name__}"
            )
        self.train_dataset = train_dataset
        self.val_dataset = val_dataset
        self.test_dataset = test_dataset
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.shuffle = (shuffle is None or bool(shuffle)) and self._stream is None
        self.drop_last = drop_last
        self.pin_memory = pin_memory
        self.collate_fn = collate_fn
        self.name = name or type(train_dataset).__name__
        self.sample_weights = None if sample_weights is None else checked_sample_weights(sample_weights, train_dataset)
        self.sample_with_replacement = sample_with_replacement
        self.loader_options = checked_loader_options(loader_options, num_workers)
        if self._stream is not None:  # workers must receive each epoch's kept set when they start
            self.loader_options["persistent_workers"] = False
        #: Shape of one input and number of classes, when known (arguments; the built-in sources set them).
        self.input_shape: Optional[tuple[int, ...]] = _checked_shape(input_shape)
        self.num_classes: Optional[int] = _checked_count(num_classes)
        #: The injected label noise (:class:`~datadiet.data.label_noise.LabelNoise`: which training labels were
        #: replaced) when a built-in source was asked for it, else ``None``.
        self.label_noise: Optional[LabelNoise] = None
        self.kept_indices: Optional[np.ndarray] = None
        #: How the kept flagged examples are trained, after ``prune(..., mislabelled="relabel" | "downweight")``
        #: (:class:`~datadiet.data.flagged.FlaggedTreatment`), else ``None``.
        self.flagged_treatment: Optional[FlaggedTreatment] = None
        #: Original indices of the training batch being processed (set before it reaches the device).
        self.batch_original_index: Optional[Tensor] = None
        #: Training examples handed to ``training_step`` so far (a compute counter for summaries).
        self.train_examples_served = 0
        #: ``epoch -> original indices`` the training epoch presents (``None``: the whole current training
        #: set); set by :class:`~datadiet.DynamicPruning` for the length of a ``fit``.
        self.epoch_subset_fn: Optional[Callable[[int], Optional[np.ndarray]]] = None
        #: ``(batch, original_index) -> (batch, original_index)``, applied to each training batch on its device
        #: before ``training_step``; set by :class:`~datadiet.ReducibleLossSelection` for the length of a ``fit``.
        self.train_batch_fn: Optional[Callable[[Any, Tensor], tuple[Any, Tensor]]] = None
        self._training_batch_in_transfer = False
        self._epoch_positions_cache: Optional[tuple[np.ndarray, np.ndarray]] = None
        self._indexed_train = IndexedDataset(train_dataset) if self._stream is None else self._stream
        self._wrapped: Optional[pl.LightningDataModule] = None
        self._labels: Optional[np.ndarray] = None
        self._labels_read = False
        self._fingerprint: Optional[tuple[int, str]] = None
        self._stream_head: Optional[list[Any]] = None
        #: A stream's labels as its training batches showed them (-1: not seen yet).
        self._streamed_labels = None if self._stream is None else np.full(self.num_examples, -1, dtype=np.int64)

    @classmethod
    def from_datamodule(cls, datamodule: pl.LightningDataModule, **overrides: Any) -> "PruningDataModule":
        """Wraps an existing ``LightningDataModule``, keeping its training pipeline.

        Calls ``prepare_data()`` and ``setup("fit")`` on it and reads its training loader: dataset, batch
        size, shuffling, ``drop_last``, workers, ``pin_memory``, collate function and the
        :data:`LOADER_OPTIONS` (``worker_init_fn``, ``generator``, ``persistent_workers``,
        ``prefetch_factor``, ``timeout``, ...), and its ``input_shape`` / ``num_classes`` attributes when it
        has them. A ``WeightedRandomSampler`` keeps its weights, restricted
        to the kept subset after pruning; a plain ``BatchSampler`` gives its batch size and ``drop_last``.
        Any other sampler or batch sampler draws from the full dataset's indices and cannot follow a
        pruned subset: it is refused, unless ``overrides`` choose the order (``shuffle`` or
        ``sample_weights``, and ``batch_size`` for a batch sampler). Validation, test and predict loaders
        and the batch-transfer hooks are forwarded unchanged; a loader it does not define stays undefined,
        as in plain Lightning.

        A training loader over a stream (a litdata ``StreamingDataLoader``, or a ``DataLoader`` over an
        ``IterableDataset``) is wrapped as a stream: its batch size, workers, collate function and
        ``drop_last`` are kept; a plain ``IterableDataset`` needs ``index_key=`` or ``index_fn=`` and
        ``num_examples=`` in ``overrides``.

        Args:
            datamodule: the user's data module.
            **overrides: constructor arguments that replace what was read from its training loader.

        Raises:
            TypeError: its ``train_dataloader()`` is not a single ``DataLoader``, or uses a sampler or batch
                sampler that cannot follow a pruned subset.
            ValueError: a ``RandomSampler`` drawing with replacement or a set ``num_samples``, or a
                ``WeightedRandomSampler`` whose ``num_samples`` is not the dataset size.
        """
        loader = read_training_loader(datamodule)
        if isinstance(loader.dataset, IterableDataset):
            settings = stream_loader_settings(loader, overrides)
        else:
            settings = training_loader_settings(loader, overrides)
        settings["name"] = type(datamodule).__name__
        for name in ("input_shape", "num_classes"):  # kept when the user's data module has them
            if getattr(datamodule, name, None) is not None:
                settings[name] = getattr(datamodule, name)
        settings.update(overrides)
        wrapper = cls(loader.dataset, **settings)
        wrapper._wrapped = datamodule
        forward_hooks(wrapper, datamodule)
        return wrapper

    # Properties ---------------------------------------------------------------------------------
    @property
    def num_examples(self) -> int:
        """Number of examples in the full (unpruned) training set."""
        if self._stream is not None:
            return self._stream.num_examples
        return len(self.train_dataset)  # type: ignore[arg-type]

    @property
    def is_stream(self) -> bool:
        """Whether the training set is a stream (an ``IterableDataset``), read in its own order."""
        return self._stream is not None

    @property
    def labels(self) -> Optional[np.ndarray]:
        """Integer labels of the full training set, or ``None`` if it has none (read once, cached).

        On a stream of ``(x, y)`` items they are read in one pass over it, in its order.
        """
        if not self._labels_read:
            self._labels = dataset_labels(self.train_dataset) if self._stream is None else self._stream_labels()
            self._labels_read = True
        return self._labels

    def _stream_labels(self) -> Optional[np.ndarray]:
        """The labels training batches showed, if they showed every example's; else one pass over the stream
        (every rank's shard of a litdata dataset)."""
        assert self._stream is not None
        if self._streamed_labels is not None and (self._streamed_labels >= 0).all():
            return self._streamed_labels.copy()
        stream = self._stream.all_ranks()
        stream.start_epoch(None, None)
        labels = np.full(self.num_examples, -1, dtype=np.int64)
        for index, item in stream:
            if not isinstance(item, (tuple, list)) or len(item) < 2:
                return None
            label = item[1].item() if isinstance(item[1], Tensor) and item[1].numel() == 1 else item[1]
            if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
                return None
            labels[index] = int(label)
        return labels if (labels >= 0).all() else None

    def _record_streamed_labels(self, original_index: Tensor, batch: Any) -> None:
        """Keeps the integer labels of a stream's ``(x, y)`` training batch, so that ``labels`` need not read it."""
        if self._streamed_labels is None or not isinstance(batch, (tuple, list)) or len(batch) < 2:
            return
        target = batch[1]
        if (
            not isinstance(target, Tensor)
            or target.ndim != 1
            or target.is_floating_point()
            or len(target) != len(original_index)
        ):
            self._streamed_labels = None  # not class labels: read them (or find there are none) in one pass
            return
        self._streamed_labels[original_index.numpy()] = target.cpu().numpy()

    def example_items(self, count: int) -> list[Any]:
        """The first ``count`` training items as the dataset gives them (for checks before training).

        A map-style dataset's items ``0 .. count-1``; a stream's first items, read once and kept.
        """
        count = min(count, self.num_examples)
        if self._stream is None:
            return [self.train_dataset[i] for i in range(count)]
        if self._stream_head is None or len(self._stream_head) < count:
            self._stream.start_epoch(None, None)
            head = []
            for _, item in self._stream:
                head.append(item)
                if len(head) == count:
                    break
            self._stream_head = head
        return self._stream_head[:count]

    def fingerprint(self) -> str:
        """A content hash of the training set (see :func:`datadiet.fingerprint.dataset_fingerprint`).

        Computed once per training set object and cached (a dataset changed in place keeps its hash). A
        stream's is a hash of its type, size and location, read without touching an item.
        """
        if self._fingerprint is None or self._fingerprint[0] != id(self.train_dataset):
            digest = (
                dataset_fingerprint(self.train_dataset)
                if self._stream is None
                else stream_fingerprint(self.train_dataset, self.num_examples)
            )
            self._fingerprint = (id(self.train_dataset), digest)
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
        mislabelled: str = "keep",
        **options: Any,
    ) -> np.ndarray:
        """Keeps a subset of the full training set chosen from per-example scores.

        Selection always starts from the full dataset, so calling it again replaces the subset.

        A table that cannot be trusted for this dataset is refused before anything is selected: one
        whose recorded dataset fingerprint (``metadata["dataset_fingerprint"]``, or the app's
        ``metadata["dataset"]["fingerprint"]``) is not this training set's, and a score that is NaN
        (never scored) for every example or for more than ``max_unscored_fraction`` of them. Fewer NaN
        are accepted with a warning naming their count: they rank as hardest, so ``hard`` keeps them
        first and ``easy`` drops them first (``random`` ignores scores). A score with one value for every
        scored example ranks nothing (e.g. the entropy of a one-output model) and is refused too. To use a table on
        other data on purpose, pass its scores as an array (``table["el2n"]``), which carries no provenance.

        Args:
            table: a :class:`ScoreTable`, or a 1-D array of scores (larger = harder) per original index.
            score: which score of the table to rank by.
            keep_fraction: fraction to keep, in (0, 1].
            strategy: ``hard``, ``easy``, ``random`` or any registered strategy.
            class_balanced: keep the same fraction of every class.
            seed: seeds ties and random choices.
            max_unscored_fraction: the largest share of NaN scores accepted, in [0, 1].
            mislabelled: ``keep`` (default) treats the examples the table flags as mislabelled like any
                other; ``exclude`` never keeps them and chooses ``keep_fraction`` of the training set among
                the rest (hard, not wrong); ``exclude_disagreeing`` also never keeps an example whose
                predicted class is not its given label (the detector's misses sit there, at the hard end);
                ``relabel`` keeps the confidently predicted flagged examples with the predicted class as their
                label, ``downweight`` keeps every flagged one but presents it in half the epochs
                (:mod:`datadiet.data.flagged`; :attr:`flagged_treatment`). All but ``keep`` need a table with
                the ``mislabelled`` column (the ``label_issue`` score).
            **options: passed to the strategy.

        Returns:
            The sorted original indices of the kept examples.

        Raises:
            ValueError: unknown score or strategy, ``keep_fraction`` outside (0, 1], scores that are not
                1-D or whose length does not match the dataset, a table computed on another dataset,
                too many NaN scores, a constant score, or ``mislabelled="exclude"`` without a mislabel
                flag in the table.
        """
        validate_keep_fraction(keep_fraction)  # the arguments first, then the table
        exclude = _mislabelled_mask(table, mislabelled)
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
        if needs_scores(strategy):
            self._check_unscored(scores, score, max_unscored_fraction)
            _check_not_constant(scores, score, strategy)
        if class_balanced and labels is None:
            labels = self.labels
            if labels is None:
                raise ValueError(
                    "`class_balanced=True` needs class labels, but the training set's items are not (x, y) with "
                    "integer y; pass a ScoreTable with `labels` (the DifficultyCallback reads them with its Adapter)"
                )
        if strategy == "auto" and isinstance(table, ScoreTable) and "label_noise_estimate" in table.metadata:
            # the wrong labels `auto` chooses among: those flagged, unless they are excluded (see `keep_auto`)
            options.setdefault(
                "label_noise", 0.0 if exclude is not None else float(table.metadata["label_noise_estimate"])
            )
        treatment, chosen_fraction = None, keep_fraction
        if mislabelled in TREATMENTS:
            if self.labels is None and mislabelled == "relabel":
                raise ValueError(
                    "`mislabelled='relabel'` replaces class labels in (x, y) batches, but the training set's items "
                    "are not (x, y) with integer y; use mislabelled='exclude' or 'downweight'"
                )
            treatment, chosen_fraction = plan_treatment(
                mislabelled, table.columns, keep_fraction, self.num_examples, seed
            )
        kept = (
            select(
                scores,
                chosen_fraction,
                strategy,
                labels=labels,
                class_balanced=class_balanced,
                seed=seed,
                exclude=exclude,
                **options,
            )
            if chosen_fraction > 0
            else np.empty(0, dtype=np.int64)
        )
        if treatment is not None:
            kept = np.union1d(kept, treatment.indices).astype(np.int64)
        self.kept_indices = kept
        self.flagged_treatment = treatment
        return kept.copy()

    def _check_unscored(self, scores: np.ndarray, score: str, max_unscored_fraction: float) -> None:
        unscored = int(np.count_nonzero(np.isnan(scores))) if scores.dtype.kind in "fc" else 0
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
        """Goes back to training on the full dataset (and on the given labels)."""
        self.kept_indices = None
        self.flagged_treatment = None

    # Loaders: `train_dataloader`, `scoring_dataloader` and the evaluation loaders are `PrunedSubsetLoaders`'.
    # Lifecycle ----------------------------------------------------------------------------------
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
            if self._stream is not None and not self._labels_read:
                self._record_streamed_labels(batch.original_index, batch.batch)
            self.batch_original_index = batch.original_index
            self.train_examples_served += len(batch.original_index)
            self._training_batch_in_transfer = True
            batch = batch.batch
        return self._users_batch_hook("on_before_batch_transfer", batch, dataloader_idx)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Runs the user's own hook, if any; then hands a training batch to the flagged examples' treatment and to
        ``train_batch_fn``, each when set.

        Only a batch of the training loader is handed over (not a scoring pass's, which never went through
        :meth:`on_before_batch_transfer`), and the served count then follows the batch each returns.
        """
        batch = self._users_batch_hook("on_after_batch_transfer", batch, dataloader_idx)
        training_batch, self._training_batch_in_transfer = self._training_batch_in_transfer, False
        trainer = self.trainer
        if not (training_batch and trainer is not None and trainer.training):
            return batch
        treatment = self.flagged_treatment
        for handle in (
            None if treatment is None else functools.partial(treatment.apply, epoch=int(trainer.current_epoch)),
            self.train_batch_fn,
        ):  # the flagged examples' treatment first, then the user's cut; the served count follows each
            if handle is not None:
                served = len(self.batch_original_index)
                batch, self.batch_original_index = handle(batch, self.batch_original_index)
                self.train_examples_served -= served - len(self.batch_original_index)
        return batch

    def _users_batch_hook(self, name: str, batch: Any, dataloader_idx: int) -> Any:
        """The wrapped data module's batch hook ``name``, else the LightningModule's, where overridden."""
        if self._wrapped is not None and is_overridden(name, self._wrapped):
            return getattr(self._wrapped, name)(batch, dataloader_idx)
        trainer = self.trainer
        module = trainer.lightning_module if trainer is not None else None
        if module is not None and is_overridden(name, module):
            return getattr(module, name)(batch, dataloader_idx)
        return batch

    def state_dict(self) -> dict[str, Any]:
        """The kept subset travels with checkpoints (an int64 tensor sharing its memory), so a resumed run trains
        on the same examples."""
        return {
            "kept_indices": None
            if self.kept_indices is None
            else torch.from_numpy(np.asarray(self.kept_indices, dtype=np.int64)),
            "num_examples": self.num_examples,
            "dataset_fingerprint": self.fingerprint(),
            "flagged_treatment": None if self.flagged_treatment is None else self.flagged_treatment.state_dict(),
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
        kept = state_dict.get("kept_indices")  # a tensor, or a list in older checkpoints
        kept = None if kept is None else np.array(kept.numpy() if isinstance(kept, Tensor) else kept, dtype=np.int64)
        if self.kept_indices is not None and (kept is None or not np.array_equal(kept, self.kept_indices)):
            # A resumed run must train on the subset it was pruned to, never on one chosen anew.
            raise ValueError(
                f"the checkpoint's kept subset ({'none' if kept is None else f'{len(kept)} examples'}) differs from "
                f"this data module's ({len(self.kept_indices)} examples); call `reset_pruning()` first to adopt it"
            )
        self.kept_indices = kept
        saved = state_dict.get("flagged_treatment")
        treatment = None if saved is None else FlaggedTreatment.from_state(saved)
        if self.flagged_treatment is not None and not self.flagged_treatment.same_as(treatment):
            raise ValueError(
                f"the checkpoint's treatment of flagged examples ({'none' if treatment is None else treatment.kind}) "
                f"differs from this data module's ({self.flagged_treatment.kind}); call `reset_pruning()` first to "
                "adopt it"
            )
        self.flagged_treatment = treatment


#: What pruning does with the examples a score table flags as mislabelled.
MISLABELLED_HANDLING = ("keep", "exclude", "exclude_disagreeing", *TREATMENTS)


def _mislabelled_mask(table: Any, mislabelled: str) -> Optional[np.ndarray]:
    """The boolean mask of examples to exclude as mislabelled (``None``: none excluded)."""
    if mislabelled not in MISLABELLED_HANDLING:
        raise ValueError(f"`mislabelled` can be {', '.join(MISLABELLED_HANDLING)}, got {mislabelled!r}")
    if mislabelled == "keep":
        return None
    flags = table.columns.get("mislabelled") if isinstance(table, ScoreTable) else None
    if flags is None:
        raise ValueError(
            f"`mislabelled={mislabelled!r}` needs a ScoreTable with a `mislabelled` column: record the 'label_issue' "
            "score (DifficultyCallback(scores=[..., 'label_issue']))"
        )
    mask = np.asarray(flags, dtype=bool)
    if mislabelled == "exclude_disagreeing":
        predicted = table.columns["predicted_label"]
        mask = mask | ((predicted >= 0) & (predicted != table.labels))
    return mask


def _check_not_constant(scores: np.ndarray, score: str, strategy: str) -> None:
    """A constant score would keep an arbitrary subset under the name of the strategy: refused."""
    if len(scores) < 2:
        return
    with np.errstate(invalid="ignore"):
        low, high = np.nanmin(scores), np.nanmax(scores)  # reductions: no copy of the scores
    if low == high:
        raise ValueError(
            f"score {score!r} is {float(low)!r} for every scored example ({len(scores)} in the table): strategy "
            f"{strategy!r} would keep an arbitrary subset. A constant score measures nothing here (a one-output "
            "model's entropy or margin, a frozen or untrained probe): choose a score that varies (for a regressor, "
            "'loss' with `Adapter(loss='mse')`), or `strategy='random'`"
        )


def _checked_shape(shape: Optional[Sequence[int]]) -> Optional[tuple[int, ...]]:
    if shape is None:
        return None
    dims = (shape,) if isinstance(shape, int) and not isinstance(shape, bool) else shape
    try:
        checked = tuple(int(d) for d in dims)
    except (TypeError, ValueError):
        checked = ()
    if not checked or any(d < 1 for d in checked) or any(isinstance(d, bool) for d in dims):
        raise ValueError(f"`input_shape` must be a sequence of positive integers, e.g. (1, 28, 28), got {shape!r}")
    return checked


def _checked_count(count: Optional[int]) -> Optional[int]:
    if count is None:
        return None
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"`num_classes` must be a positive integer, got {count!r}")
    return int(count)
