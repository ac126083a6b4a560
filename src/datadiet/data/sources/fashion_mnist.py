"""Fashion-MNIST (Xiao et al. 2017): 70,000 real 28×28 grey images of clothes, read from the original idx files.

No download by default in tests: the files are looked for, in order, in ``root`` (or ``$DATADIET_DATA``), in
torchvision's ``FashionMNIST/raw`` layout under those and under the cache folder, and in Debian's
``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``, ``make fashion-mnist``);
where none has them, torchvision downloads them into the cache folder (``download=True``, the default).
The decoded arrays are cached as ``fashion_mnist.npz`` beside MNIST-1D's.
"""

from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np

from datadiet.data.datamodule import PruningDataModule
from datadiet.data.sources._split import build_datamodule
from datadiet.data.sources.mnist1d import default_cache_dir
from datadiet.files import UnreadableFileError, atomic_save_npz, load_npz

log = logging.getLogger(__name__)

#: Debian's ``dataset-fashion-mnist`` package installs the gzipped idx files here.
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
#: The four idx files (each may also be gzipped, ``<name>.gz``).
FILES = {
    "x": "train-images-idx3-ubyte",
    "y": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
#: Mean and std of the training pixels in [0, 1] (the usual normalisation).
MEAN, STD = 0.2860, 0.3530
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_IDX_TYPES = {0x08: np.uint8}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """One idx file (``.gz`` or plain) as an array: magic ``00 00 <type> <ndim>``, big-endian int32 dims, data.

    Raises:
        UnreadableFileError: a file too short, with a bad magic number or an unsupported element type.
    """
    path = Path(path)
    data = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise UnreadableFileError(path, "not an idx file of unsigned bytes (magic 00 00 08 <ndim>)")
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">i4", count=ndim, offset=4).astype(np.int64)
    size = int(np.prod(dims))
    if len(data) != 4 + 4 * ndim + size:
        raise UnreadableFileError(path, f"{len(data)} bytes for an idx array of shape {tuple(dims)}")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(tuple(dims)).copy()


def _file(folder: Path, name: str) -> Optional[Path]:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _holds_all(folder: Path) -> bool:
    return all(_file(folder, name) is not None for name in FILES.values())


def candidate_dirs(root: Optional[str] = None, cache_dir: Optional[str] = None) -> list[Path]:
    """The folders searched, in order: ``root`` (else ``$DATADIET_DATA``) and its ``FashionMNIST/raw``,
    ``<cache>/FashionMNIST/raw`` (where torchvision's download goes), Debian's folder."""
    folders: list[Path] = []
    base = root if root is not None else os.environ.get("DATADIET_DATA")
    if base:
        folders += [Path(base), Path(base) / "fashion-mnist", Path(base) / "FashionMNIST" / "raw"]
    folders += [Path(cache_dir or default_cache_dir()) / "FashionMNIST" / "raw", DEBIAN_DIR]
    return folders


def find_fashion_mnist(root: Optional[str] = None, cache_dir: Optional[str] = None, download: bool = True) -> Path:
    """The first folder holding the four idx files; downloads them with torchvision where none does.

    Raises:
        FileNotFoundError: none found and the download is off or fails; the message names the three ways.
    """
    folders = candidate_dirs(root, cache_dir)
    for folder in folders:
        if _holds_all(folder):
            return folder
    cache = Path(cache_dir or default_cache_dir())
    reason = "download=False"
    if download:
        try:
            from torchvision.datasets import FashionMNIST

            FashionMNIST(str(cache), train=True, download=True)
            FashionMNIST(str(cache), train=False, download=True)
            if _holds_all(cache / "FashionMNIST" / "raw"):
                return cache / "FashionMNIST" / "raw"
            reason = "torchvision's download left no idx files"
        except Exception as error:  # noqa: BLE001  (no torchvision, no network: the message below says what to do)
            reason = f"torchvision's download failed: {type(error).__name__}: {error}"
    raise FileNotFoundError(
        "Fashion-MNIST's idx files (train-images-idx3-ubyte[.gz], ...) are in none of "
        f"{', '.join(str(f) for f in folders)} ({reason}). Either: (1) `apt-get install dataset-fashion-mnist` "
        f"(or `make fashion-mnist`) for Debian's copy in {DEBIAN_DIR}; (2) put the four files in a folder and pass "
        "`root=` (app: data.root=...) or set DATADIET_DATA; (3) let torchvision download them "
        '(`pip install "datadiet[vision]"`, download=True, with a network)'
    )


