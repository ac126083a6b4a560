"""Runs that survive being killed: atomic checkpoints in fixed folders, and where a phase resumes from.

The app's probe and its full training each keep ``<phase dir>/checkpoints/last.ckpt``, rewritten
atomically at the end of every training epoch (after :class:`~datadiet.DifficultyCallback` has
folded the epoch, so the callback's state in it is complete). Restarting the same command in the
same run directory resumes each unfinished phase from there; a finished probe (its ``scores.npz``
exists) is never run again.
"""

from __future__ import annotations

import os
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any, Optional

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from typing_extensions import override

from datadiet._io import UnreadableFileError, atomic_open
from datadiet.app.rundir import set_aside

#: Name of the checkpoint a phase resumes from (``ModelCheckpoint``'s ``last``).
LAST = "last.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file in the same folder, fsyncs it, then ``os.replace``-s it.

    Lightning's own save goes through an fsspec transaction whose temporary file lives in the system
    temp folder, so on another file system the final step is a copy: a kill then can leave a torn
    ``last.ckpt``. Here a checkpoint is either the old one or the new one.
    """

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError(
                f"`{type(self).__name__}.save_checkpoint` takes no `storage_options`, got {storage_options}"
            )
        with atomic_open(path) as handle:  # streamed: no in-memory copy of the serialised checkpoint
            torch.save(checkpoint, handle)


def phase_checkpoint(phase_dir: str | os.PathLike) -> ModelCheckpoint:
    """``<phase_dir>/checkpoints/last.ckpt``, rewritten at the end of every training epoch (no other files).

    One "top-k" file named ``last`` rather than ``save_last=True``: Lightning writes ``last`` only beside
    a top-k checkpoint. ``save_on_train_epoch_end`` puts the save after every other callback's
    ``on_train_epoch_end`` (Lightning runs checkpoint callbacks last), never at validation end, which
    comes before the epoch's statistics are folded.
    """
    return _PhaseCheckpoint(
        dirpath=str(Path(phase_dir) / "checkpoints"),
        filename=LAST.removesuffix(".ckpt"),
        save_top_k=1,
        every_n_epochs=1,
        save_on_train_epoch_end=True,
        enable_version_counter=False,
    )


class _PhaseCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` without its "directory exists and is not empty" warning: the folder is the phase's
    own, and holds a checkpoint exactly when the phase resumes from it (see :mod:`datadiet.app.rundir`)."""

    @override
    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
            super().setup(trainer, pl_module, stage)


class PhaseClock(Callback):
    """Wall time of a phase's ``fit``, earlier sessions included: the time up to the checkpoint it resumed
    from is kept in the checkpoint (``state_dict``), so a resumed run reports what its result really cost.

    Example::

        clock = PhaseClock()
        trainer = pl.Trainer(callbacks=[clock, phase_checkpoint(run_dir / "train")])
        start = time.perf_counter()
        trainer.fit(model, datamodule=dm, ckpt_path=resume_path(run_dir / "train"))
        wall_time_s = clock.earlier_s + time.perf_counter() - start
    """

    def __init__(self) -> None:
        #: Seconds spent in this phase by earlier sessions, up to the checkpoint this one resumed from.
        self.earlier_s = 0.0
        self._started: Optional[float] = None

    @override
    def on_fit_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._started = time.perf_counter()

    @override
    def state_dict(self) -> dict[str, Any]:
        session = 0.0 if self._started is None else time.perf_counter() - self._started
        return {"wall_time_s": self.earlier_s + session}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.earlier_s = float(state_dict.get("wall_time_s", 0.0))


def resume_path(phase_dir: str | os.PathLike, resume: bool = True, explicit: Optional[str] = None) -> Optional[str]:
    """The checkpoint a phase resumes from: ``explicit`` if given, else its ``last.ckpt`` if ``resume``.

    A ``last.ckpt`` that cannot be read (truncated, not a checkpoint) is moved to the run directory's
    ``superseded/`` with a warning naming it, and the phase starts afresh.

    Raises:
        FileNotFoundError: ``explicit`` names a file that does not exist.
        UnreadableFileError: ``explicit`` names a file that is not a readable checkpoint.
    """
    if explicit:
        if not Path(explicit).is_file():
            raise FileNotFoundError(f"`ckpt_path={explicit}` does not exist")
        problem = _unreadable_checkpoint(Path(explicit))
        if problem:
            raise UnreadableFileError(explicit, problem, "pass `ckpt_path` a complete checkpoint (or none)")
        return str(explicit)
    last = Path(phase_dir) / "checkpoints" / LAST
    if not (resume and last.is_file()):
        return None
    problem = _unreadable_checkpoint(last)
    if problem:
        set_aside(Path(phase_dir).parent, [last], UnreadableFileError(last, problem), "checkpoint")
        return None
    return str(last)


def _unreadable_checkpoint(path: Path) -> Optional[str]:
    """What is wrong with a ``torch.save`` checkpoint (a zip archive; its directory is at the end, so a truncated
    file has none), or ``None``."""
    try:
        with zipfile.ZipFile(path) as archive:
            if not any(name.endswith("data.pkl") for name in archive.namelist()):
                return "it is a zip archive but not a torch checkpoint"
    except (zipfile.BadZipFile, OSError) as error:
        return f"truncated or not a checkpoint ({type(error).__name__}: {error})"
    return None
