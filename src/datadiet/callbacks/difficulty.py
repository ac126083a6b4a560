"""DifficultyCallback: records per-example difficulty statistics during a probe run."""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from datadiet.adapter import Adapter
from datadiet.callbacks._checks import check_labels
from datadiet.callbacks._resume_checks import changed_arguments, refusal, saved_arguments, states_of
from datadiet.callbacks.scorer import Scorer
from datadiet.scores import PerExampleScore
from datadiet.store import ScoreTable


class DifficultyCallback(Callback):
    r"""Records per-example statistics (EL2N, forgetting, margin, ...) while a probe model trains.

    Training-phase scores (``forgetting``, ...) read the logits of the training forward pass of each
    presentation — captured by a forward hook on the ``LightningModule``, before the optimizer step —
    so an unmodified module whose ``forward`` returns logits works as is. Those logits are copied into a
    buffer and the scores updated once per 65,536 examples (and at every epoch end or checkpoint),
    which keeps the cost per training step to a few tensor copies. Eval-phase scores
    (``el2n``, ``margin``) come from one eval-mode scoring pass over the training set when training
    ends, the model as it is at the end of the probe (the published definitions).

    The data must come from a :class:`~datadiet.PruningDataModule` (``trainer.fit(model, datamodule=dm)``),
    which supplies each example's original index. Statistics live on the model's device, are updated
    without host–device synchronisation, and are merged across processes once per epoch through
    ``trainer.strategy`` (see :mod:`datadiet.scores.base` for why DDP padding cannot double count).

    Class labels (for the scores that need them, and the table's ``labels`` used by class-balanced
    pruning) are the data module's ``labels`` with the default adapter, and otherwise what the
    adapter's ``target_fn`` reads from the batches (examples it never saw are read through it once).
    When the table is built, a warning names the examples never presented in training (e.g. under
    ``limit_train_batches``): their train-phase scores are NaN.

    Calling ``trainer.fit`` again with the same callback (the statistics are never silently reset):

    - a fit that trains nothing (the same ``Trainer`` with ``max_epochs`` already reached) keeps the
      statistics and the score table as they are;
    - a fit that trains the same model further (a larger ``max_epochs``, or a new ``Trainer``)
      continues the statistics, and rebuilds the table when its training ends;
    - a fit with ``ckpt_path`` restores the checkpoint's statistics;
    - a fit of another model, or of a data module of another size, is refused: call :meth:`reset` (or
      use a new callback) to start a new probe.

    Args:
        scores: names of registered scores (see :func:`datadiet.list_scores`).
        adapter: how to read inputs, labels and logits when batches are not ``(x, y)`` or ``forward``
            does not return logits alone, and the per-example loss of models not trained with cross-entropy
            (see :class:`~datadiet.Adapter`).
        scoring_batch_size: batch size of the scoring pass (default: the data module's eval batch size).
        score_options: per-score constructor arguments, e.g. ``{"grand": {"exact": True},
            "prototype_distance": {"num_clusters": 20}}``.
        feature_module: name of the submodule whose *input* is an example's features (for ``grand``'s
            closed form and ``prototype_distance``); default the module's last ``nn.Linear``.

    Raises:
        ValueError: an unknown score name, no scores at all, or a score the adapter's loss does not define
            (class-probability scores with ``bce``, ``mse``, ``l1`` or a callable); at ``setup``, a data module
            whose size differs from the statistics of an earlier fit; when training starts (one forward of
            two examples, before the first step), outputs a score cannot be computed from — logits whose
            first dimension is not the batch's, one output per example for a class-probability score, labels
            of the wrong kind — with a message naming the score, the shapes and what would work.
        RuntimeError: at ``on_train_start``, a model other than the one whose statistics an earlier fit recorded.

    Example::

        dm = PruningDataModule(train_set, batch_size=128)
        difficulty = DifficultyCallback(scores=("el2n", "forgetting", "margin"))
        Trainer(max_epochs=10, callbacks=[difficulty]).fit(model, datamodule=dm)
        table = difficulty.score_table       # table["el2n"][i] is example i's EL2N
    """

    def __init__(
        self,
        scores: str | Sequence[str] = ("el2n", "forgetting", "margin"),
        adapter: Adapter | None = None,
        scoring_batch_size: int | None = None,
        score_options: Mapping[str, Mapping[str, Any]] | None = None,
        feature_module: str | None = None,
    ) -> None:
        super().__init__()
        #: The :class:`~datadiet.callbacks.scorer.Scorer` this callback drives: the statistics and the scoring pass.
        self.scorer = Scorer(scores, adapter, scoring_batch_size, score_options, feature_module)
        # Lightning reads `state_key` at every hook call: computed once (the score names are fixed).
        self._state_key = self._generate_state_key(scores=tuple(self.scorer.score_classes))
        self._score_table: ScoreTable | None = None
        self._model_ref: weakref.ref | None = None
        self._continuing = False

    @property
    @override
    def state_key(self) -> str:
        return self._state_key

    @property
    def scores(self) -> dict[str, PerExampleScore]:
        """The live statistics by name (empty before the first ``setup``)."""
        return self.scorer.scores

    @property
    def score_classes(self) -> dict[str, type[PerExampleScore]]:
        return self.scorer.score_classes

    @property
    def adapter(self) -> Adapter:
        return self.scorer.adapter

    @property
    def epochs_recorded(self) -> int:
        """Training epochs whose presentations the statistics hold."""
        return self.scorer.epochs_recorded

    @property
    def score_table(self) -> ScoreTable:
        """The scores after ``trainer.fit``; a :class:`ScoreTable` indexed by original index."""
        if self._score_table is None:
            raise RuntimeError("no scores yet: `score_table` is available once `trainer.fit` has finished")
        return self._score_table

    @property
    def bytes_per_example(self) -> int:
        """State bytes per training example for the chosen scores (excluding the score table itself)."""
        return self.scorer.bytes_per_example

    def reset(self) -> None:
        """Forgets every statistic and the score table: the next ``trainer.fit`` starts a new probe."""
        self.scorer.reset()
        self._score_table = None
        self._model_ref = None

    # Setup ----------------------------------------------------------------------------------------
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self.scorer.restored = False
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "batch_original_index"):
            raise RuntimeError(
                "DifficultyCallback needs each example's original index: pass the data as "
                "`trainer.fit(model, datamodule=PruningDataModule(train_set, ...))` or wrap your data module "
                "with `PruningDataModule.from_datamodule(dm)`"
            )
        check_labels(self.score_classes, self.adapter, datamodule)
        self._continuing = self.scorer.built
        if self._continuing:  # an earlier fit recorded statistics: see the class docstring
            if self.scorer.num_examples != datamodule.num_examples:
                raise ValueError(
                    f"this DifficultyCallback holds statistics of {self.scorer.num_examples} training examples from "
                    f"an earlier `trainer.fit`, but the data module has {datamodule.num_examples}; call "
                    "`callback.reset()` (or use a new DifficultyCallback) to start a new probe"
                )
            return
        self._score_table = None
        self.scorer.build(datamodule)

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        previous_model = self._model_ref() if self._model_ref is not None else None
        if self._continuing and not self.scorer.restored and previous_model is not pl_module:
            raise RuntimeError(
                f"this DifficultyCallback holds {self.epochs_recorded} epoch(s) of statistics of another model from "
                "an earlier `trainer.fit`; continuing them with this model would mix two probes. Call "
                "`callback.reset()` (or use a new DifficultyCallback) to start a new probe"
            )
        self._model_ref = weakref.ref(pl_module)
        self._score_table = None  # this fit trains: its table is built when training ends
        self.scorer.start(trainer, pl_module, "DifficultyCallback")

    # Training presentations -----------------------------------------------------------------------
    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.scorer.batch_start(trainer, pl_module)

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.scorer.batch_end(batch)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.scorer.end_epoch(trainer)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._score_table = self.scorer.score(trainer, pl_module)

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Resuming from a checkpoint of the last epoch skips the training loop and `on_train_end` with it
        # (a run killed during the scoring pass): finish the restored state here.
        if self._score_table is None and self.scorer.built:
            self.scorer.to(pl_module.device)
            self._score_table = self.scorer.score(trainer, pl_module)

    # Checkpointing --------------------------------------------------------------------------------
    @property
    def arguments(self) -> dict[str, Any]:
        """The arguments the statistics depend on (saved in checkpoints, compared when resuming)."""
        return {
            "scores": tuple(self.score_classes),
            "score_options": self.scorer.score_options,
            "feature_module": self.scorer.feature_module,
        }

    @override
    def state_dict(self) -> dict[str, Any]:
        return {**self.scorer.state_dict(), "arguments": self.arguments}

    @override
    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # statistics saved under another `state_key` (other scores) that no callback of this fit takes would be
        # silently left out, and this one would record from the resumed epoch on only: refused
        taken = {callback.state_key for callback in trainer.callbacks}
        for key, state in states_of(checkpoint, "DifficultyCallback", self.state_key).items():
            if key not in taken:
                self._check_arguments(saved_arguments(key, state))

    def _check_arguments(self, saved: Mapping[str, Any] | None) -> None:
        changed = changed_arguments(saved or {}, self.arguments)
        if changed:
            decided = "The checkpoint's statistics were recorded with its arguments."
            raise refusal("DifficultyCallback", changed, decided)

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._check_arguments(state_dict.get("arguments"))
        self.scorer.load_state_dict(state_dict)
