"""How datadiet reads inputs, labels, logits and each example's loss from a user's batches and module outputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from torch import Tensor

from datadiet.losses import CLASS_PROBABILITY_LOSSES, LOSSES, per_example_loss

#: Keys of a dict batch, in the order they are looked for (Hugging Face's names first).
INPUT_KEYS = ("input_ids", "x", "input", "inputs")
TARGET_KEYS = ("labels", "label", "y", "target", "targets")

ExampleLoss = Callable[[Any, Any], Tensor]


def _lookup(batch: Mapping, keys: tuple[str, ...], what: str, argument: str) -> Any:
    for key in keys:
        if key in batch:
            return batch[key]
    raise ValueError(
        f"a dict batch with keys {sorted(batch)} has none of {list(keys)} for the {what}: pass "
        f"`Adapter({argument}=lambda batch: batch[...])`"
    )


def _first(batch: Any) -> Any:
    if isinstance(batch, Mapping):
        return _lookup(batch, INPUT_KEYS, "model input", "input_fn")
    return batch[0]


def _second(batch: Any) -> Any:
    if isinstance(batch, Mapping):
        return _lookup(batch, TARGET_KEYS, "labels", "target_fn")
    return batch[1]


def _identity(output: Any) -> Any:
    """The logits of a module output: the output itself, or its ``logits`` (Hugging Face model outputs)."""
    if isinstance(output, Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    if isinstance(output, Mapping) and isinstance(output.get("logits"), Tensor):
        return output["logits"]
    return output


@dataclass(frozen=True)
class Adapter:
    """Reads model input, labels, logits and each example's loss when batches are not ``(x, y)``, ``forward``
    returns more than logits, or the model is not trained with cross-entropy.

    The defaults cover modules written the way Lightning's documentation writes them
    (``x, y = batch; logits = self(x)``), dict batches with Hugging Face's names (``input_ids``,
    ``labels``) and outputs with a ``logits`` attribute. Anything else is one line, e.g. dict batches and a
    ``forward`` returning ``(logits, features)``::

        Adapter(input_fn=lambda b: b["image"], target_fn=lambda b: b["label"], logits_fn=lambda out: out[0])

    The per-example loss, which dynamic pruning, the ``loss`` score, RHO-LOSS and GraNd rank by::

        Adapter(loss="mse")                      # a regressor: outputs (B,) or (B, D) against targets alike
        Adapter(loss="bce")                      # multi-label: logits (B, K) against multi-hot float targets
        Adapter(loss=lambda output, batch: my_loss(output, batch).mean(dim=1))   # anything else, (B,) values

    Sequences need no adapter: logits ``(B, T, K)`` with integer labels ``(B, T)`` are scored per token and
    averaged over each example's tokens whose label is not ``ignore_index`` (so the ``loss`` score is the
    example's log perplexity).

    Args:
        input_fn: batch → what ``pl_module(...)`` takes (used by the eval-mode scoring pass).
        target_fn: batch → labels: integer classes ``(B,)`` or ``(B, T)``, probability targets ``(B, K)``,
            multi-hot ``(B, K)`` (``bce``) or regression targets (``mse``, ``l1``); ``None`` for unlabelled data.
        logits_fn: output of ``pl_module(...)`` → the tensor the loss is computed from (logits).
        loss: ``"cross_entropy"`` (default), ``"bce"``, ``"mse"``, ``"l1"``, or a callable
            ``(output, batch) -> Tensor[B]`` of per-example losses (``output`` as ``pl_module`` returned it).
            Scores that read class probabilities (EL2N, margin, AUM, forgetting, cartography, entropy) need
            ``"cross_entropy"``.
        ignore_index: the label of sequence positions that do not count (padding), as in ``F.cross_entropy``.
        shift_labels: the labels are the input tokens themselves (Hugging Face causal LMs): the logits at
            position ``t`` are scored against the label at ``t + 1``, as those models' loss does.

    Raises:
        ValueError: an unknown ``loss`` name, or an ``ignore_index`` that is not an integer.
    """

    input_fn: Callable[[Any], Any] = _first
    target_fn: Optional[Callable[[Any], Optional[Tensor]]] = _second
    logits_fn: Callable[[Any], Tensor] = _identity
    loss: Union[str, ExampleLoss] = "cross_entropy"
    ignore_index: int = -100
    shift_labels: bool = False

    def __post_init__(self) -> None:
        if not callable(self.loss) and self.loss not in LOSSES:
            raise ValueError(
                f"`loss` can be {', '.join(LOSSES)} or a callable (output, batch) -> Tensor[B], got {self.loss!r}"
            )
        if isinstance(self.ignore_index, bool) or not isinstance(self.ignore_index, int):
            raise ValueError(f"`ignore_index` must be an integer, got {self.ignore_index!r}")
        if not isinstance(self.shift_labels, bool):
            raise ValueError(f"`shift_labels` must be True or False, got {self.shift_labels!r}")

    @property
    def class_probabilities(self) -> bool:
        """Whether the output is class logits (cross-entropy): the scores that read ``softmax(z)`` apply."""
        return not callable(self.loss) and self.loss in CLASS_PROBABILITY_LOSSES

    @property
    def loss_name(self) -> str:
        """The loss in messages: its name, or the callable's."""
        return (
            self.loss if isinstance(self.loss, str) else f"the callable {getattr(self.loss, '__name__', self.loss)!r}"
        )

    def read(self, output: Any, batch: Any) -> tuple[Tensor, Optional[Tensor]]:
        """The logits and labels a batch is scored from, aligned (``shift_labels`` applied)."""
        logits = self.logits_fn(output)
        target = self.target_fn(batch) if self.target_fn is not None else None
        if self.shift_labels and isinstance(logits, Tensor) and logits.ndim == 3:
            logits = logits[:, :-1]
            target = None if target is None else target[:, 1:]
        return logits, target

    def example_loss(self, output: Any, batch: Any) -> Tensor:
        """Each example's loss, float32 ``(B,)``: the callable's, or the built-in ``loss`` of :meth:`read`."""
        if callable(self.loss):
            return self.loss(output, batch).float()
        logits, target = self.read(output, batch)
        if target is None:
            raise ValueError(f"the per-example {self.loss} needs labels, but the adapter has no `target_fn`")
        return per_example_loss(self.loss, logits, target, self.ignore_index)
