"""Scorer: per-example scores of one model over one training set — what its training presentations and one
eval-mode scoring pass record, and the :class:`~datadiet.ScoreTable` they make.

:class:`~datadiet.DifficultyCallback` is a Scorer driven by a probe's ``fit``; :class:`~datadiet.PruneDuringFit`
holds its own and stops it at the pruning epoch. Both call the same public methods below.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import Tensor

from datadiet.adapter import Adapter, _second
from datadiet.callbacks._checks import check_first_batch, check_labels
from datadiet.callbacks._deferred_state import DeferredState
from datadiet.callbacks._scoring_pass import buffered, scoring_pass, update_from_buffer
from datadiet.callbacks.example_ledger import ExampleLedger
from datadiet.callbacks.presentation_buffer import PresentationBuffer
from datadiet.scores import PerExampleScore, get_score
from datadiet.scores.base import trainer_sync_min
from datadiet.scores.context import ScoreContext
from datadiet.store import ScoreTable


class Scorer(DeferredState):
    """Records the named scores of one model over a :class:`~datadiet.PruningDataModule`'s training set.

    Call :meth:`build` (at ``setup``), :meth:`start` (when training starts), :meth:`batch_start` /
    :meth:`batch_end` around each training step and :meth:`end_epoch` after each epoch while presentations
    should count, then :meth:`score` for the table (it runs the scoring pass of the eval-phase scores).

    Args:
        scores: names of registered scores (see :func:`datadiet.list_scores`).
        adapter: see :class:`~datadiet.Adapter`.
        scoring_batch_size: batch size of the scoring pass (default: the data module's eval batch size).
        score_options: per-score constructor arguments, e.g. ``{"grand": {"exact": True}}``.
        feature_module: name of the submodule whose *input* is an example's features.

    Raises:
        ValueError: no scores, an unknown score, a bad ``scoring_batch_size``, options of a score not named, or
            a score the adapter's loss does not define.

    Example::

        from lightning.pytorch import Callback

        class EL2NEachEpoch(Callback):  # the model's EL2N after every epoch, through the same public surface
            def __init__(self):
                self.scorer, self.tables = Scorer(["el2n"]), []

            def setup(self, trainer, pl_module, stage):
                self.scorer.build(trainer.datamodule)

            def on_train_start(self, trainer, pl_module):
                self.scorer.start(trainer, pl_module, "EL2NEachEpoch")

            def on_train_epoch_end(self, trainer, pl_module):
                self.tables.append(self.scorer.score(trainer, pl_module, eval_only=True))

        each_epoch = EL2NEachEpoch()
        Trainer(max_epochs=2, callbacks=[each_epoch]).fit(model, datamodule=PruningDataModule(train_set, batch_size=64))
        each_epoch.tables[-1]["el2n"]   # every example's EL2N after the second epoch
    """

    def __init__(
        self,
        scores: str | Sequence[str],
        adapter: Adapter | None = None,
        scoring_batch_size: int | None = None,
        score_options: Mapping[str, Mapping[str, Any]] | None = None,
        feature_module: str | None = None,
    ) -> None:
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
        #: The live statistics by name (empty until :meth:`build`).
        self.scores: dict[str, PerExampleScore] = {}
        #: Training epochs whose presentations the statistics hold.
        self.epochs_recorded = 0
        #: The training set's size the statistics were built for.
        self.num_examples: int | None = None
        self._train_scores: list[PerExampleScore] = []
        self._presentations = PresentationBuffer()
        self._ledger: ExampleLedger | None = None
        self._hook_handle: torch.utils.hooks.RemovableHandle | None = None
        self._capturing = False
        self._captured: Any = None
        self._batch_index: Tensor | None = None
        #: Whether the statistics were restored from a checkpoint (since the last :meth:`build`).
        self.restored = False

    @property
    def built(self) -> bool:
        """Whether :meth:`build` made the statistics (and :meth:`reset` did not forget them)."""
        return bool(self.scores)

    @property
    def bytes_per_example(self) -> int:
        """State bytes per training example for the chosen scores (excluding the score table itself)."""
        return sum(cls.bytes_per_example for cls in self.score_classes.values())

    @property
    def has_eval_scores(self) -> bool:
        """Whether :meth:`score` runs a scoring pass (an eval-phase score is recorded)."""
        return any(cls.phase == "eval" for cls in self.score_classes.values())

    def reset(self) -> None:
        """Forgets every statistic: the next :meth:`build` starts anew."""
        self.scores, self._train_scores = {}, []
        self._presentations = PresentationBuffer()
        self.epochs_recorded = 0
        self._ledger = None
        self.num_examples = None

    def build(self, datamodule: Any) -> None:
        """New statistics for ``datamodule``'s training set (then a state loaded before is applied).

        Raises:
            ValueError: label-based scores and labels the adapter cannot read.
        """
        check_labels(self.score_classes, self.adapter, datamodule)
        self.restored = False
        self.num_examples = datamodule.num_examples
        # with the default adapter and (x, y) items the labels are the data module's (the item's second element)
        record_labels = self.adapter.target_fn is not None and (
            self.adapter.target_fn is not _second or isinstance(datamodule.example_items(1)[0], Mapping)
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
        self._apply_pending_state()

    def drop(self, name: str) -> None:
        """Stops recording the score ``name`` (until the next :meth:`build`)."""
        del self.scores[name]
        self._train_scores = [score for score in self.scores.values() if score.phase == "train"]

    def to(self, device: torch.device) -> None:
        """Moves the statistics to ``device``."""
        for score in self.scores.values():
            score.to(device)
        if self._ledger is not None:
            self._ledger.to(device)

    def start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, who: str) -> None:
        """At training start: the statistics on the model's device, one forward of two examples checked as
        ``who`` reads batches, and the forward hook of the training-phase scores attached."""
        self.to(pl_module.device)
        check_first_batch(
            trainer,
            pl_module,
            self.adapter,
            who,
            scores=self.scores.values(),
            needs_loss=any(getattr(score, "from_example_loss", False) for score in self.scores.values()),
        )
        if self._train_scores and self._hook_handle is None:
            self._hook_handle = pl_module.register_forward_hook(self._capture_output)

    def stop(self) -> None:
        """Stops reading training presentations (folds what is buffered, detaches the forward hook)."""
        self._fold_presentations()
        if self._hook_handle is not None:
            self._hook_handle.remove()
            self._hook_handle = None

    def _capture_output(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        if self._capturing and self._captured is None:
            self._captured = output

    # Training presentations -----------------------------------------------------------------------
    def batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Before a training step: the batch's original indices marked presented, the capture armed."""
        index = trainer.datamodule.batch_original_index
        self._batch_index = None if index is None else index.to(pl_module.device, non_blocking=True)
        if self._batch_index is not None:
            self._ledger.mark_presented(self._batch_index)
        self._captured = None
        self._capturing = True

    def batch_end(self, batch: Any) -> None:
        """After a training step: the training-phase scores read the step's output."""
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
            self._fold_presentations()
        self._presentations.add(self._batch_index, logits, target)

    def _fold_presentations(self) -> None:
        """Hands the buffered presentations to the training-phase scores."""
        update_from_buffer(self._train_scores, self._presentations)

    def end_epoch(self, trainer: pl.Trainer) -> None:
        """After a training epoch: the training-phase scores merged over ranks and ended."""
        self._fold_presentations()
        minimum = trainer_sync_min(trainer)
        for score in self._train_scores:
            score.end_epoch(minimum)
        self.epochs_recorded += 1

    # The table ------------------------------------------------------------------------------------
    def score(self, trainer: pl.Trainer, pl_module: pl.LightningModule, eval_only: bool = False) -> ScoreTable:
        """The score table: presentations stop, the eval-phase scores read the model as it is now in one scoring
        pass, and every score is finalised.

        Args:
            eval_only: score again: fresh eval-phase scores of the model as it is now, alone in the table (the
                recorded statistics are left as they are).
        """
        self.stop()
        scores = self.scores
        if eval_only:
            scores = {
                name: self.score_classes[name](self.num_examples, **self.score_options.get(name, {}))
                for name, score in self.scores.items()
                if score.phase == "eval"
            }
            for score in scores.values():
                score.ignore_index = self.adapter.ignore_index
                score.to(pl_module.device)
        eval_scores = [score for score in scores.values() if score.phase == "eval"]
        if eval_scores:
            self.scoring_pass(trainer, pl_module, eval_scores)
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
        for score in scores.values():
            score.finalize(context)
        return self._build_table(trainer, scores, labels, self._ledger.never_presented(trainer))

    def scoring_pass(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, eval_scores: list[PerExampleScore]
    ) -> None:
        """One eval-mode pass of the model over the training set, updating ``eval_scores``."""
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
        self,
        trainer: pl.Trainer,
        scores: dict[str, PerExampleScore],
        labels: np.ndarray | None,
        never_presented: int | None,
    ) -> ScoreTable:
        oriented, raw, columns, extra_metadata = {}, {}, {}, {}
        for name, score in scores.items():
            oriented[name], raw[name] = score.compute()
            columns.update(score.columns())
            extra_metadata.update(score.metadata())
        datamodule = trainer.datamodule
        if never_presented:
            train_names = [name for name, score in scores.items() if score.phase == "train"]
            eval_names = [name for name, score in scores.items() if score.phase == "eval"]
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
    def state_dict(self) -> dict[str, Any]:
        """The statistics (every presentation so far: a checkpoint taken mid-epoch folds the buffer first)."""
        self._fold_presentations()
        return {
            "epochs_recorded": self.epochs_recorded,
            "scores": {name: score.state_dict() for name, score in self.scores.items()},
            "examples": None if self._ledger is None else self._ledger.state_dict(),
        }

    def _state_built(self) -> bool:
        return self.built

    def _apply_state(self, state_dict: dict[str, Any]) -> None:
        self.restored = True
        self.epochs_recorded = state_dict.get("epochs_recorded", 0)
        for name, score_state in state_dict.get("scores", {}).items():
            if name in self.scores:
                self.scores[name].load_state_dict(score_state)
        self._ledger.load_state_dict(state_dict.get("examples"))
