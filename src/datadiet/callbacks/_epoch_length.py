"""Lightning bookkeeping for training epochs whose length changes from one epoch to the next.

Used by :class:`~datadiet.DynamicPruning`: Lightning reads the training loader's length once, when it
loads the loader; these helpers redo what it computes then, and keep step-interval learning-rate
schedules on the full-data curve.
"""

from __future__ import annotations

import math
from typing import Optional

import lightning.pytorch as pl
from lightning.fabric.utilities.data import sized_len
from lightning.pytorch.trainer.connectors.data_connector import _parse_num_batches
from lightning.pytorch.trainer.states import RunningStage


def epoch_batches(num_batches: int, trainer: "pl.Trainer") -> int:
    """The batches Lightning runs of a loader of ``num_batches`` (``limit_train_batches`` applied)."""
    return _parse_num_batches(RunningStage.TRAINING, num_batches, trainer.limit_train_batches)


def refresh_epoch_length(trainer: "pl.Trainer") -> None:
    """What Lightning computes when it (re)loads the training loader, for an epoch whose length changed.

    Lightning reads the loader's length once; a shorter epoch would otherwise skip its validation check
    (due at the full epoch's last batch), show a wrong progress total, and a resumed run would keep the
    shorter length (and ``limit_train_batches``' share of it) for every later epoch.
    """
    fit_loop = trainer.fit_loop
    combined = fit_loop._combined_loader
    if combined is None:
        return
    limits = [epoch_batches(sized_len(loader) or float("inf"), trainer) for loader in combined.flattened]
    combined.limits = limits  # read when the epoch's iterator is created
    # the data module's training loader is one DataLoader (`max(limits)` is Lightning's length of a
    # "max_size_cycle" combination); the combined loader's own length is its last iterator's
    batches = fit_loop.max_batches = max(limits)
    if (
        isinstance(trainer.val_check_interval, float)
        and trainer.val_check_batch is not None
        and trainer.val_check_batch != float("inf")
        and batches != float("inf")
    ):
        trainer.val_check_batch = max(1, int(batches * trainer.val_check_interval))


class ScheduleStretch:
    """Steps step-interval schedulers so that a pruned epoch of ``s`` optimizer steps advances them ``S``.

    After the ``k``-th optimizer step of the epoch a scheduler has been stepped ``⌊k·S/s⌋`` times in all
    (Lightning steps it once; the rest here), so it reaches ``S`` at the epoch's last step.

    Under manual optimisation ``training_step`` steps its schedulers itself: each scheduler of
    ``configure_optimizers`` declared ``"interval": "step"`` that advanced during the ``k``-th batch of an
    epoch of ``s`` batches (``S`` on all data) is advanced ``⌊k·S/s⌋ − ⌊(k−1)·S/s⌋ − 1`` more times per step it
    took, so a schedule stepped once per batch ends at its last step. A scheduler declared with the epoch
    interval that advances before an epoch's last batch is refused (it would end early, silently).
    """

    def __init__(self) -> None:
        self.full_steps = 0
        self.epoch_steps = 0
        self.step_at_epoch_start = 0
        self.last_step = 0
        self._positions: list[int] = []  # manual optimisation: each scheduler's `last_epoch` at batch start

    @staticmethod
    def check(trainer: "pl.Trainer") -> None:
        for config in trainer.lr_scheduler_configs:
            if config.interval == "step" and not config.reduce_on_plateau and config.frequency != 1:
                raise ValueError(
                    f"`stretch_step_schedules` steps step-interval schedulers once per optimizer step, but "
                    f"{type(config.scheduler).__name__} has frequency={config.frequency}; use frequency 1, an "
                    "epoch-interval schedule, or DynamicPruning(stretch_step_schedules=False)"
                )

    def start_epoch(self, global_step: int) -> None:
        self.step_at_epoch_start = self.last_step = global_step

    def set_lengths(self, trainer: "pl.Trainer", full_batches: Optional[int]) -> None:
        batches = trainer.num_training_batches
        accumulate = trainer.accumulate_grad_batches
        self.last_step = trainer.global_step
        if full_batches is None or batches == float("inf") or not batches:
            self.full_steps = self.epoch_steps = 0
        else:
            self.full_steps = math.ceil(full_batches / accumulate)
            self.epoch_steps = math.ceil(batches / accumulate)

    def _extra_steps(self, k: int) -> int:
        """Scheduler steps owed after the ``k``-th of ``epoch_steps`` steps, beyond the one it took."""
        if not self.epoch_steps or self.full_steps <= self.epoch_steps or not 0 < k <= self.epoch_steps:
            return 0
        return (k * self.full_steps) // self.epoch_steps - ((k - 1) * self.full_steps) // self.epoch_steps - 1

    def before_batch(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if not pl_module.automatic_optimization:
            self._positions = [config.scheduler.last_epoch for config in trainer.lr_scheduler_configs]

    def after_batch(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch_idx: int) -> None:
        if not pl_module.automatic_optimization:
            self._after_manual_batch(trainer, pl_module, batch_idx)
            return
        step = trainer.global_step
        if step == self.last_step:
            return  # accumulating: no optimizer step, no scheduler step
        self.last_step = step
        extra = self._extra_steps(step - self.step_at_epoch_start)
        for config in trainer.lr_scheduler_configs:
            if config.interval == "step" and not config.reduce_on_plateau:
                for _ in range(extra):
                    pl_module.lr_scheduler_step(config.scheduler, None)

    def _after_manual_batch(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch_idx: int) -> None:
        last_batch = batch_idx + 1 >= trainer.num_training_batches
        for config, before in zip(trainer.lr_scheduler_configs, self._positions):
            taken = config.scheduler.last_epoch - before
            if taken <= 0 or config.reduce_on_plateau:
                continue
            if config.interval != "step":
                if not last_batch:
                    raise ValueError(
                        f"{type(config.scheduler).__name__} is stepped within epochs by training_step (manual "
                        "optimisation) but declared with the epoch interval: DynamicPruning cannot tell it from "
                        "an epoch schedule and it would end early on pruned epochs. Return it from "
                        "configure_optimizers as {'scheduler': ..., 'interval': 'step'}, or pass "
                        "DynamicPruning(stretch_step_schedules=False)"
                    )
                continue
            for _ in range(taken * self._extra_steps(batch_idx + 1)):
                pl_module.lr_scheduler_step(config.scheduler, None)

    def state_dict(self) -> dict[str, int]:
        return {"step_at_epoch_start": self.step_at_epoch_start}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step_at_epoch_start = self.last_step = int(state.get("step_at_epoch_start", 0))
