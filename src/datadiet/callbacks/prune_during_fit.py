"""PruneDuringFit: score with the real model after its first epochs, then finish the same fit on a kept subset."""

from __future__ import annotations

import time
from typing import Any, Mapping, Optional

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from typing_extensions import override

from datadiet.adapter import Adapter
from datadiet.callbacks._noisy_labels import (
    DEFAULT_NOISE_THRESHOLD,
    DEFAULT_NOISY_EXTRA_EPOCHS,
    NoiseDecision,
    auto_detector_applies,
    rescored_table,
    table_from_state,
    table_state,
    validate_extra_epochs,
    validate_noise_threshold,
)
from datadiet.callbacks.difficulty import DifficultyCallback
from datadiet.compute import scoring_pass_examples
from datadiet.detection import DETECTORS, LabelIssues
from datadiet.scores import get_score
from datadiet.selection import STRATEGIES, needs_scores, validate_keep_fraction
from datadiet.store import ScoreTable


class PruneDuringFit(Callback):
    r"""Prunes the training set in the middle of ``trainer.fit``, from the model's own early scores.

    The model trains ``after_epochs`` epochs on all data; then, at the end of that epoch, one eval-mode
    scoring pass of the current model over the whole training set computes ``score`` (through a
    :class:`DifficultyCallback` it drives, so the scores are exactly those a probe of the same model
    stopped at that epoch would give), :meth:`PruningDataModule.prune` keeps ``keep_fraction`` of the
    examples with ``strategy``, and the same fit continues on the kept subset from the next epoch on.
    No separate probe: the first epochs were useful training anyway, and EL2N is defined early in
    training (Paul et al. 2021). A strategy that needs no scores (``random``) runs no scoring pass, unless
    mislabelled examples are looked for.

    Hard, not wrong: with ``mislabelled="exclude"`` the same scoring pass also keeps each example's predicted
    class probabilities, a mislabel detector (``detector``, default cleanlab's confident learning ``both``)
    flags the likely label errors, and the strategy chooses ``keep_fraction`` of the training set among the
    others (the hardest examples by EL2N are first of all the mislabelled ones). ``mislabelled="keep"``
    flags without excluding. The flags are :attr:`label_issues` and the score table's ``mislabelled`` and
    ``predicted_label`` columns. The predictions are close to out-of-sample early in training, before the
    model memorises wrong labels: with the detector, ``after_epochs=3`` is a good choice on MNIST-1D.

    ``mislabelled="auto"`` (recommended) lets the detector's noise estimate decide. At most ``noise_threshold``
    (clean labels): the flags are recorded and the run is exactly that of ``mislabelled=None`` (same kept
    subset, same training). Above it (noisy labels): the model trains ``noisy_extra_epochs`` more epochs on all
    data, scores again, excludes the flagged examples, and keeps a fraction lowered so that the planned compute
    is unchanged (E = 15, after 2 epochs, keep 0.5 becomes 0.43 after 3); :attr:`noise_decision` says which. A
    run too short to pay for the extra epochs (the lowered fraction under half the planned one, or no epoch left;
    or no ``max_epochs``) waits fewer, down to none: then the flagged are excluded at ``after_epochs``. Where the
    detector does not apply (per-token labels of a language model), ``auto`` prunes as ``None``, saying why.

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
        mislabelled: ``None`` (default: no detection), ``keep`` (flag, keep them eligible), ``exclude``
            (never keep a flagged example), ``exclude_disagreeing`` (nor one whose predicted class differs) or
            ``auto`` (exclude only when the labels look noisy, see above).
        detector: a registered mislabel detector (:func:`datadiet.detection.list_detectors`).
        noise_threshold: with ``auto``, the noise estimate above which labels count as noisy (default 0.07).
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
        strategy_options: Optional[Mapping[str, Any]] = None,
        adapter: Optional[Adapter] = None,
        scoring_batch_size: Optional[int] = None,
        score_options: Optional[Mapping[str, Any]] = None,
        mislabelled: Optional[str] = None,
        detector: str = "both",
        noise_threshold: Optional[float] = None,
        noisy_extra_epochs: Optional[int] = None,
    ) -> None:
        super().__init__()
        if mislabelled not in (None, "keep", "exclude", "exclude_disagreeing", "auto"):
            raise ValueError(
                f"`mislabelled` can be None, keep, exclude, exclude_disagreeing or auto, got {mislabelled!r}"
            )
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
        self._difficulty: Optional[DifficultyCallback] = None
        if needs_scores(strategy) or mislabelled is not None:
            recorded = [score] if needs_scores(strategy) else []
            options = {score: dict(score_options)} if score_options and recorded else {}
            if mislabelled is not None:
                recorded = list(dict.fromkeys([*recorded, "label_issue"]))
                options.setdefault("label_issue", {}).setdefault("detector", detector)
            self._difficulty = DifficultyCallback(
                scores=recorded, adapter=adapter, scoring_batch_size=scoring_batch_size, score_options=options or None
            )
        self._state_key = self._generate_state_key(
            after_epochs=after_epochs,
            score=score,
            keep_fraction=self.keep_fraction,
            strategy=strategy,
            **({"mislabelled": mislabelled} if mislabelled is not None else {}),
        )
        #: Original indices of the kept examples once pruned (sorted), else ``None``.
        self.kept_indices: Optional[np.ndarray] = None
        #: The epoch (1-based count of epochs on all data) after which the data was pruned.
        self.pruned_after_epoch: Optional[int] = None
        #: Forward passes of the scoring pass, summed over ranks (0 before pruning, or without scores).
        self.scored_examples = 0
        #: Wall time of the scoring pass and the selection, in seconds.
        self.scoring_wall_time_s = 0.0
        self._score_table: Optional[ScoreTable] = None
        #: With ``mislabelled="auto"``, what the noise estimate decided at ``after_epochs`` (else ``None``).
        self.noise_decision: Optional[NoiseDecision] = None
        self._first_table: Optional[ScoreTable] = None  # auto, noisy: the first scoring pass's, until pruning
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
    def label_issues(self) -> Optional[LabelIssues]:
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
                + ("" if self._difficulty is not None else f" (strategy {self.strategy!r} uses none)")
            )
        return self._score_table

    # Hooks ---------------------------------------------------------------------------------------
    @override
    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
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
        self.noise_decision, self._first_table = None, None
        self._auto_detects = self.mislabelled == "auto"
        if self._difficulty is not None:
            self._difficulty.reset()  # each fit scores its own model from scratch
            self._difficulty.setup(trainer, pl_module, stage)

    @override
    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
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
        if self._auto_detects and self.noise_decision is None:
            self._auto_detects = auto_detector_applies(trainer, pl_module, self._difficulty, self._strategy_scores)
        if self._difficulty is not None:
            self._difficulty.on_train_start(trainer, pl_module)
        if trainer.current_epoch >= self._prune_epoch:  # resumed past the pruning point before it happened
            self._prune(trainer, pl_module)

    @override
    def on_train_batch_start(
        self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any, batch_idx: int
    ) -> None:
        if self._recording:
            self._difficulty.on_train_batch_start(trainer, pl_module, batch, batch_idx)

    @override
    def on_train_batch_end(
        self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._recording:
            self._difficulty.on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    @override
    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if self.pruned:
            return
        if self._recording:
            self._difficulty.on_train_epoch_end(trainer, pl_module)
        # `current_epoch` is still the 0-based index of the epoch that just ended
        if trainer.current_epoch + 1 >= self._prune_epoch:
            self._prune(trainer, pl_module)

    @property
    def _recording(self) -> bool:
        """Whether training presentations feed the scores (until the first scoring pass)."""
        return self._difficulty is not None and not self.pruned and self.noise_decision is None

    @property
    def _prune_epoch(self) -> int:
        """The epoch count on all data after which the next scoring pass runs."""
        return self.after_epochs if self.noise_decision is None else self.noise_decision.prune_epoch

    @override
    def on_train_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if self.pruned:
            return
        if self._difficulty is not None and self._difficulty._hook_handle is not None:
            self._difficulty._hook_handle.remove()
            self._difficulty._hook_handle = None
        rank_zero_warn(
            f"PruneDuringFit never pruned: training ended after {trainer.current_epoch} epoch(s), before "
            f"`after_epochs={self.after_epochs}`; the model trained on all data"
        )

    # Pruning -------------------------------------------------------------------------------------
    def _prune(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        datamodule = trainer.datamodule
        start = time.perf_counter()
        handling = "keep" if self.mislabelled in (None, "auto") else self.mislabelled  # auto: decided below
        keep_fraction = self.keep_fraction
        if self._difficulty is not None:
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
                    )
                    if self.noise_decision.noisy and self.noise_decision.extra_epochs:
                        self._first_table = table
                        self.scoring_wall_time_s += time.perf_counter() - start
                        rank_zero_info(
                            f"PruneDuringFit: likely mislabelled {self.noise_decision.estimate:.1%} after "
                            f"{self.after_epochs} epoch(s), above noise_threshold={self.noise_threshold}: "
                            f"{self.noise_decision.extra_epochs} more epoch(s) on all data before the detector runs again"
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
            f"PruneDuringFit: after {self.pruned_after_epoch} epoch(s) on all data, kept {len(kept):,} of "
            f"{datamodule.num_examples:,} examples ({self.score} / {self.strategy}) for the remaining epochs"
            + (
                ""
                if issues is None
                else f"; likely mislabelled {issues.num_flagged:,} ({issues.noise_rate_estimate:.1%}): "
                f"{'kept' if handling == 'keep' else 'excluded'}"
            )
            + ("" if self.noise_decision is None else f"; {self.noise_decision.describe()}")
        )

    def _score(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> ScoreTable:
        """The scoring pass (through the driven :class:`DifficultyCallback`, which folds the presentations first).
        The second pass of ``auto`` on noisy labels recomputes the eval-phase scores only: the training-phase
        ones keep what the first ``after_epochs`` epochs recorded."""
        difficulty = self._difficulty
        second = self.noise_decision is not None
        saved = difficulty.scores, difficulty._train_scores
        if second:
            num_examples = trainer.datamodule.num_examples
            difficulty.scores = {
                name: difficulty.score_classes[name](num_examples, **difficulty.score_options.get(name, {}))
                for name, score in saved[0].items()
                if score.phase == "eval"
            }
            difficulty._train_scores = []
            for score in difficulty.scores.values():
                score.to(pl_module.device)
        try:
            difficulty.on_train_end(trainer, pl_module)
        finally:
            difficulty.scores, difficulty._train_scores = saved
        table = difficulty.score_table
        table.metadata["pruned_after_epoch"] = trainer.current_epoch + 1
        if any(score.phase == "eval" for score in saved[0].values()):
            self.scored_examples += scoring_pass_examples(trainer.datamodule.num_examples, trainer.world_size)
        return table

    @staticmethod
    def _reload_train_loader(trainer: "pl.Trainer") -> None:
        # The fit loop rebuilds its train loader at the next epoch start when it has none; this is what
        # `reload_dataloaders_every_n_epochs` does, for one epoch only.
        trainer.fit_loop._combined_loader = None

    # Checkpointing -------------------------------------------------------------------------------
    @override
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "kept_indices": None
            if self.kept_indices is None
            else torch.from_numpy(np.asarray(self.kept_indices, dtype=np.int64)),
            "pruned_after_epoch": self.pruned_after_epoch,
            "scored_examples": self.scored_examples,
            "scoring_wall_time_s": self.scoring_wall_time_s,
        }
        if self._score_table is not None:
            state["score_table"] = table_state(self._score_table)
        if self.noise_decision is not None:
            state["noise_decision"] = self.noise_decision.as_dict()
            state["first_table"] = table_state(self._first_table)
        if self._difficulty is not None and not self.pruned:
            state["difficulty"] = self._difficulty.state_dict()
        return state

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        kept = state_dict.get("kept_indices")  # a tensor, or a list in older checkpoints
        self.kept_indices = (
            None if kept is None else np.array(kept.numpy() if isinstance(kept, torch.Tensor) else kept, dtype=np.int64)
        )
        self.pruned_after_epoch = state_dict.get("pruned_after_epoch")
        self.scored_examples = int(state_dict.get("scored_examples", 0))
        self.scoring_wall_time_s = float(state_dict.get("scoring_wall_time_s", 0.0))
        self._score_table = table_from_state(state_dict.get("score_table"))
        decision = state_dict.get("noise_decision")
        self.noise_decision = None if decision is None else NoiseDecision.from_dict(decision)
        self._first_table = table_from_state(state_dict.get("first_table"))
        if self._difficulty is not None and "difficulty" in state_dict:
            self._difficulty.load_state_dict(state_dict["difficulty"])
