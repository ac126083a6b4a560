"""The eval-mode scoring pass of :class:`~datadiet.DifficultyCallback`, and the helpers its training side shares.

Once training ends, eval-phase scores (``el2n``, ``margin``, ...) read the model as it is then over the
whole current training set, in order, sharded over ranks like a ``DistributedSampler``.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Optional

import lightning.pytorch as pl
import torch
from lightning.fabric.utilities.data import sized_len
from lightning.pytorch.callbacks import TQDMProgressBar
from torch import Tensor

from datadiet.adapter import Adapter
from datadiet.callbacks.example_ledger import ExampleLedger
from datadiet.callbacks.presentation_buffer import PresentationBuffer
from datadiet.scores import PerExampleScore
from datadiet.scores.base import trainer_sync_min
from datadiet.scores.context import FeatureCapture, find_feature_module


def buffered(logits: Tensor, target: Optional[Tensor]) -> bool:
    """Whether a batch goes through a :class:`PresentationBuffer`: one logits row and at most one label per
    example. Sequences (and probability targets) are scored batch by batch: a batch of them holds many
    tokens (label values) already."""
    return logits.ndim == 2 and (target is None or target.ndim == 1)


def update_from_buffer(scores: list[PerExampleScore], buffer: PresentationBuffer) -> None:
    """Hands what ``buffer`` holds to ``scores`` as one batch, and empties it."""
    if len(buffer):
        index, logits, target = buffer.take()
        for score in scores:
            score.update(index, logits, target)


def scoring_pass(
    trainer: "pl.Trainer",
    pl_module: "pl.LightningModule",
    eval_scores: list[PerExampleScore],
    adapter: Adapter,
    ledger: ExampleLedger,
    *,
    batch_size: Optional[int],
    feature_module: Optional[str],
    buffer: PresentationBuffer,
) -> None:
    """Updates ``eval_scores`` from one eval-mode pass over the data module's ``scoring_dataloader``.

    Args:
        trainer: the fitting ``Trainer``; its data module is a ``PruningDataModule``.
        pl_module: the probe model, put in eval mode for the pass and back as it was after it.
        eval_scores: the eval-phase scores to update, then end (``end_scoring``).
        adapter: reads inputs, labels, logits and the per-example loss of a batch.
        ledger: records the labels the adapter reads.
        batch_size: the scoring batch size (default: the data module's eval batch size).
        feature_module: the submodule whose input is an example's features, for scores that need them.
        buffer: where the batches of scores of logits and labels alone wait to be handed over in bulk.
    """
    loader = trainer.datamodule.scoring_dataloader(
        batch_size, num_replicas=trainer.world_size, rank=trainer.global_rank
    )
    bar = _progress_bar(trainer, sized_len(loader))  # a stream's length is unknown
    was_training = pl_module.training
    pl_module.eval()
    # scores of the per-example loss read the adapter's loss when it is not cross-entropy
    from_loss = [s for s in eval_scores if getattr(s, "from_example_loss", False) and not adapter.class_probabilities]
    # scores of logits and labels alone are updated from buffered batches, as in training
    logits_only = [score for score in eval_scores if not score.needs and score not in from_loss]
    needs = set().union(*(score.needs for score in eval_scores))
    capture = FeatureCapture(find_feature_module(pl_module, feature_module)) if "features" in needs else None
    try:
        with torch.no_grad(), trainer.precision_plugin.forward_context(), capture or nullcontext():
            for indexed in loader:
                # as Lightning's loops do: the precision plugin's dtype (64-true, bf16-true), then the device
                batch = trainer.strategy.batch_to_device(trainer.precision_plugin.convert_input(indexed.batch))
                index = indexed.original_index.to(pl_module.device, non_blocking=True)
                inputs = adapter.input_fn(batch)
                output = pl_module(inputs)
                logits, target = adapter.read(output, batch)
                ledger.record_labels(index, adapter.target_fn(batch) if adapter.target_fn is not None else None)
                extras = {
                    "features": capture.take() if capture is not None else None,
                    "inputs": inputs,
                    "module": pl_module,
                    "adapter": adapter,
                    "batch": batch,
                }
                for score in eval_scores:
                    if score.needs:
                        wanted = {key: extras[key] for key in score.needs}
                        if "module" in score.needs:
                            wanted["logits_fn"] = adapter.logits_fn
                        score.update(index, logits, target, **wanted)
                if from_loss:
                    losses = adapter.example_loss(output, batch)
                    for score in from_loss:
                        score.store(index, losses)
                if logits_only and not buffered(logits, target):
                    for score in logits_only:
                        score.update(index, logits, target)
                elif logits_only:
                    if not buffer.fits(len(index), logits.shape[-1]):
                        update_from_buffer(logits_only, buffer)
                    buffer.add(index, logits, target)
                if bar is not None:
                    bar.update(1)
            update_from_buffer(logits_only, buffer)
    finally:
        pl_module.train(was_training)
        if bar is not None:
            bar.close()
    minimum = trainer_sync_min(trainer)
    for score in eval_scores:
        score.end_scoring(minimum)


def _progress_bar(trainer: "pl.Trainer", total: Optional[int]) -> Any:
    """A "Scoring" bar from the Trainer's TQDM progress bar, on rank zero only; ``None`` where there is none."""
    progress = trainer.progress_bar_callback
    if not isinstance(progress, TQDMProgressBar) or not trainer.is_global_zero or progress.is_disabled:
        return None
    bar = progress.init_predict_tqdm()
    bar.reset(total=total)
    bar.set_description("Scoring")
    return bar
