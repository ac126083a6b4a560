"""MNIST-1D (Greydanus & Kobak 2024): generated locally with the ``mnist1d`` package and cached."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np

from datadiet._io import UnreadableFileError, atomic_save_npz, load_npz
from datadiet.data.datamodule import PruningDataModule
from datadiet.data.sources._split import build_datamodule

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$DATADIET_CACHE`` or ``~/.cache/datadiet``.

    Raises:
        NotADirectoryError: the folder, or one above it, is a file (it could never hold the cache).
    """
    variable = os.environ.get("DATADIET_CACHE")
    path = Path(variable) if variable else Path.home() / ".cache" / "datadiet"
    for folder in (path, *path.parents):
        if folder.exists():
            if not folder.is_dir():
                named = f"DATADIET_CACHE={variable}" if variable else f"the default cache folder {path}"
                raise NotADirectoryError(
                    f"{named}: {folder} is a file, not a folder, so the cache cannot live there; point DATADIET_CACHE "
                    "at a folder (or unset it for ~/.cache/datadiet)"
                )
            break
    return path


def load_mnist1d(num_samples: int = 5000, seed: int = 42, cache_dir: Optional[str] = None) -> dict[str, np.ndarray]:
    """Generates (or reads from the cache) MNIST-1D with the package's default generation arguments.

    Generation never downloads anything; it takes a few seconds per 5,000 examples, so the arrays
    are cached as ``mnist1d_{num_samples}_{seed}.npz`` (80 % train, 20 % test as in the paper).

    Args:
        num_samples: total examples (train + test), a multiple of 10 is exact.
        seed: generation seed (42 is the published dataset's).
        cache_dir: where to cache; default :func:`default_cache_dir`.

    Returns:
        ``{"x", "y", "x_test", "y_test"}`` float32 signals of length 40 and int64 labels.
    """
    if num_samples < 10:
        raise ValueError(f"`num_samples` must be at least 10 (one per class), got {num_samples}")
    path = Path(cache_dir or default_cache_dir()) / f"mnist1d_{num_samples}_{seed}.npz"
    if path.exists():
        try:
            return load_npz(path, keys=("x", "y", "x_test", "y_test"))
        except UnreadableFileError as error:  # regenerated below, and replaced atomically
            log.warning("cached MNIST-1D %s cannot be read (%s): generating it again", path, error.reason)
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = num_samples, seed
    data = make_dataset(args)
    arrays = {
        "x": data["x"].astype(np.float32),
        "y": data["y"].astype(np.int64),
        "x_test": data["x_test"].astype(np.float32),
        "y_test": data["y_test"].astype(np.int64),
    }
    atomic_save_npz(path, arrays)
    return arrays


def mnist1d_datamodule(
    num_samples: int = 5000,
    val_fraction: float = 0.1,
    seed: int = 42,
    cache_dir: Optional[str] = None,
    num_train: Optional[int] = None,
    label_noise: float = 0.0,
    label_noise_kind: str = "symmetric",
    label_noise_seed: int = 0,
    **loader_options: Any,
) -> PruningDataModule:
    """MNIST-1D as a :class:`PruningDataModule`: 10 classes, signals of length 40.

    Args:
        num_samples: total generated examples; 80 % train (of which ``val_fraction`` is validation), 20 % test.
        val_fraction: share of the training split held out for validation.
        seed: generation and split seed.
        cache_dir: array cache folder.
        num_train: use only the first ``num_train`` training examples (data-size sweeps).
        label_noise: share of the training labels replaced by a wrong class, in [0, 1) (validation and
            test stay clean; the record is the data module's ``label_noise``).
        label_noise_kind: ``symmetric`` (a uniformly random other class) or ``pairwise`` (c → (c + 1) mod K).
        label_noise_seed: seeds which labels are replaced and by what.
        **loader_options: :class:`PruningDataModule` arguments (``batch_size``, ``num_workers``, ...).
    """
    arrays = load_mnist1d(num_samples, seed, cache_dir)
    return build_datamodule(
        "mnist1d",
        arrays["x"],
        arrays["y"],
        arrays["x_test"],
        arrays["y_test"],
        val_fraction,
        seed,
        num_train,
        label_noise=label_noise,
        label_noise_kind=label_noise_kind,
        label_noise_seed=label_noise_seed,
        **loader_options,
    )
