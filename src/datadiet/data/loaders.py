"""How a PruningDataModule serves its data: training, scoring and evaluation loaders, and the sampler choice.

``loader_options`` and ``sample_weights`` are checked here; :class:`PrunedSubsetLoaders` holds the loader
hooks that :class:`~datadiet.PruningDataModule` inherits.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, Iterator, Mapping, Optional, Union

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from datadiet.data.epoch_sampler import EpochSampler
from datadiet.data.indexed import IndexedCollate, IndexedDataset
from datadiet.data.streams import IndexedStream, StreamLoader

#: DataLoader arguments ``loader_options`` may set (the others have their own constructor argument).
LOADER_OPTIONS = (
    "worker_init_fn", "generator", "prefetch_factor", "timeout", "multiprocessing_context",
    "persistent_workers", "pin_memory_device", "in_order",
)  # fmt: skip


def checked_sample_weights(weights: Any, dataset: Any) -> np.ndarray:
    """``sample_weights`` as one finite weight >= 0 per example of ``dataset``, or a ``ValueError``."""
    weights = (weights.detach().cpu().numpy() if isinstance(weights, Tensor) else np.asarray(weights)).astype(float)
    if weights.shape != (len(dataset),) or not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(
            f"`sample_weights` must be one finite weight >= 0 per training example ({len(dataset)}), "
            f"got shape {weights.shape}"
        )
    return weights


def checked_loader_options(options: Optional[Mapping[str, Any]], num_workers: int) -> dict[str, Any]:
    """``loader_options`` as a dict of :data:`LOADER_OPTIONS` that ``num_workers`` allows, or a ``ValueError``."""
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
        return (index for start in range(0, len(drawn), 1 << 16) for index in drawn[start : start + (1 << 16)].tolist())


def _any_rank(trainer: pl.Trainer, has_batch: bool) -> bool:
    """Whether any rank has a batch (a ``max`` over the ranks, through the strategy)."""
    flag = torch.tensor(float(has_batch), device=trainer.strategy.root_device)
    return bool(trainer.strategy.reduce(flag, reduce_op="max") > 0)


def _injects_distributed_sampler(trainer: pl.Trainer) -> bool:
    """Whether Lightning would put a ``DistributedSampler`` on the training loader (``use_distributed_sampler``)."""
    return bool(getattr(getattr(trainer, "_accelerator_connector", None), "use_distributed_sampler", True))


class _KeptSubset(Dataset):
    """``Subset`` over a numpy array of positions (no Python list of them), handing the dataset Python ints."""

    def __init__(self, dataset: Dataset, indices: np.ndarray) -> None:
        self.dataset = dataset
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> Any:
        return self.dataset[int(self.indices[position])]


class PrunedSubsetLoaders:
    """The loader hooks of :class:`~datadiet.PruningDataModule`, which sets the attributes below.

    Training and scoring loaders read the current (kept) training set with original indices; validation,
    test and predict loaders are the wrapped data module's, or plain loaders over the datasets given.
    """

    trainer: Optional[pl.Trainer]
    train_dataset: Dataset
    val_dataset: Optional[Dataset]
    test_dataset: Optional[Dataset]
    batch_size: int
    eval_batch_size: int
    num_workers: int
    shuffle: bool
    drop_last: bool
    pin_memory: bool
    collate_fn: Optional[Callable[[list], Any]]
    sample_weights: Optional[np.ndarray]
    sample_with_replacement: bool
    loader_options: dict[str, Any]
    kept_indices: Optional[np.ndarray]
    num_examples: int
    epoch_subset_fn: Optional[Callable[[int], Optional[np.ndarray]]]
    _epoch_positions_cache: Optional[tuple[np.ndarray, np.ndarray]]
    _indexed_train: Union[IndexedDataset, IndexedStream]
    _stream: Optional[IndexedStream]
    _wrapped: Optional[pl.LightningDataModule]

    def _current_train_set(self) -> Dataset:
        if self.kept_indices is None:
            return self._indexed_train
        return _KeptSubset(self._indexed_train, self.kept_indices)

    def train_dataloader(self) -> DataLoader:
        """The (possibly pruned) training set; yields :class:`IndexedBatch` pairs.

        Inside a one-process ``Trainer`` the shuffle order is a function of (seed, epoch) — that of a
        ``DistributedSampler`` of one replica, with the epoch read from the ``Trainer``, since Lightning
        creates a resumed run's first iterator (which workers draw from at once) before it calls
        ``set_epoch`` — so a run resumed from a checkpoint sees the same batches as an uninterrupted one,
        with or without workers. A stream is read in its own order, the examples not kept this epoch
        skipped before collation (see :class:`~datadiet.data.streams.StreamLoader`). Under DDP Lightning
        injects its own ``DistributedSampler`` with the same seed (``PL_GLOBAL_SEED``), unless ``loader_options`` give a
        ``generator``, whose seed is then used on every rank. ``sample_weights`` are drawn from by
        (seed, epoch) the same way, over the kept examples only.
        """
        trainer = self.trainer
        if self._stream is not None:
            any_rank = None
            if trainer is not None and trainer.world_size > 1:
                any_rank = functools.partial(_any_rank, trainer)
            return self._stream_loader(
                self.batch_size, self._stream_epoch_kept, self.drop_last, self._trainer_epoch, any_rank
            )
        dataset = self._current_train_set()
        options = dict(self.loader_options)
        options.setdefault("persistent_workers", self.num_workers > 0)
        generator = options.get("generator")
        # the seed Lightning gives its DistributedSampler, unless the user's loader had its own generator
        seed = generator.initial_seed() if generator is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))
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
            epoch_subsets
            or (self.shuffle and (trainer.world_size == 1 or generator is not None))
            or (trainer.world_size > 1 and _injects_distributed_sampler(trainer))
        ):  # without epoch subsets, exactly a DistributedSampler's order and shards (without its list of N indices)
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

    def _trainer_epoch(self) -> Optional[int]:
        """The epoch a training iterator created now will run: a resumed run creates its first one before the
        Trainer's ``current_epoch`` is restored, when the fit loop's count of processed epochs already is."""
        if self.trainer is None:
            return None
        return max(int(self.trainer.current_epoch), int(self.trainer.fit_loop.epoch_progress.current.processed))

    def _stream_epoch_kept(self, epoch: int) -> Optional[np.ndarray]:
        """Original indices a stream's ``epoch`` presents: ``epoch_subset_fn``'s (in a Trainer), else the kept set."""
        subset = None
        if self.epoch_subset_fn is not None and self.trainer is not None and epoch >= 0:
            subset = self.epoch_subset_fn(epoch)
        return self.kept_indices if subset is None else subset

    def _stream_loader(
        self,
        batch_size: int,
        kept_fn: Callable[[int], Optional[np.ndarray]],
        drop_last: bool,
        epoch_fn: Callable,
        any_rank_fn: Optional[Callable[[bool], bool]] = None,
    ) -> DataLoader:
        assert self._stream is not None
        return StreamLoader(
            self._stream,
            kept_fn,
            epoch_fn,
            any_rank_fn,
            batch_size=batch_size,
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            collate_fn=IndexedCollate(self.collate_fn),
            **{**self.loader_options, "persistent_workers": False},
        )

    def _epoch_positions(self, epoch: int) -> Optional[np.ndarray]:
        """Positions in the current training set of the examples ``epoch_subset_fn`` picks for ``epoch``."""
        subset = None if self.epoch_subset_fn is None else self.epoch_subset_fn(epoch)
        if subset is None or self.kept_indices is None:
            return subset
        cached = self._epoch_positions_cache
        if cached is not None and cached[0] is subset:  # asked twice per epoch: by `len` and by `iter`
            return cached[1]
        kept, by_value = self.kept_indices, None
        if len(kept) > 1 and not np.all(kept[1:] > kept[:-1]):  # a subset set by hand, unsorted
            by_value = np.argsort(kept, kind="stable")
            kept = kept[by_value]
        found = np.searchsorted(kept, subset)
        outside = int(np.count_nonzero(kept[np.minimum(found, len(kept) - 1)] != subset)) if len(kept) else len(subset)
        if outside:
            raise ValueError(f"the epoch subset holds {outside} examples outside the kept training subset")
        positions = found if by_value is None else by_value[found]
        self._epoch_positions_cache = (subset, positions)
        return positions

    def _one_pass_options(self) -> dict[str, Any]:
        """``loader_options`` for loaders read once (scoring, evaluation): no persistent workers."""
        return {key: value for key, value in self.loader_options.items() if key != "persistent_workers"}

    def scoring_dataloader(
        self, batch_size: Optional[int] = None, *, num_replicas: int = 1, rank: int = 0
    ) -> DataLoader:
        """The current training set in order, unshuffled, with indices: the eval-mode scoring pass.

        With ``num_replicas > 1`` each rank reads its ``DistributedSampler`` share (padded, unshuffled). A
        stream is read in its own order (under DDP, each rank its own shard), the kept examples only.
        """
        if self._stream is not None:
            return self._stream_loader(
                batch_size or self.eval_batch_size, lambda epoch: self.kept_indices, False, lambda: None
            )
        dataset = self._current_train_set()
        sampler = None
        if num_replicas > 1:  # DistributedSampler's unshuffled shards, handed out without a list of N indices
            sampler = EpochSampler(dataset, lambda epoch: None, num_replicas=num_replicas, rank=rank, shuffle=False)
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
