"""Byte-level next-token data from the Python standard library's own source files (already on every machine).

A language-model corpus that needs no download: the ``.py`` files of the running interpreter's standard
library, split into training and held-out files (so held-out text is never seen in training), each side
concatenated and cut into non-overlapping windows of ``context + 1`` bytes. An example is one window:
``x = bytes[:-1]``, ``y = bytes[1:]`` (next-byte labels, vocabulary 256). The text depends on the Python
version installed; :func:`python_source_datamodule` names it in the data module's ``name``.
"""

from __future__ import annotations

import platform
import sysconfig
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import TensorDataset

from datadiet.data.datamodule import PruningDataModule

#: Byte values: the vocabulary of the byte-level model.
VOCAB_SIZE = 256


def python_source_files(root: Union[None, str, Path] = None) -> list[Path]:
    """The standard library's ``.py`` files under ``root`` (default: the running interpreter's), sorted.

    Installed packages (``site-packages``, ``dist-packages``) are left out: they differ between machines.
    """
    root = Path(root or sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py") if not {"site-packages", "dist-packages"} & set(p.parts))
    if not files:
        raise FileNotFoundError(f"no .py files under {root}: pass `root=` pointing at Python source files")
    return files


def byte_windows(files: Sequence[Path], count: int, width: int) -> np.ndarray:
    """The first ``count`` non-overlapping windows of ``width`` bytes of the files' concatenation, ``(count, width)``.

    Files are read in the order given, joined by a newline, until enough bytes are read.

    Raises:
        ValueError: the files hold fewer than ``count`` windows.
    """
    needed, parts, size = count * width, [], 0
    for path in files:
        if size >= needed:
            break
        data = path.read_bytes() + b"\n"
        parts.append(data)
        size += len(data)
    if size < needed:
        raise ValueError(
            f"the {len(files)} files hold {size // width:,} windows of {width} bytes, fewer than the {count:,} asked for"
        )
    return np.frombuffer(b"".join(parts)[:needed], dtype=np.uint8).reshape(count, width)


def _next_byte_dataset(windows: np.ndarray) -> TensorDataset:
    tokens = torch.from_numpy(windows.astype(np.int64))
    return TensorDataset(tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous())


def python_source_datamodule(
    context: int = 64,
    num_train: int = 8000,
    num_test: int = 1000,
    num_val: int = 0,
    test_fraction: float = 0.2,
    seed: int = 0,
    root: Union[None, str, Path] = None,
    **loader_options: Any,
) -> PruningDataModule:
    """Next-byte prediction on the standard library's source as a :class:`PruningDataModule`.

    Files are shuffled with ``seed``; the first ``test_fraction`` of them are held out (test windows come
    from them only), the rest give the training (then validation) windows in that order.

    Args:
        context: bytes per example (the model sees ``context`` bytes and predicts each next one).
        num_train: training windows (examples).
        num_test: held-out windows.
        num_val: validation windows, from the training files after the training windows.
        test_fraction: share of the files held out.
        seed: the file order and split.
        root: the source tree (default: the running interpreter's standard library).
        **loader_options: :class:`PruningDataModule` arguments (``batch_size``, ...).

    Raises:
        ValueError: a non-positive size, a ``test_fraction`` outside (0, 1), or too little text.
    """
    for name, value in (("context", context), ("num_train", num_train), ("num_test", num_test)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
    if isinstance(num_val, bool) or not isinstance(num_val, int) or num_val < 0:
        raise ValueError(f"`num_val` must be an integer >= 0, got {num_val!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"`test_fraction` must be in (0, 1), got {test_fraction}")
    files = python_source_files(root)
    order = np.random.default_rng(seed).permutation(len(files))
    num_test_files = max(1, int(round(test_fraction * len(files))))
    test_files = [files[i] for i in order[:num_test_files]]
    train_files = [files[i] for i in order[num_test_files:]]
    width = context + 1
    train = byte_windows(train_files, num_train + num_val, width)
    test = byte_windows(test_files, num_test, width)
    version: Optional[str] = platform.python_version() if root is None else None
    return PruningDataModule(
        _next_byte_dataset(train[:num_train]),
        _next_byte_dataset(train[num_train:]) if num_val else None,
        _next_byte_dataset(test),
        name=f"python_source{'-' + version if version else ''}",
        input_shape=(context,),
        num_classes=VOCAB_SIZE,
        **loader_options,
    )
