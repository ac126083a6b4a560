"""DifficultyCallback: records per-example difficulty statistics during a probe run."""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any, Optional, Sequence, Union

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import Tensor
from typing_extensions import override

from datadiet.adapter import Adapter, _second
from datadiet.callbacks._checks import check_first_batch, check_labels
from datadiet.callbacks._scoring_pass import buffered, scoring_pass, update_from_buffer
from datadiet.callbacks.example_ledger import ExampleLedger
from datadiet.callbacks.presentation_buffer import PresentationBuffer
from datadiet.scores import PerExampleScore, get_score
from datadiet.scores.base import trainer_sync_min
from datadiet.scores.context import ScoreContext
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
        scores: Union[str, Sequence[str]] = ("el2n", "forgetting", "margin"),
        adapter: Optional[Adapter] = None,
        scoring_batch_size: Optional[int] = None,
        score_options: Optional[Mapping[str, Mapping[str, Any]]] = None,
        feature_module: Optional[str] = None,
    ) -> None:
        super().__init__()
        names = [scores] if isinstance(scores, str) else list(scores)
        if not names:
            raise ValueError("`scores` must name at least one score, got an empty list")
        self.score_classes = {name: get_score(name) for name in dict.fromkeys(names)}
        if scoring_batch_size is not None and (not isinstance(scoring_batch_size, int) or scoring_batch_size < 1):
            raise ValueError(f"`scoring_batch_size` must be a positive integer, got {scoring_batch_size!r}")
        self.adapter = adapter or Adapter()
        for cls in self.score_classes.values():
            cls.check_adapter(self.adapter)
        self.scoring_batch_size = scoring_batch_size
        self.score_options = {name: dict(options or {}) for name, options in (score_options or {}).items()}
        unknown = sorted(set(self.score_options) - set(self.score_classes))
        if unknown:
            raise ValueError(f"`score_options` names {unknown}, which are not in `scores` {list(self.score_classes)}")
        self.feature_module = feature_module
        # Lightning reads `state_key` at every hook call: computed once (the score names are fixed).
        self._state_key = self._generate_state_key(scores=tuple(self.score_classes))
        self.scores: dict[str, PerExampleScore] = {}
        self._train_scores: list[PerExampleScore] = []
        self._presentations = PresentationBuffer()
        self.epochs_recorded = 0
        self._score_table: Optional[ScoreTable] = None
        self._pending_state: Optional[dict[str, Any]] = None
        self._hook_handle: Optional[torch.utils.hooks.RemovableHandle] = None
        self._capturing = False
        self._captured: Any = None
        self._batch_index: Optional[Tensor] = None
        self._ledger: Optional[ExampleLedger] = None
        self._num_examples: Optional[int] = None
        self._model_ref: Optional[weakref.ref] = None
        self._continuing = False
        self._restored = False

    @property
    @override
    def state_key(self) -> str:
        return self._state_key

    @property
    def score_table(self) -> ScoreTable:
        """The scores after ``trainer.fit``; a :class:`ScoreTable` indexed by original index."""
        if self._score_table is None:
            raise RuntimeError("no scores yet: `score_table` is available once `trainer.fit` has finished")
        return self._score_table

    @property
    def bytes_per_example(self) -> int:
        """State bytes per training example for the chosen scores (excluding the score table itself)."""
        return sum(cls.bytes_per_example for cls in self.score_classes.values())

    def reset(self) -> None:
        """Forgets every statistic and the score table: the next ``trainer.fit`` starts a new probe."""
        self.scores, self._train_scores = {}, []
        self._presentations = PresentationBuffer()
        self.epochs_recorded = 0
        self._score_table = None
        self._ledger = None
        self._num_examples = self._model_ref = None

    # Setup ----------------------------------------------------------------------------------------
    @override
    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if stage != "fit":
            return
        self._restored = False
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "batch_original_index"):
            raise RuntimeError(
                "DifficultyCallback needs each example's original index: pass the data as "
                "`trainer.fit(model, datamodule=PruningDataModule(train_set, ...))` or wrap your data module "
                "with `PruningDataModule.from_datamodule(dm)`"
            )
        check_labels(self.score_classes, self.adapter, datamodule)
        self._continuing = bool(self.scores)
        if self._continuing:  # an earlier fit recorded statistics: see the class docstring
            if self._num_examples != datamodule.num_examples:
                raise ValueError(
                    f"this DifficultyCallback holds statistics of {self._num_examples} training examples from an "
                    f"earlier `trainer.fit`, but the data module has {datamodule.num_examples}; call "
                    "`callback.reset()` (or use a new DifficultyCallback) to start a new probe"
                )
            return
        self._num_examples = datamodule.num_examples
        # with the default adapter and (x, y) items the labels are the data module's (the item's second element)
        record_labels = self.adapter.target_fn is not None and (
            self.adapter.target_fn is not _second or isinstance(datamodule.train_dataset[0], Mapping)
        )
        self._ledger = ExampleLedger(datamodule.num_examples, record_labels=record_labels)
        self.scores = {
            name: cls(datamodule.num_examples, **self.score_options.get(name, {}))
            for name, cls in self.score_classes.items()
        }
        for score in self.scores.values():
            score.ignore_index = self.adapter.ignore_index
        self._train_scores = [score for score in self.scores.values() if score.phase == "train"]
        self._presentations = PresentationBuffer()
        self.epochs_recorded = 0
        self._score_table = None
        if self._pending_state is not None:
            self._apply_state(self._pending_state)
            self._pending_state = None

    @override
    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        previous_model = self._model_ref() if self._model_ref is not None else None
        if self._continuing and not self._restored and previous_model is not pl_module:
            raise RuntimeError(
                f"this DifficultyCallback holds {self.epochs_recorded} epoch(s) of statistics of another model from "
                "an earlier `trainer.fit`; continuing them with this model would mix two probes. Call "
                "`callback.reset()` (or use a new DifficultyCallback) to start a new probe"
            )
        self._model_ref = weakref.ref(pl_module)
        self._score_table = None  # this fit trains: its table is built when training ends
        for score in self.scores.values():
            score.to(pl_module.device)
        self._ledger.to(pl_module.device)
        check_first_batch(
            trainer,
            pl_module,
            self.adapter,
            "DifficultyCallback",
            scores=self.scores.values(),
            needs_loss=any(getattr(score, "from_example_loss", False) for score in self.scores.values()),
        )
        if any(score.phase == "train" for score in self.scores.values()):
            self._hook_handle = pl_module.register_forward_hook(self._capture_output)

    def _capture_output(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        if self._capturing and self._captured is None:
            self._captured = output

    # Training presentations -----------------------------------------------------------------------
    @override
    def on_train_batch_start(
        self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any, batch_idx: int
    ) -> None:
        index = trainer.datamodule.batch_original_index
        self._batch_index = None if index is None else index.to(pl_module.device, non_blocking=True)
        if self._batch_index is not None:
            self._ledger.mark_presented(self._batch_index)
        self._captured = None
        self._capturing = True

    @override
    def on_train_batch_end(
        self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._capturing = False
        if self._ledger.labels is not None and self._batch_index is not None:
            self._ledger.record_labels(self._batch_index, self.adapter.target_fn(batch))
        if not self._train_scores:
            return
        if self._captured is None:
            raise RuntimeError(
                "DifficultyCallback saw no call of the LightningModule's forward in `training_step`; call "
                "`self(x)` there (not `self.net(x)`), or record only eval-phase scores such as el2n and margin"
            )
        logits, target = self.adapter.read(self._captured, batch)
        self._captured = None
        if self._batch_index is None:
            raise RuntimeError(
                "DifficultyCallback got a training batch without original indices: the training loader must be "
                "the PruningDataModule's `train_dataloader()` (it yields `IndexedBatch` pairs)"
            )
        if not buffered(logits, target):
            for score in self._train_scores:
                score.update(self._batch_index, logits.detach(), target)
            return
        if not self._presentations.fits(len(self._batch_index), logits.shape[-1]):
            self._update_train_scores()
        self._presentations.add(self._batch_index, logits, target)

    def _update_train_scores(self) -> None:
        """Hands the buffered presentations to the training-phase scores."""
        update_from_buffer(self._train_scores, self._presentations)

    @override
    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._update_train_scores()
        minimum = trainer_sync_min(trainer)
        for score in self.scores.values():
            if score.phase == "train":
                score.end_epoch(minimum)
        self.epochs_recorded += 1

    @override
    def on_train_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._update_train_scores()
        if self._hook_handle is not None:
            self._hook_handle.remove()
            self._hook_handle = None
        eval_scores = [score for score in self.scores.values() if score.phase == "eval"]
        if eval_scores:
            self._scoring_pass(trainer, pl_module, eval_scores)
        datamodule = trainer.datamodule
        labels = self._ledger.merged_labels(
            trainer, datamodule.train_dataset, datamodule.collate_fn, self.adapter.target_fn
        )
        context = ScoreContext(
            sync_min=trainer_sync_min(trainer),
            broadcast=trainer.strategy.broadcast,
            labels_fn=(lambda: trainer.datamodule.labels) if labels is None else (lambda: labels),
            num_classes=getattr(trainer.datamodule, "num_classes", None),
            world_size=trainer.world_size,
            is_global_zero=trainer.is_global_zero,
        )
        for score in self.scores.values():
            score.finalize(context)
        self._score_table = self._build_table(trainer, labels, self._ledger.never_presented(trainer))

    @override
    def on_fit_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        # Resuming from a checkpoint of the last epoch skips the training loop and `on_train_end` with it
        # (a run killed during the scoring pass): finish the restored state here.
        if self._score_table is None and self.scores:
            for score in self.scores.values():
                score.to(pl_module.device)
            self.on_train_end(trainer, pl_module)

    # Scoring pass ---------------------------------------------------------------------------------
    def _scoring_pass(
        self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", eval_scores: list[PerExampleScore]
    ) -> None:
        scoring_pass(
            trainer,
            pl_module,
            eval_scores,
            self.adapter,
            self._ledger,
            batch_size=self.scoring_batch_size,
            feature_module=self.feature_module,
            buffer=PresentationBuffer(),
        )

    def _build_table(
        self, trainer: "pl.Trainer", labels: Optional[np.ndarray], never_presented: Optional[int]
    ) -> ScoreTable:
        oriented, raw, columns, extra_metadata = {}, {}, {}, {}
        for name, score in self.scores.items():
            oriented[name], raw[name] = score.compute()
            columns.update(score.columns())
            extra_metadata.update(score.metadata())
        datamodule = trainer.datamodule
        if never_presented:
            train_names = [name for name, score in self.scores.items() if score.phase == "train"]
            eval_names = [name for name, score in self.scores.items() if score.phase == "eval"]
            consequence = f"their train-phase scores {train_names} are NaN" if train_names else ""
            if eval_names:
                consequence += "; " if consequence else ""
                consequence += f"their eval-phase scores {eval_names} come from a model that never trained on them"
            rank_zero_warn(
                f"{never_presented} of {datamodule.num_examples} training examples were never presented to the probe "
                f"during training (`limit_train_batches`, `max_steps`, `drop_last` without shuffling, or a pruned "
                f"data module): {consequence}"
            )
        return ScoreTable(
            oriented,
            raw=raw,
            labels=datamodule.labels if labels is None else labels,
            metadata={
                "num_examples": datamodule.num_examples,
                "dataset_fingerprint": datamodule.fingerprint(),
                "probe_epochs": self.epochs_recorded,
                "examples_never_presented": never_presented,
                "world_size": trainer.world_size,
                **extra_metadata,
            },
            columns=columns,
        )

    # Checkpointing --------------------------------------------------------------------------------
    @override
    def state_dict(self) -> dict[str, Any]:
        self._update_train_scores()  # a checkpoint taken mid-epoch holds every presentation so far
        return {
            "epochs_recorded": self.epochs_recorded,
            "scores": {name: score.state_dict() for name, score in self.scores.items()},
            "examples": None if self._ledger is None else self._ledger.state_dict(),
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.scores:
            self._apply_state(state_dict)
        else:  # restored before `setup` built the scores: apply it there
            self._pending_state = state_dict

    def _apply_state(self, state_dict: dict[str, Any]) -> None:
        self._restored = True
        self.epochs_recorded = state_dict.get("epochs_recorded", 0)
        for name, score_state in state_dict.get("scores", {}).items():
            if name in self.scores:
                self.scores[name].load_state_dict(score_state)
        self._ledger.load_state_dict(state_dict.get("examples"))
