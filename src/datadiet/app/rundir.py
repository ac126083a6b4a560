"""What a rerun in an existing run directory may reuse: each phase's outputs record the settings they came from.

The probe (``scores.npz``, ``probe/checkpoints/last.ckpt``), the kept subset (``kept_indices.npz``) and the
full training (``train/checkpoints/last.ckpt``) are reused or resumed only when the settings they record
equal the new run's, each phase after the one it depends on. Outputs made with other settings are moved to
``<run dir>/superseded/<UTC time>/`` (same relative paths, nothing is deleted), a warning names the keys
that differ, and the phase runs again. An output that cannot be read (truncated, corrupt, not JSON) is
moved there too, with a warning naming it (:func:`set_aside`), and made again. ``resume=false`` recomputes
every phase and overwrites its outputs (the probe cache, keyed by the probe's fingerprint, still serves a
probe of the same settings).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import numpy as np

from datadiet._io import UnreadableFileError, atomic_write_json, read_json
from datadiet.fingerprint import config_fingerprint

log = logging.getLogger(__name__)

#: Folder of a run directory where outputs made with other settings are moved.
SUPERSEDED = "superseded"
#: File in a phase folder (``probe/``, ``train/``) recording the settings its checkpoint was made with.
SETTINGS_FILE = "settings.json"


def _normalised(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` as JSON reads it back (tuples → lists, keys → strings), so recorded and new compare equal."""
    return json.loads(json.dumps(settings, sort_keys=True, default=str))


def changed_keys(recorded: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested mappings (keys only in one of them included)."""
    keys = []
    for key in sorted(set(recorded) | set(new), key=str):
        name = f"{prefix}{key}"
        old_value, new_value = recorded.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(old_value, Mapping) and isinstance(new_value, Mapping):
            keys += changed_keys(old_value, new_value, f"{name}.")
        elif old_value != new_value:
            keys.append(f"{name}: {_short(old_value)} → {_short(new_value)}")
    return keys


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


def array_digest(values: np.ndarray) -> str:
    """A short content hash of an array (dtype, shape and bytes), e.g. the kept indices or a score column."""
    values = np.ascontiguousarray(values)
    hasher = hashlib.sha256(str((values.dtype.str, values.shape)).encode())
    hasher.update(values.tobytes())
    return hasher.hexdigest()[:16]


def recorded_settings(phase_dir: str | os.PathLike) -> Optional[dict[str, Any]]:
    """The settings a phase folder's checkpoint was made with (``<phase_dir>/settings.json``), or ``None``:
    none recorded, or a file that cannot be read (a warning names it; :func:`may_reuse` then moves the
    phase's outputs aside)."""
    path = Path(phase_dir) / SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        record = read_json(path)
        if not isinstance(record, dict) or not isinstance(record.get("settings"), dict):
            raise UnreadableFileError(path, "it holds no `settings` object")
    except UnreadableFileError as error:
        log.warning("%s cannot be read (%s): the outputs of %s are treated as made with unknown settings",
                    path, error.reason, Path(phase_dir).name)  # fmt: skip
        return None
    return record["settings"]


def record_settings(phase_dir: str | os.PathLike, settings: Mapping[str, Any]) -> None:
    """Writes ``<phase_dir>/settings.json`` (rank 0), before the phase's first checkpoint can exist."""
    if _is_rank_zero():
        record = {"fingerprint": config_fingerprint(settings), "settings": settings}
        atomic_write_json(Path(phase_dir) / SETTINGS_FILE, record)


def may_reuse(
    phase: str,
    run_dir: str | os.PathLike,
    outputs: Iterable[str | os.PathLike],
    recorded: Optional[Mapping[str, Any]],
    settings: Mapping[str, Any],
    resume: bool = True,
    sign: Optional[str | os.PathLike] = None,
) -> bool:
    """Whether a phase's existing ``outputs`` were made with ``settings`` and may be reused (or resumed).

    Outputs made with other settings (or recording none: an older datadiet) are moved aside into
    ``<run_dir>/superseded/<UTC time>/`` on rank 0, with a warning naming the differing keys.

    Args:
        phase: what the outputs are, for the warning (``"probe scores"``, ``"kept subset"``, ...).
        run_dir: the folder the outputs' relative paths (and ``superseded/``) are taken from.
        outputs: the phase's files and folders, moved aside together when they are not reused.
        recorded: the settings the existing outputs record, ``None`` when they record none.
        settings: this run's settings for the phase.
        resume: ``False`` reuses nothing (and moves nothing: the phase overwrites its outputs).
        sign: the file whose existence means there is something to reuse (default: the first output).
    """
    outputs = [Path(path) for path in outputs]
    if not resume or not Path(sign if sign is not None else outputs[0]).exists():
        return False
    if recorded is not None and config_fingerprint(_normalised(recorded)) == config_fingerprint(_normalised(settings)):
        return True
    if recorded is None:
        reason = "records no settings (an older datadiet, or a settings file that cannot be read)"
    else:
        reason = "made with other settings: " + "; ".join(changed_keys(_normalised(recorded), _normalised(settings)))
    if _is_rank_zero():
        moved_to = supersede(run_dir, outputs)
        log.warning(
            "%s in %s not reused, %s. Moved to %s and made again "
            "(resume=false overwrites instead; a new hydra.run.dir keeps runs apart).",
            phase,
            run_dir,
            reason,
            moved_to,
        )
    return False


def set_aside(
    run_dir: str | os.PathLike, paths: Iterable[str | os.PathLike], error: UnreadableFileError, what: str
) -> Optional[Path]:
    """Moves an unreadable output and its companions (``paths``) to ``run_dir/superseded/`` (rank 0), with a
    warning naming the file; the caller then makes it again. Returns the folder they went to."""
    moved_to = supersede(run_dir, paths) if _is_rank_zero() else None
    log.warning("%s %s cannot be read (%s): moved to %s and made again", what, error.path, error.reason, moved_to)
    return moved_to


_STAMPS: dict[str, str] = {}


def supersede(run_dir: str | os.PathLike, paths: Iterable[str | os.PathLike]) -> Path:
    """Moves the existing ``paths`` (under ``run_dir``) to ``run_dir/superseded/<UTC time>/``, same relative paths."""
    run_dir = Path(run_dir)
    # One folder for everything one process supersedes in a run directory.
    stamp = _STAMPS.setdefault(str(run_dir.resolve()), time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime()))
    target = run_dir / SUPERSEDED / stamp
    for path in paths:
        path = Path(path)
        if not path.exists():
            continue
        destination = target / path.resolve().relative_to(run_dir.resolve())
        destination.parent.mkdir(parents=True, exist_ok=True)
        if destination.exists():  # superseded twice by one process (the Python API): keep both
            destination = destination.with_name(f"{destination.name}.{time.time_ns()}")
        os.replace(path, destination)
    return target


def _is_rank_zero() -> bool:
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0
