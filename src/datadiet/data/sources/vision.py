"""Image datasets through torchvision (``pip install "datadiet[vision]"``): CIFAR-10, CIFAR-100, ImageFolder.

CIFAR is downloaded into ``root`` only when ``download=True`` (``conf/data/cifar10.yaml`` sets it, so
``datadiet data=cifar10`` fetches it on first use). With ``augment=True`` the training set uses the
standard random crop + flip, which the probe's scoring pass then sees too (as in Paul et al. 2021);
validation and test never are augmented.
"""

from __future__ import annotations

import copy
from typing import Any, Optional, Sequence

import numpy as np

from datadiet.data.datamodule import PruningDataModule

#: Per-channel mean and std of the training images.
_CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def _restrict(dataset: Any, indices: np.ndarray) -> Any:
    """A shallow copy of a torchvision dataset holding only ``indices``, keeping its ``data``/``targets`` arrays
    (so fingerprints and labels are read without decoding images)."""
    view = copy.copy(dataset)
    if hasattr(dataset, "data"):
        view.data = dataset.data[indices]
    if hasattr(dataset, "samples"):
        view.samples = [dataset.samples[i] for i in indices]
        view.imgs = view.samples
    view.targets = [dataset.targets[i] for i in indices]
    return view


def _split(num_examples: int, fraction: float, seed: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A seeded (held-out, rest) split of ``range(num_examples)``; both parts sorted."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1), got {fraction}")
    order = np.random.default_rng(seed).permutation(num_examples)
    count = int(round(fraction * num_examples))
    return np.sort(order[:count]), np.sort(order[count:])


def _transforms(mean: Sequence[float], std: Sequence[float], size: int, augment: bool, resize: bool) -> tuple[Any, Any]:
    from torchvision import transforms as T

    resizing = [T.Resize(size), T.CenterCrop(size)] if resize else []
    evaluation = T.Compose([*resizing, T.ToTensor(), T.Normalize(mean, std)])
    if not augment:
        return evaluation, evaluation
    training = T.Compose(
        [
            *resizing,
            T.RandomCrop(size, padding=size // 8),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(mean, std),
        ]
    )
    return training, evaluation


def _datamodule(
    name: str,
    train: Any,
    val: Any,
    test: Any,
    num_classes: int,
    size: int,
    num_train: Optional[int],
    loader_options: dict,
) -> PruningDataModule:
    if num_train is not None:
        if not 0 < num_train <= len(train):
            raise ValueError(f"`num_train` must be in [1, {len(train)}], got {num_train}")
        train = _restrict(train, np.arange(num_train))
    dm = PruningDataModule(train, val if val is not None and len(val) else None, test, name=name, **loader_options)
    dm.input_shape = (3, size, size)
    dm.num_classes = num_classes
    return dm


def _cifar(
    name: str, root: str, download: bool, val_fraction: float, seed: int, augment: bool, num_train: Optional[int],
    loader_options: dict,
) -> PruningDataModule:  # fmt: skip
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    train_transform, eval_transform = _transforms(*_CIFAR_STATS[name], size=32, augment=augment, resize=False)
    full = cls(root, train=True, download=download, transform=train_transform)
    unaugmented = cls(root, train=True, download=False, transform=eval_transform)
    test = cls(root, train=False, download=download, transform=eval_transform)
    val_indices, train_indices = _split(len(full), val_fraction, seed, "val_fraction")
    return _datamodule(
        name, _restrict(full, train_indices), _restrict(unaugmented, val_indices), test, len(full.classes), 32,
        num_train, loader_options,
    )  # fmt: skip


def cifar10_datamodule(
    root: str,
    download: bool = False,
    val_fraction: float = 0.1,
    seed: int = 0,
    augment: bool = True,
    num_train: Optional[int] = None,
    **loader_options: Any,
) -> PruningDataModule:
    """CIFAR-10 (50,000 training images, ``val_fraction`` of them held out; 10,000 test) as ``3×32×32`` tensors.

    Args:
        root: the torchvision dataset folder.
        download: fetch the archive into ``root`` if it is missing.
        val_fraction: share of the training images held out for validation (seeded).
        seed: split seed.
        augment: random crop (padding 4) + horizontal flip on the training set.
        num_train: use only the first ``num_train`` training images.
        **loader_options: :class:`PruningDataModule` arguments.
    """
    return _cifar("cifar10", root, download, val_fraction, seed, augment, num_train, loader_options)


def cifar100_datamodule(
    root: str,
    download: bool = False,
    val_fraction: float = 0.1,
    seed: int = 0,
    augment: bool = True,
    num_train: Optional[int] = None,
    **loader_options: Any,
) -> PruningDataModule:
    """CIFAR-100, otherwise as :func:`cifar10_datamodule`."""
    return _cifar("cifar100", root, download, val_fraction, seed, augment, num_train, loader_options)


def imagefolder_datamodule(
    root: str,
    test_root: Optional[str] = None,
    image_size: int = 32,
    test_fraction: float = 0.2,
    val_fraction: float = 0.1,
    seed: int = 0,
    augment: bool = False,
    num_train: Optional[int] = None,
    **loader_options: Any,
) -> PruningDataModule:
    """Your own images, one folder per class (``root/<class>/<image>``), resized to ``image_size`` RGB squares.

    Args:
        root: the training images.
        test_root: a separate test folder with the same classes; without one, ``test_fraction`` of
            ``root`` is held out (seeded).
        image_size: side of the square the images are resized and center-cropped to.
        test_fraction: held-out test share when there is no ``test_root``.
        val_fraction: share of the remaining training images held out for validation.
        seed: split seed.
        augment: random crop + horizontal flip on the training set.
        num_train: use only the first ``num_train`` training images.
        **loader_options: :class:`PruningDataModule` arguments.
    """
    from torchvision import datasets

    stats = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    train_transform, eval_transform = _transforms(*stats, size=image_size, augment=augment, resize=True)
    full = datasets.ImageFolder(root, transform=train_transform)
    unaugmented = datasets.ImageFolder(root, transform=eval_transform)
    if test_root is not None:
        test = datasets.ImageFolder(test_root, transform=eval_transform)
        if test.classes != full.classes:
            raise ValueError(f"`test_root` has classes {test.classes}, `root` has {full.classes}")
        rest = np.arange(len(full))
    else:
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"`test_fraction` must be in (0, 1) without a `test_root`, got {test_fraction}")
        test_indices, rest = _split(len(full), test_fraction, seed, "test_fraction")
        test = _restrict(unaugmented, test_indices)
    val_positions, train_positions = _split(len(rest), val_fraction, seed + 1, "val_fraction")
    return _datamodule(
        "imagefolder", _restrict(full, rest[train_positions]), _restrict(unaugmented, rest[val_positions]), test,
        len(full.classes), image_size, num_train, loader_options,
    )  # fmt: skip
