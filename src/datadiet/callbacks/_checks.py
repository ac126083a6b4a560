"""What the callbacks check before anything trains: labels the scores can read, and one forward of two
training examples read as the adapter reads batches (output rows, label shapes, the per-example loss).

A mistake found here costs a forward of two examples; found in the first epoch's end or the scoring
pass, it costs the run — or, worse, gives a table of constant or misaligned scores that prunes anyway.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import default_collate

from datadiet.adapter import Adapter
from datadiet.scores import PerExampleScore

#: Examples in the check's batch: two, so that a batch dimension cannot pass for something else.
CHECK_EXAMPLES = 2


def check_labels(score_classes: Mapping[str, type[PerExampleScore]], adapter: Adapter, datamodule: Any) -> None:
    """Refuses label-based scores when the adapter cannot read labels off an item of the training set."""
    needs_labels = [name for name, cls in score_classes.items() if cls.requires_labels]
    if not needs_labels:
        return
    problem = None
    if adapter.target_fn is None:
        problem = "the adapter has no `target_fn`"
    else:
        collate = datamodule.collate_fn or default_collate
        try:
            target = adapter.target_fn(collate(datamodule.example_items(1)))
        except Exception as error:  # noqa: BLE001  any failure means "no labels here"
            problem = f"reading labels from a batch failed ({type(error).__name__}: {error})"
        else:
            if not isinstance(target, Tensor):
                problem = f"the batch's labels are {type(target).__name__}, not a tensor"
    if problem:
        raise ValueError(
            f"score(s) {needs_labels} need labels, but {problem}. Use label-free scores, give items as (x, y) "
            "or dicts with `labels`, or pass `adapter=Adapter(target_fn=...)`"
        )


@contextmanager
def _quiet_eval(pl_module: pl.LightningModule) -> Iterator[None]:
    """Eval mode, no gradients, random state untouched (the training run's draws stay what they were)."""
    was_training = pl_module.training
    devices = [pl_module.device] if pl_module.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        pl_module.eval()
        try:
            yield
        finally:
            pl_module.train(was_training)


def check_first_batch(
    trainer: pl.Trainer,
    pl_module: pl.LightningModule,
    adapter: Adapter,
    who: str,
    scores: Iterable[PerExampleScore] = (),
    needs_loss: bool = False,
) -> None:
    """One forward of the first training examples, checked as ``who`` will read every batch.

    Raises:
        ValueError: logits whose first dimension is not the number of examples, labels equal to the inputs
            of a sequence model without ``shift_labels``, a score that cannot be computed from these
            outputs (its :meth:`~datadiet.scores.PerExampleScore.check_batch`), or a per-example loss that
            cannot be computed or is not one value per example.
    """
    datamodule = trainer.datamodule
    size = min(CHECK_EXAMPLES, datamodule.num_examples)
    if size == 0:
        return
    collate = datamodule.collate_fn or default_collate
    # read as the scoring pass reads batches (the device transfer and its hooks, not the training loader's)
    batch = collate(datamodule.example_items(size))
    batch = trainer.strategy.batch_to_device(trainer.precision_plugin.convert_input(batch))
    with _quiet_eval(pl_module), trainer.precision_plugin.forward_context():
        try:
            inputs = adapter.input_fn(batch)
            output = pl_module(inputs)
        except Exception as error:
            raise RuntimeError(
                f"{who} could not run the module on {size} training examples read with the adapter's `input_fn` "
                f"({type(error).__name__}: {error}); pass `Adapter(input_fn=...)` returning what `forward` takes"
            ) from error
        logits, target = adapter.read(output, batch)
        if not isinstance(logits, Tensor):
            raise ValueError(
                f"{who} reads logits from the module's output, got {type(logits).__name__}; pass "
                "`Adapter(logits_fn=...)` returning the tensor the loss is computed from"
            )
        if logits.ndim == 0 or logits.shape[0] != size:
            raise ValueError(
                f"{who} scores every example, but the module's output {tuple(logits.shape)} has "
                f"{logits.shape[0] if logits.ndim else 0} rows for a batch of {size} examples. Return one row per "
                "example: logits (B, K), outputs (B,) or (B, D), or (B, T, K) for sequences (averaged over each "
                "example's tokens) — not tokens flattened into rows"
            )
        _check_not_own_input(who, adapter, inputs, logits, target)
        for score in scores:
            score.check_batch(logits, target, adapter)
        if needs_loss:
            _check_example_loss(who, adapter, output, batch, target, size)


def _check_not_own_input(who: str, adapter: Adapter, inputs: Any, logits: Tensor, target: Any) -> None:
    """Labels equal to the input tokens are the Hugging Face causal-LM convention: the model's loss shifts them."""
    if adapter.shift_labels or logits.ndim != 3 or not isinstance(target, Tensor) or not isinstance(inputs, Tensor):
        return
    if target.shape != inputs.shape or target.is_floating_point():
        return
    real = target != adapter.ignore_index
    if bool(real.any()) and bool((target[real] == inputs[real]).all()):
        raise ValueError(
            f"{who}: the labels equal the input tokens, so position t's logits would be scored against the token "
            "they were given. If the model predicts the next token (Hugging Face causal LMs shift the labels in "
            "their loss), pass `Adapter(shift_labels=True)`; otherwise give labels already shifted (x = tokens[:-1], "
            "y = tokens[1:])"
        )


def _check_example_loss(who: str, adapter: Adapter, output: Any, batch: Any, target: Any, size: int) -> None:
    if adapter.loss == "cross_entropy" and isinstance(target, Tensor) and target.is_floating_point():
        if target.ndim == 1 or target.shape[-1:] == (1,):
            raise ValueError(
                f"{who} ranks examples by their loss, cross-entropy by default, but the labels are floating point "
                f"{tuple(target.shape)}: for a regressor pass `Adapter(loss='mse')` (or 'l1'), for multi-hot labels "
                "`Adapter(loss='bce')`"
            )
    try:
        losses = adapter.example_loss(output, batch)
    except Exception as error:
        raise ValueError(
            f"{who} could not compute the per-example {adapter.loss_name} of {size} training examples "
            f"({type(error).__name__}: {error}); set `Adapter(loss=...)` to the loss the model is trained with: "
            "'cross_entropy' (logits (B, K) or (B, T, K) and integer labels), 'bce', 'mse', 'l1', or a callable "
            "(output, batch) -> Tensor[B]"
        ) from error
    if not isinstance(losses, Tensor) or tuple(losses.shape) != (size,):
        raise ValueError(
            f"{who} needs one loss per example, but {adapter.loss_name} returned "
            f"{tuple(losses.shape) if isinstance(losses, Tensor) else type(losses).__name__} for a batch of {size}: "
            "reduce everything but the batch dimension (e.g. `.mean(dim=1)`)"
        )
