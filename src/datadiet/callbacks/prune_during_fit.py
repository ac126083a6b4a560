"""PruneDuringFit: score with the real model after its first epochs, then finish the same fit on a kept subset."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from typing_extensions import override

from datadiet.adapter import Adapter
from datadiet.callbacks._resume_checks import changed_arguments, refusal, saved_arguments, states_of
from datadiet.callbacks.noisy_labels import (
    DEFAULT_MISLABELLED,
    DEFAULT_NOISE_THRESHOLD,
    DEFAULT_NOISY_EXTRA_EPOCHS,
    NoiseDecision,
    auto_detector_applies,
    class_counts,
    rescored_table,
    table_from_state,
    table_state,
    validate_extra_epochs,
    validate_noise_threshold,
)
from datadiet.callbacks.scorer import Scorer
from datadiet.compute import scoring_pass_examples
from datadiet.data.datamodule import MISLABELLED_HANDLING
from datadiet.detection import DEFAULT_DETECTOR, DETECTORS, LabelIssues
from datadiet.scores import get_score
from datadiet.selection import STRATEGIES, needs_scores, validate_keep_fraction
from datadiet.store import ScoreTable

#: Arguments a resumed fit may change while nothing is decided yet: they are read at pruning only.
_CHOSEN_AT_PRUNING = frozenset(
    {"keep_fraction", "strategy", "class_balanced", "seed", "strategy_options", "noise_threshold", "noisy_extra_epochs"}
)

#: What the log says became of the flagged examples, by ``mislabelled`` handling.
_HANDLED = {"keep": "kept", "relabel": "the confident ones kept, relabelled", "downweight": "kept, down-weighted"}


class PruneDuringFit(Callback):
    r"""Prunes the training set in the middle of ``trainer.fit``, from the model's own early scores.

    The model trains ``after_epochs`` epochs on all data; then, at the end of that epoch, one eval-mode
    scoring pass of the current model over the whole training set computes ``score`` (through the
    :class:`~datadiet.callbacks.scorer.Scorer` a :class:`DifficultyCallback` records with, so the scores are
    exactly those a probe of the same model stopped at that epoch would give), :meth:`PruningDataModule.prune`
    keeps ``keep_fraction`` of the examples with ``strategy``, and the same fit continues on the kept subset from
    the next epoch on.
    No separate probe: the first epochs were useful training anyway, and EL2N is defined early in
    training (Paul et al. 2021). A strategy that needs no scores (``random``) runs no scoring pass, unless
    mislabelled examples are looked for.

    Hard, not wrong: with ``mislabelled="exclude"`` the same scoring pass also keeps each example's predicted
    class probabilities, a mislabel detector (``detector``, default ``below_chance``)
    flags the likely label errors, and the strategy chooses ``keep_fraction`` of the training set among the
    others (the hardest examples by EL2N are first of all the mislabelled ones). ``mislabelled="keep"``
    flags without excluding. The flags are :attr:`label_issues` and the score table's ``mislabelled`` and
    ``predicted_label`` columns. The predictions are close to out-of-sample early in training, before the
    model memorises wrong labels: with the detector, ``after_epochs=3`` is a good choice on MNIST-1D.

    ``mislabelled="auto"`` (recommended) excludes the flagged examples only when the labels look noisy; what it
    does and its threshold: docs/noisy_labels.md. :attr:`noise_decision` says what it decided.

    Cost: the scoring pass is :attr:`scored_examples` forward passes of the model (global, DDP padding
    included), to be counted with :class:`datadiet.compute.ComputeAccount` (``in_run_scored``); the
    training presentations before and after pruning are ordinary ones.

    Under DDP every rank scores its shard, the scores are merged as the callback's statistics always
    are, and rank 0's kept subset is broadcast, so every rank trains on the same subset. The decision
    (whether pruning happened, the kept indices and the scores) goes into checkpoints: a run resumed
    after pruning continues on the same subset; one resumed from a checkpoint saved after epoch
    ``after_epochs`` but before the pruning (e.g. at validation end) prunes when training restarts,
    from the same weights. Learning-rate schedules defined over epochs (the app's cosine) are unaffected;
    step-based ones sized from ``trainer.estimated_stepping_batches`` at the start see the full-data count.

    Args:
        after_epochs: epochs on all data before the scoring pass (a positive integer below ``max_epochs``).
        score: a registered score (``el2n``, ``margin``, ``forgetting``, ...); training-phase scores read
            the first ``after_epochs`` epochs' presentations.
        keep_fraction: fraction of the training set kept, in (0, 1].
        strategy: a registered selection strategy (``hard``, ``easy``, ``random``, ``ccs``, ...).
        class_balanced: keep the same fraction of every class.
        seed: seeds ties and random choices of the selection.
        strategy_options: extra keyword arguments of the strategy (e.g. ``{"beta": 0.1}`` for ``ccs``).
        adapter: see :class:`~datadiet.Adapter` (batches that are not ``(x, y)``).
        scoring_batch_size: batch size of the scoring pass (default: the data module's eval batch size).
        score_options: constructor arguments of the score, e.g. ``{"exact": True}`` for ``grand``.
        mislabelled: ``auto`` (default, as the app's: exclude only when the labels look noisy, keep all where the
            regime guard says static pruning cannot pay, see above), ``None`` (no detection), ``keep`` (flag, keep
            them eligible), ``exclude`` (never keep a flagged example), ``exclude_disagreeing`` (nor one whose
            predicted class differs), ``relabel`` (keep the confidently predicted ones, trained with the predicted
            class) or ``downweight`` (keep them, presented in half the epochs): :mod:`datadiet.data.flagged`.
        detector: a registered mislabel detector (:func:`datadiet.detection.list_detectors`).
        noise_threshold: with ``auto``, the noise estimate above which labels count as noisy (default:
            docs/noisy_labels.md).
        noisy_extra_epochs: with ``auto``, epochs on all data before the detector runs again on noisy labels
            (default 1).

    Raises:
        ValueError: a bad ``after_epochs``, ``keep_fraction``, ``mislabelled``, ``noise_threshold`` or
            ``noisy_extra_epochs`` (or either without ``auto``), an unknown score, strategy or detector; at fit
            start, a data module that is already pruned or ``after_epochs >= max_epochs``.

    Example::

        dm = PruningDataModule(train_set, val_set, batch_size=128)
        prune = PruneDuringFit(after_epochs=2, score="el2n", keep_fraction=0.5)
        Trainer(max_epochs=10, callbacks=[prune]).fit(model, datamodule=dm)   # epochs 3-10 on the kept half
        prune.kept_indices, prune.score_table["el2n"]
    """

    def __init__(
        self,
        after_epochs: int = 2,
        score: str = "el2n",
        keep_fraction: float = 0.5,
        strategy: str = "hard",
        class_balanced: bool = False,
        seed: int = 0,
        strategy_options: Mapping[str, Any] | None = None,
        adapter: Adapter | None = None,
        scoring_batch_size: int | None = None,
        score_options: Mapping[str, Any] | None = None,
        mislabelled: str | None = DEFAULT_MISLABELLED,
        detector: str = DEFAULT_DETECTOR,
        noise_threshold: float | None = None,
        noisy_extra_epochs: int | None = None,
    ) -> None:
        super().__init__()
        if mislabelled is not None and mislabelled not in (*MISLABELLED_HANDLING, "auto"):
            choices = ", ".join(MISLABELLED_HANDLING)
            raise ValueError(f"`mislabelled` can be None, {choices} or auto, got {mislabelled!r}")
        for name, value in (("noise_threshold", noise_threshold), ("noisy_extra_epochs", noisy_extra_epochs)):
            if value is not None and mislabelled != "auto":
                raise ValueError(f"`{name}={value!r}` applies only with mislabelled='auto', got {mislabelled!r}")
        self.noise_threshold = validate_noise_threshold(
            DEFAULT_NOISE_THRESHOLD if noise_threshold is None else noise_threshold
        )
        self.noisy_extra_epochs = validate_extra_epochs(
            DEFAULT_NOISY_EXTRA_EPOCHS if noisy_extra_epochs is None else noisy_extra_epochs
        )
        DETECTORS.get(detector)
        if mislabelled == "auto" and (
            not needs_scores(strategy) or (adapter is not None and not adapter.class_probabilities)
        ):
            mislabelled = None  # as the app: no scores to add the detector to, or a loss without class probabilities
        self.mislabelled = mislabelled
        self.detector = detector
        if isinstance(after_epochs, bool) or not isinstance(after_epochs, int) or after_epochs < 1:
            raise ValueError(f"`after_epochs` must be a positive integer (epochs before pruning), got {after_epochs!r}")
        self.after_epochs = after_epochs
        self.keep_fraction = validate_keep_fraction(keep_fraction)
        STRATEGIES.get(strategy)
        get_score(score)
        self.score = score
        self.strategy = strategy
        self.class_balanced = bool(class_balanced)
        self.seed = int(seed)
        self.strategy_options = dict(strategy_options or {})
        self.score_options = dict(score_options or {})
        self._scorer: Scorer | None = None
        if needs_scores(strategy) or mislabelled is not None:
            recorded = [score] if needs_scores(strategy) else []
            options = {score: dict(score_options)} if score_options and recorded else {}
            if mislabelled is not None:
                recorded = list(dict.fromkeys([*recorded, "label_issue"]))
                options.setdefault("label_issue", {}).setdefault("detector", detector)
            self._scorer = Scorer(
                recorded, adapter=adapter, scoring_batch_size=scoring_batch_size, score_options=options or None
            )
        self._state_key = self._generate_state_key(
            after_epochs=after_epochs,
            score=score,
            keep_fraction=self.keep_fraction,
            strategy=strategy,
            **({"mislabelled": mislabelled} if mislabelled is not None else {}),
        )
        #: Original indices of the kept examples once pruned (sorted), else ``None``.
        self.kept_indices: np.ndarray | None = None
        #: The epoch (1-based count of epochs on all data) after which the data was pruned.
        self.pruned_after_epoch: int | None = None
        #: Forward passes of the scoring pass, summed over ranks (0 before pruning, or without scores).
        self.scored_examples = 0
        #: Wall time of the scoring pass and the selection, in seconds.
        self.scoring_wall_time_s = 0.0
        self._score_table: ScoreTable | None = None
        #: With ``mislabelled="auto"``, what the noise estimate decided at ``after_epochs`` (else ``None``).
        self.noise_decision: NoiseDecision | None = None
        self._first_table: ScoreTable | None = None  # auto, noisy: the first scoring pass's, until pruning
        self._presented_before_pruning = 0  # training presentations on this rank until pruning
        self._smoke_run = False  # `fast_dev_run`: checks only, no pruning
        self._auto_detects = mislabelled == "auto"  # False where the detector does not apply (see `setup`)
        self._strategy_scores = needs_scores(strategy)

    @property
    @override
    def state_key(self) -> str:
        return self._state_key

    @property
    def pruned(self) -> bool:
        """Whether the training set has been pruned in this fit (or in the run it resumed)."""
        return self.kept_indices is not None

    @property
    def label_issues(self) -> LabelIssues | None:
        """The mislabel detector's flags once pruned with ``mislabelled`` set, else ``None``."""
        table = self._score_table
        if table is None or "mislabelled" not in table.columns:
            return None
        return LabelIssues(
            flagged=table.columns["mislabelled"].astype(bool),
            predicted_label=table.columns["predicted_label"].astype(np.int64),
            score=table.raw("label_issue"),
            noise_rate_estimate=float(table.metadata.get("label_noise_estimate", 0.0)),
            detector=str(table.metadata.get("label_issue_detector", self.detector)),
        )

    @property
    def score_table(self) -> ScoreTable:
        """The scores the subset was chosen from (a :class:`ScoreTable` over the whole training set)."""
        if self._score_table is None:
            raise RuntimeError(
                "no scores yet: `score_table` is available once the data was pruned"
                + ("" if self._scorer is not None else f" (strategy {self.strategy!r} uses none)")
            )
        return self._score_table

    # Hooks ---------------------------------------------------------------------------------------
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "prune"):
            raise RuntimeError(
                "PruneDuringFit prunes a PruningDataModule: pass the data as "
                "`trainer.fit(model, datamodule=PruningDataModule(train_set, ...))`"
            )
        if datamodule.kept_indices is not None:
            raise ValueError(
                f"PruneDuringFit chooses from the whole training set, but the data module is already pruned to "
                f"{len(datamodule.kept_indices):,} of {datamodule.num_examples:,} examples; call "
                "`datamodule.reset_pruning()` first"
            )
        # a new fit starts unpruned; a resumed one gets its decision back from `load_state_dict`, called after `setup`
        self.kept_indices, self.pruned_after_epoch, self._score_table = None, None, None
        self.scored_examples, self.scoring_wall_time_s = 0, 0.0
        self._presented_before_pruning = 0
        self.noise_decision, self._first_table = None, None
        self._auto_detects = self.mislabelled == "auto"
        if self._scorer is not None:
            self._scorer.reset()  # each fit scores its own model from scratch
            self._scorer.build(datamodule)

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._smoke_run = bool(trainer.fast_dev_run)
        if self._smoke_run:  # Lightning's smoke test: one batch, so no epoch is left to train on a kept subset
            if self._scorer is not None:
                self._scorer.start(trainer, pl_module, "PruneDuringFit")
            rank_zero_info(
                f"PruneDuringFit: `fast_dev_run` trains {int(trainer.fast_dev_run)} batch(es) of one epoch: the "
                "checks of the data and the model's outputs ran, pruning is skipped (it needs "
                f"after_epochs={self.after_epochs} epoch(s) on all data, then more epochs)"
            )
            return
        max_epochs = trainer.max_epochs
        if max_epochs is not None and max_epochs >= 0 and self.after_epochs >= max_epochs:
            raise ValueError(
                f"`after_epochs={self.after_epochs}` leaves no epoch to train on the kept subset with "
                f"`max_epochs={max_epochs}`: use after_epochs < max_epochs"
            )
        if self.pruned:  # resumed after pruning: the data module's checkpointed subset must be this one
            if self._score_table is not None and self._score_table.labels is None:
                self._score_table.labels = trainer.datamodule.labels
            if not np.array_equal(trainer.datamodule.kept_indices, self.kept_indices):
                trainer.datamodule.kept_indices = self.kept_indices.copy()
                self._reload_train_loader(trainer)
            return
        if trainer.datamodule.kept_indices is not None:  # restored pruned, without this callback's decision
            raise ValueError(
                f"the checkpoint's data module is pruned to {len(trainer.datamodule.kept_indices):,} of "
                f"{trainer.datamodule.num_examples:,} examples, but it holds no PruneDuringFit state of these "
                "arguments: scoring now would rank the examples it dropped (never scored) as the hardest. Resume "
                "with the callbacks and arguments of the checkpoint's fit, or start a fresh fit (no `ckpt_path`)"
            )
        if self._auto_detects and self.noise_decision is None:
            self._auto_detects = auto_detector_applies(trainer, pl_module, self._scorer, self._strategy_scores)
        if self._scorer is not None:
            self._scorer.start(trainer, pl_module, "PruneDuringFit")
        if trainer.current_epoch >= self._prune_epoch:  # resumed past the pruning point before it happened
            self._prune(trainer, pl_module)

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if not self.pruned:
            index = trainer.datamodule.batch_original_index
            self._presented_before_pruning += 0 if index is None else len(index)
        if self._recording:
            self._scorer.batch_start(trainer, pl_module)

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._recording:
            self._scorer.batch_end(batch)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.pruned or self._smoke_run:
            return
        if self._recording:
            self._scorer.end_epoch(trainer)
        # `current_epoch` is still the 0-based index of the epoch that just ended
        if trainer.current_epoch + 1 >= self._prune_epoch:
            self._prune(trainer, pl_module)

    @property
    def _recording(self) -> bool:
        """Whether training presentations feed the scores (until the first scoring pass)."""
        return self._scorer is not None and not self.pruned and self.noise_decision is None

    @property
    def _prune_epoch(self) -> int:
        """The epoch count on all data after which the next scoring pass runs."""
        return self.after_epochs if self.noise_decision is None else self.noise_decision.prune_epoch

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.pruned:
            return
        if self._scorer is not None:
            self._scorer.stop()
        if self._smoke_run:
            return
        rank_zero_warn(
            f"PruneDuringFit never pruned: training ended after {trainer.current_epoch} epoch(s), before "
            f"`after_epochs={self.after_epochs}`; the model trained on all data"
        )

    # Pruning -------------------------------------------------------------------------------------
    def _prune(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        datamodule = trainer.datamodule
        start = time.perf_counter()
        presented = self._presented_before_pruning
        if trainer.world_size > 1:  # every rank prunes at the same epoch end: a collective on all of them
            presented = torch.tensor(presented, device=pl_module.device)
            presented = int(trainer.strategy.reduce(presented, reduce_op="sum").item())
        handling = "keep" if self.mislabelled in (None, "auto") else self.mislabelled  # auto: decided below
        keep_fraction = self.keep_fraction
        if self._scorer is not None:
            table = self._score(trainer, pl_module)
            if self._auto_detects:
                if self.noise_decision is None:  # decided from the gathered table: the same on every rank
                    self.noise_decision = NoiseDecision.make(
                        float(table.metadata["label_noise_estimate"]),
                        self.noise_threshold,
                        self.keep_fraction,
                        trainer.max_epochs,
                        self.after_epochs,
                        self.noisy_extra_epochs,
                        class_counts(datamodule.labels),
                        confident_learning_estimate=table.metadata.get("confident_learning_noise_estimate"),
                    )
                    if self.noise_decision.noisy and self.noise_decision.extra_epochs:
                        self._first_table = table
                        self.scoring_wall_time_s += time.perf_counter() - start
                        rank_zero_info(
                            f"PruneDuringFit: likely mislabelled {self.noise_decision.estimate:.1%} after "
                            f"{self.after_epochs} epoch(s), above noise_threshold={self.noise_threshold}: "
                            f"{self.noise_decision.extra_epochs} more epoch(s) {self._trained_on(trainer, None)} "
                            "before the detector runs again"
                        )
                        return
                else:  # the second scoring pass of noisy labels
                    table = rescored_table(self._first_table, table, self.noise_decision.prune_epoch)
                    self._first_table = None
                table.metadata["mislabelled_auto"] = self.noise_decision.as_dict()
                handling, keep_fraction = self.noise_decision.handling, self.noise_decision.keep_fraction
        else:
            table = np.zeros(datamodule.num_examples)  # the strategy ignores the scores
        kept = datamodule.prune(
            table,
            score=self.score if not isinstance(table, ScoreTable) or self.score in table else "label_issue",
            mislabelled=handling,
            keep_fraction=keep_fraction,
            strategy=self.strategy,
            class_balanced=self.class_balanced,
            seed=self.seed,
            **self.strategy_options,
        )
        if trainer.world_size > 1:  # every rank chose from the same merged scores; rank 0's choice is the record
            kept = np.asarray(trainer.strategy.broadcast(kept, src=0), dtype=np.int64)
            datamodule.kept_indices = kept.copy()
        self.kept_indices = kept
        self.pruned_after_epoch = trainer.current_epoch + 1
        self._score_table = table if isinstance(table, ScoreTable) else None
        self.scoring_wall_time_s += time.perf_counter() - start
        self._reload_train_loader(trainer)
        issues = self.label_issues
        rank_zero_info(
            f"PruneDuringFit: after {self.pruned_after_epoch} epoch(s) {self._trained_on(trainer, presented)}, kept "
            f"{len(kept):,} of "
            f"{datamodule.num_examples:,} examples ({self.score} / {self.strategy}) for the remaining epochs"
            + (
                ""
                if issues is None
                else f"; likely mislabelled {issues.num_flagged:,} ({issues.noise_rate_estimate:.1%}): "
                f"{_HANDLED.get(handling, 'excluded')}"
            )
            + ("" if self.noise_decision is None else f"; {self.noise_decision.describe()}")
        )

    def _trained_on(self, trainer: pl.Trainer, presented: int | None) -> str:
        """What the epochs before pruning trained on, in words: all data, or what dynamic pruning presented of it."""
        datamodule = trainer.datamodule
        if datamodule.epoch_subset_fn is None:
            return "on all data"
        if presented is None:
            return "on all data less what dynamic pruning skips"
        epochs = trainer.current_epoch + 1
        return (
            f"on all data less what dynamic pruning skipped ({presented:,} presentations of "
            f"{datamodule.num_examples:,} examples over {epochs} epoch(s), "
            f"{presented / max(1, datamodule.num_examples * epochs):.0%} of all data)"
        )

    def _score(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> ScoreTable:
        """The scoring pass. The second pass of ``auto`` on noisy labels recomputes the eval-phase scores only:
        the training-phase ones keep what the first ``after_epochs`` epochs recorded."""
        table = self._scorer.score(trainer, pl_module, eval_only=self.noise_decision is not None)
        table.metadata["pruned_after_epoch"] = trainer.current_epoch + 1
        if self._scorer.has_eval_scores:
            self.scored_examples += scoring_pass_examples(trainer.datamodule.num_examples, trainer.world_size)
        return table

    @staticmethod
    def _reload_train_loader(trainer: pl.Trainer) -> None:
        # The fit loop rebuilds its train loader at the next epoch start when it has none; this is what
        # `reload_dataloaders_every_n_epochs` does, for one epoch only.
        trainer.fit_loop._combined_loader = None

    # Checkpointing -------------------------------------------------------------------------------
    @override
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "kept_indices": (
                None if self.kept_indices is None else torch.from_numpy(np.asarray(self.kept_indices, dtype=np.int64))
            ),
            "pruned_after_epoch": self.pruned_after_epoch,
            "scored_examples": self.scored_examples,
            "scoring_wall_time_s": self.scoring_wall_time_s,
            "presented_before_pruning": self._presented_before_pruning,
            "arguments": self.arguments,
        }
        if self._score_table is not None:
            state["score_table"] = table_state(self._score_table)
        if self.noise_decision is not None:
            state["noise_decision"] = self.noise_decision.as_dict()
            state["first_table"] = table_state(self._first_table)
        if self._scorer is not None and not self.pruned:
            state["difficulty"] = self._scorer.state_dict()
        return state

    @property
    def arguments(self) -> dict[str, Any]:
        """The arguments that decide what this callback prunes (saved in checkpoints, compared when resuming)."""
        return {
            "after_epochs": self.after_epochs,
            "score": self.score,
            "keep_fraction": self.keep_fraction,
            "strategy": self.strategy,
            "class_balanced": self.class_balanced,
            "seed": self.seed,
            "strategy_options": self.strategy_options,
            "score_options": self.score_options,
            "mislabelled": self.mislabelled,
            "detector": self.detector,
            "noise_threshold": self.noise_threshold,
            "noisy_extra_epochs": self.noisy_extra_epochs,
        }

    @override
    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # Lightning finds the state by `state_key`, which holds some of the arguments: a state saved with others
        # would be silently left out. Found here, it is loaded (and refused below unless it can be honoured).
        for key, state in states_of(checkpoint, "PruneDuringFit", self.state_key).items():
            self._load(state, saved_arguments(key, state))
            return

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._load(state_dict, state_dict.get("arguments"))

    def _load(self, state_dict: dict[str, Any], saved: Mapping[str, Any] | None) -> None:
        changed = changed_arguments(saved or {}, self.arguments)
        kept = state_dict.get("kept_indices")
        decided = kept is not None or state_dict.get("noise_decision") is not None
        # before the decision, the selection's arguments (and auto's) are honoured exactly: nothing was chosen yet
        # a strategy that needs scores where the checkpoint's needed none has no statistics of the first epochs
        scores_changed = "strategy" in changed and needs_scores(changed["strategy"][0]) != self._strategy_scores
        if changed and (decided or scores_changed or not set(changed) <= _CHOSEN_AT_PRUNING):
            if kept is not None:
                what = (
                    f"The checkpoint's fit pruned to {len(kept):,} examples after epoch "
                    f"{state_dict.get('pruned_after_epoch')} with its arguments."
                )
            elif decided:
                what = "The checkpoint's fit decided on its labels' noise with its arguments."
            else:
                what = "The checkpoint's statistics were recorded for its arguments."
            raise refusal("PruneDuringFit", changed, what)
        kept = state_dict.get("kept_indices")  # a tensor, or a list in older checkpoints
        if isinstance(kept, torch.Tensor):
            kept = kept.numpy()
        self.kept_indices = None if kept is None else np.array(kept, dtype=np.int64)
        self.pruned_after_epoch = state_dict.get("pruned_after_epoch")
        self.scored_examples = int(state_dict.get("scored_examples", 0))
        self.scoring_wall_time_s = float(state_dict.get("scoring_wall_time_s", 0.0))
        self._score_table = table_from_state(state_dict.get("score_table"))
        decision = state_dict.get("noise_decision")
        self.noise_decision = None if decision is None else NoiseDecision.from_dict(decision)
        self._first_table = table_from_state(state_dict.get("first_table"))
        self._presented_before_pruning = int(state_dict.get("presented_before_pruning", 0))
        if self._scorer is not None and "difficulty" in state_dict:
            self._scorer.load_state_dict(state_dict["difficulty"])
