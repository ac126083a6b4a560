"""``PruningDataModule.from_datamodule``: how a user's data module and training loader are honoured or refused.

A user's training pipeline is read back into constructor arguments; what cannot follow a pruned subset
(a sampler or batch sampler over the full dataset's indices) is refused with the override that accepts it.
"""

from __future__ import annotations

from typing import Any, Mapping

import lightning.pytorch as pl
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, WeightedRandomSampler

#: The user's batch-transfer hooks a wrapping ``PruningDataModule`` takes over as they are (its own
#: ``on_before_batch_transfer`` and ``on_after_batch_transfer`` call the user's).
FORWARDED_HOOKS = ("transfer_batch_to_device",)


def read_training_loader(datamodule: pl.LightningDataModule) -> DataLoader:
    """Prepares and sets up ``datamodule`` for fitting, and returns its one training ``DataLoader``."""
    datamodule.prepare_data()
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    if not isinstance(loader, DataLoader):
        raise TypeError(
            f"`from_datamodule` needs `train_dataloader()` to return one DataLoader, got {type(loader).__name__}"
        )
    return loader


def forward_hooks(wrapper: pl.LightningDataModule, datamodule: pl.LightningDataModule) -> None:
    """Gives ``wrapper`` the batch-transfer hooks of :data:`FORWARDED_HOOKS` that ``datamodule`` overrides."""
    for hook in FORWARDED_HOOKS:
        if is_overridden(hook, datamodule):
            setattr(wrapper, hook, getattr(datamodule, hook))


def training_loader_settings(loader: DataLoader, overrides: Mapping[str, Any]) -> dict[str, Any]:
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


def stream_loader_settings(loader: DataLoader, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The constructor arguments that rebuild a training loader over a stream (an ``IterableDataset``)."""
    from datadiet.data.streams import is_litdata_stream

    dataset = loader.dataset
    if not is_litdata_stream(dataset) and "index_key" not in overrides and "index_fn" not in overrides:
        raise TypeError(
            f"the training loader reads a stream ({type(dataset).__name__}, an IterableDataset) whose items' original "
            "indices are unknown: pass `index_key=` (dict items) or `index_fn=` (item -> index) and `num_examples=` "
            "to `from_datamodule`"
        )
    if loader.batch_size is None and "batch_size" not in overrides:
        raise TypeError(
            "the training loader has `batch_size=None` (the stream yields batches), so its items are not single "
            "examples that pruning can select; pass `batch_size=` to `from_datamodule` over a stream of examples"
        )
    collate_fn = loader.collate_fn
    if type(collate_fn).__name__ == "StreamingDataLoaderCollateFn":  # litdata's wrapper of the user's collate
        collate_fn = collate_fn.collate_fn
    settings: dict[str, Any] = dict(
        batch_size=loader.batch_size,
        num_workers=loader.num_workers,
        drop_last=loader.drop_last,
        pin_memory=loader.pin_memory,
        collate_fn=collate_fn,
    )
    options: dict[str, Any] = {}
    if loader.worker_init_fn is not None:
        options["worker_init_fn"] = loader.worker_init_fn
    if loader.num_workers > 0:  # never persistent: each epoch's workers start with that epoch's kept set
        options["prefetch_factor"] = loader.prefetch_factor
        if loader.multiprocessing_context is not None:
            options["multiprocessing_context"] = loader.multiprocessing_context
    if loader.timeout:
        options["timeout"] = loader.timeout
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
