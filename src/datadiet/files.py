"""Atomic file writes and clear errors for unreadable files: a crash never leaves a half-written score table,
subset, checkpoint or summary, and a file that cannot be read is named with what to do about it."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator, Mapping

import numpy as np


class UnreadableFileError(ValueError):
    """A file datadiet wrote (or reads) is truncated, corrupt or not what its name says.

    Attributes:
        path: the file.
        reason: what is wrong with it.
    """

    def __init__(self, path: str | os.PathLike, reason: str, remedy: str = "") -> None:
        self.path, self.reason = Path(path), reason
        remedy = remedy or "delete it (or move it aside) and run again to recompute it"
        super().__init__(f"cannot read {self.path}: {reason}; {remedy}")


@contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """A binary file handle whose contents replace ``path`` when the block ends without an error.

    It writes a temporary file in the same folder, fsyncs it and ``os.replace``-s it onto ``path``;
    on any error (or a crash) ``path`` is left as it was. Large outputs stream to disk instead of
    being assembled in memory first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Writes ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    with atomic_open(path) as handle:
        handle.write(data)
    return Path(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_save_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], compress: bool = False) -> Path:
    """Saves ``arrays`` as an ``.npz`` (no pickled objects) atomically, streamed to disk.

    Uncompressed by default: each array is a plain ``.npy`` member (read and written at disk speed; per-example
    scores hardly compress). ``compress=True`` deflates them (zlib, single-threaded: ~10 MB/s).
    """
    save = np.savez_compressed if compress else np.savez
    with atomic_open(path) as handle:
        save(handle, **{key: np.asarray(value) for key, value in arrays.items()})
    return Path(path)


def json_text(obj: Any, indent: int | None = None) -> str:
    """``obj`` as JSON (keys sorted; numpy scalars and arrays, and paths, converted)."""
    return json.dumps(obj, indent=indent, sort_keys=True, default=_json_default)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Writes ``obj`` as indented JSON atomically."""
    return atomic_write_bytes(path, (json_text(obj, indent=2) + "\n").encode())


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def read_json(path: str | os.PathLike, remedy: str = "") -> Any:
    """Parses the JSON file ``path``; an unreadable or malformed one raises :class:`UnreadableFileError`."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UnreadableFileError(path, f"not valid JSON ({type(error).__name__}: {error})", remedy) from None


#: What ``np.load`` raises on a truncated, corrupt or foreign ``.npz``/``.npy``.
NPZ_ERRORS = (OSError, ValueError, EOFError, KeyError, IndexError, TypeError, zipfile.BadZipFile)


def load_npz(path: str | os.PathLike, keys: tuple[str, ...] = (), remedy: str = "") -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path`` (no pickles), read whole and checked.

    Raises:
        FileNotFoundError: no file at ``path``.
        UnreadableFileError: truncated or corrupt (the zip's CRC checks included), not an ``.npz``, or
            without one of ``keys``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise ValueError("it holds one array, not an .npz archive")
            arrays = {key: data[key] for key in data.files}
    except NPZ_ERRORS as error:
        raise UnreadableFileError(path, f"truncated or corrupt ({type(error).__name__}: {error})", remedy) from None
    missing = [key for key in keys if key not in arrays]
    if missing:
        raise UnreadableFileError(path, f"it has no {missing} array(s) (it has {sorted(arrays)})", remedy)
    return arrays


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")