def load_fashion_mnist(
    root: Optional[str] = None, cache_dir: Optional[str] = None, download: bool = True
) -> dict[str, np.ndarray]:
    """``{"x", "y", "x_test", "y_test"}``: uint8 images (N, 28, 28) and int64 labels, from the idx files found by
    :func:`find_fashion_mnist`, cached as ``fashion_mnist.npz`` (the cache is used only without ``root`` and
    ``$DATADIET_DATA``, so pointing at other files always reads them)."""
    explicit = root is not None or bool(os.environ.get("DATADIET_DATA"))
    cached = Path(cache_dir or default_cache_dir()) / "fashion_mnist.npz"
    if not explicit and cached.exists():
        try:
            return load_npz(cached, keys=tuple(FILES))
        except UnreadableFileError as error:
            log.warning(
                "cached Fashion-MNIST %s cannot be read (%s): reading the idx files again", cached, error.reason
            )
    folder = find_fashion_mnist(root, cache_dir, download)
    arrays = {key: read_idx(_file(folder, name)) for key, name in FILES.items()}
    for key in ("y", "y_test"):
        arrays[key] = arrays[key].astype(np.int64)
    for images, labels in (("x", "y"), ("x_test", "y_test")):
        if arrays[images].ndim != 3 or len(arrays[images]) != len(arrays[labels]) or arrays[labels].ndim != 1:
            raise UnreadableFileError(
                folder,
                f"{images} {arrays[images].shape} and {labels} {arrays[labels].shape} are not N images with N labels",
            )
    if not explicit:
        atomic_save_npz(cached, arrays)
    return arrays


def fashion_mnist_datamodule(
    root: Optional[str] = None,
    download: bool = True,
    cache_dir: Optional[str] = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    num_train: Optional[int] = None,
    flatten: bool = False,
    label_noise: float = 0.0,
    label_noise_kind: str = "symmetric",
    label_noise_seed: int = 0,
    **loader_options: Any,
) -> PruningDataModule:
    """Fashion-MNIST as a :class:`PruningDataModule`: 10 classes, ``(1, 28, 28)`` images normalised with the
    training pixels' mean and std (60,000 training images, ``val_fraction`` held out; 10,000 test).

    Args:
        root: a folder with the four idx files (plain or ``.gz``), directly or as ``FashionMNIST/raw``;
            default ``$DATADIET_DATA``, then the cache, then Debian's ``/usr/share/datasets/fashion-mnist``.
        download: where no folder has them, let torchvision download them into the cache folder.
        cache_dir: the cache folder (default ``$DATADIET_CACHE`` or ``~/.cache/datadiet``).
        val_fraction: share of the training images held out for validation (seeded).
        seed: split seed.
        num_train: use only the first ``num_train`` training images (after the split).
        flatten: 784-vectors instead of images.
        label_noise: share of the training labels replaced by a wrong class, in [0, 1) (validation and test
            stay clean; the record is the data module's ``label_noise``).
        label_noise_kind: ``symmetric`` (a uniformly random other class) or ``pairwise`` (c → (c + 1) mod K).
        label_noise_seed: seeds which labels are replaced and by what.
        **loader_options: :class:`PruningDataModule` arguments.

    Raises:
        FileNotFoundError: the files are nowhere and cannot be downloaded (the message says how to get them).
    """
    arrays = load_fashion_mnist(root, cache_dir, download)

    def images(raw: np.ndarray) -> np.ndarray:
        x = ((raw.astype(np.float32) / 255.0) - MEAN) / STD
        return x.reshape(len(raw), -1) if flatten else x[:, None]

    return build_datamodule(
        "fashion_mnist",
        images(arrays["x"]),
        arrays["y"],
        images(arrays["x_test"]),
        arrays["y_test"],
        val_fraction,
        seed,
        num_train,
        label_noise=label_noise,
        label_noise_kind=label_noise_kind,
        label_noise_seed=label_noise_seed,
        **loader_options,
    )
