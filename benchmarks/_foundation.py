"""What the choose-once / train-many benchmarks (``transfer``, ``sweep_on_subset``) share: the data (a flag, so that
another source plugs in), the learners of several families, the selectors, one training run on a subset, and the
cache of finished runs (a rerun trains only what is missing)."""

from __future__ import annotations

import csv
import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor, nn

from benchmarks._timing import quiet_trainer
from datadiet import DifficultyCallback, PruningDataModule, select
from datadiet.app.ensemble import average_tables
from datadiet.compute import forward_flops_per_example, run_flops
from datadiet.models import CNN1D, CNN2D, MLP, Classifier
from datadiet.scores.prototype import prototype_distance


# Data ---------------------------------------------------------------------------------------------
def data_maker(name: str, quick: bool) -> Callable[[], PruningDataModule]:
    """``mnist1d`` (45,000 training examples; 600 with ``quick``) or ``fashion_mnist`` when
    ``datadiet.data.sources`` has it (``fashion_mnist_datamodule``).

    Raises:
        ValueError: an unknown name, or a source this checkout does not have.
    """
    from datadiet.data import sources

    if name == "mnist1d":
        return functools.partial(
            sources.mnist1d_datamodule,
            num_samples=3000 if quick else 62500,
            val_fraction=0.1,
            seed=42,
            batch_size=128,
            eval_batch_size=1024,
            num_train=600 if quick else None,
        )
    if name == "fashion_mnist":
        make = getattr(sources, "fashion_mnist_datamodule", None)
        if make is None:
            raise ValueError(
                "`--data fashion_mnist` needs datadiet.data.sources.fashion_mnist_datamodule, which this "
                "checkout does not have yet; use --data mnist1d"
            )
        options: dict[str, Any] = {"batch_size": 128}
        if quick:
            options["num_train"] = 600
        return functools.partial(make, **options)
    raise ValueError(f"`--data` can be mnist1d or fashion_mnist, got {name!r}")


# Learners -----------------------------------------------------------------------------------------
class _Block1D(nn.Module):
    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        out = channels * stride
        self.body = nn.Sequential(
            nn.Conv1d(channels, out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm1d(out),
            nn.ReLU(),
            nn.Conv1d(out, out, 3, padding=1, bias=False),
            nn.BatchNorm1d(out),
        )
        self.skip = (
            nn.Identity()
            if stride == 1
            else nn.Sequential(nn.Conv1d(channels, out, 1, stride=stride, bias=False), nn.BatchNorm1d(out))
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class ResNet1D(nn.Module):
    """A small 1-D ResNet (stem, three residual stages, global average pooling): another family than CNN1D and MLP."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, width: int = 16) -> None:
        super().__init__()
        in_channels = 1 if len(input_shape) == 1 else int(np.prod(input_shape[:-1]))
        self.stem = nn.Sequential(
            nn.Conv1d(in_channels, width, 5, padding=2, bias=False), nn.BatchNorm1d(width), nn.ReLU()
        )
        self.stages = nn.Sequential(_Block1D(width, 1), _Block1D(width, 2), _Block1D(2 * width, 2))
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1, -2) if x.ndim > 3 else (x if x.ndim == 3 else x.unsqueeze(1))
        return self.head(self.stages(self.stem(x)).mean(dim=-1))


#: Learner name -> (network factory, learning rate): the families a subset is trained by.
LEARNERS: dict[str, tuple[Callable[..., nn.Module], float]] = {
    "mlp": (functools.partial(MLP, hidden_sizes=(256, 256)), 1e-3),
    "cnn1d": (CNN1D, 5e-3),
    "resnet1d": (ResNet1D, 3e-3),
    "cnn2d": (functools.partial(CNN2D, channels=(16, 32), hidden=64), 2e-3),
}

#: Per data set: the learners B and the selectors A a run uses unless told otherwise (images get a 2-D CNN).
DEFAULTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "mnist1d": (("mlp", "cnn1d", "resnet1d"), ("cnn1d_in_run", "selector", "prototypes")),
    "fashion_mnist": (("mlp", "cnn2d"), ("cnn2d_in_run", "selector", "prototypes")),
}


def flops_of(make_net: Callable[..., nn.Module], dm: PruningDataModule) -> float:
    """Forward FLOPs per example of the network on two training inputs."""
    net = make_net(dm.input_shape, dm.num_classes)
    x = torch.stack([dm.train_dataset[i][0] for i in range(2)])
    return forward_flops_per_example(net, x)


def train_and_test(
    make_net: Callable[..., nn.Module],
    lr: float,
    dm: PruningDataModule,
    kept: np.ndarray | None,
    epochs: int,
    seed: int,
) -> dict[str, Any]:
    """Trains a fresh network (Adam, cosine) on ``kept`` (all data when ``None``) for ``epochs`` epochs; its test
    accuracy, presentations and wall time."""
    if kept is None:
        dm.reset_pruning()
    else:
        dm.kept_indices = kept
    pl.seed_everything(seed, workers=True)
    model = Classifier(make_net, dm.input_shape, dm.num_classes, optimizer="adam", lr=lr, cosine_schedule=True)
    served, start = dm.train_examples_served, time.perf_counter()
    quiet_trainer("cpu", epochs).fit(model, datamodule=dm)
    presentations = dm.train_examples_served - served
    wall = time.perf_counter() - start
    dm.reset_pruning()
    return {"test_acc": test_accuracy(model, dm), "presentations": presentations, "wall_s": round(wall, 2)}


def test_accuracy(model: nn.Module, dm: PruningDataModule) -> float:
    loader = dm.test_dataloader()
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            correct += int((model(x).argmax(1) == y).sum())
            total += len(y)
    return correct / total


# Selectors ----------------------------------------------------------------------------------------
#: Selector name -> what it is (the table's legend).
SELECTORS = {
    "cnn1d_in_run": "CNN1D's own first 2 epochs (the in-run default), EL2N, hardest",
    "cnn2d_in_run": "CNN2D 16/32's own first 2 epochs (the in-run default on images), EL2N, hardest",
    "cnn2d_el2n4": "CNN2D 16/32, 2 epochs from 4 initialisations, EL2N averaged over them (Paul et al.), hardest",
    "cnn2d_forgetting": "CNN2D 16/32 trained 10 epochs, forgetting events (Toneva et al.), hardest",
    "selector": "tiny MLP [32], 1 epoch (probe=selector), EL2N, hardest",
    "prototypes": "label-free: raw-input embedding, k-means prototypes (k = 10), farthest kept",
}
#: A selector's name + this suffix: its scores, the hardest ``keep`` of every class (``class_balanced``).
BALANCED = "_balanced"
SELECTORS.update({name + BALANCED: f"{text}, the same share of every class" for name, text in list(SELECTORS.items())})


#: Model selectors: network, learning rate, epochs, score, and how many initialisations' scores are averaged.
MODEL_SELECTORS: dict[str, tuple[Callable[..., nn.Module], float, int, str, int]] = {
    "cnn1d_in_run": (CNN1D, 5e-3, 2, "el2n", 1),
    "cnn2d_in_run": (*LEARNERS["cnn2d"], 2, "el2n", 1),
    "cnn2d_el2n4": (*LEARNERS["cnn2d"], 2, "el2n", 4),
    "cnn2d_forgetting": (*LEARNERS["cnn2d"], 10, "forgetting", 1),
    "selector": (functools.partial(MLP, hidden_sizes=(32,)), 1e-3, 1, "el2n", 1),
}


def selector_scores(name: str, dm: PruningDataModule, seed: int) -> tuple[np.ndarray, float]:
    """Per-example scores (larger = harder) chosen by selector ``name`` and what they cost (FLOPs)."""
    n = dm.num_examples
    if name == "prototypes":  # embedding only: no model, no labels
        x = torch.stack([dm.train_dataset[i][0] for i in range(n)]).reshape(n, -1).numpy()
        return prototype_distance(x, num_clusters=10, seed=seed), 0.0
    make_net, lr, epochs, score, inits = MODEL_SELECTORS[name]
    tables, flops = [], 0.0
    for init in range(inits):  # independent initialisations (init 0 is the seed's own)
        pl.seed_everything(seed + 1000 * init, workers=True)
        dm.reset_pruning()
        probe = Classifier(make_net, dm.input_shape, dm.num_classes, optimizer="adam", lr=lr, cosine_schedule=False)
        difficulty = DifficultyCallback(scores=[score])
        served = dm.train_examples_served
        quiet_trainer("cpu", epochs, callbacks=[difficulty]).fit(probe, datamodule=dm)
        flops += run_flops(dm.train_examples_served - served, n, flops_of(make_net, dm))
        tables.append(difficulty.score_table)
    return average_tables(tables)[score], flops  # as the app's probe.seeds averages its probes


def choose(
    scores: np.ndarray | None, dm: PruningDataModule, keep: float, seed: int, class_balanced: bool = False
) -> np.ndarray:
    """The hardest ``keep`` by ``scores`` (of every class, with ``class_balanced``), or a random subset of the same
    size when ``scores`` is ``None``."""
    n = dm.num_examples
    if scores is None:
        return select(np.zeros(n), keep, "random", seed=seed)
    labels = dm.labels if class_balanced else None
    return select(scores, keep, "hard", seed=seed, labels=labels, class_balanced=class_balanced)


# Run cache ----------------------------------------------------------------------------------------
class RunCache:
    """Finished runs in a CSV (one row each, by key); a rerun skips them. ``None`` path: nothing kept."""

    def __init__(self, path: Path | None, key_fields: Sequence[str]) -> None:
        self.path, self.key_fields = path, tuple(key_fields)
        self.rows: list[dict[str, Any]] = []
        if path is not None and path.is_file():
            with path.open(newline="") as handle:
                self.rows = list(csv.DictReader(handle))

    def _key(self, row: dict[str, Any]) -> tuple[str, ...]:
        return tuple(str(row[field]) for field in self.key_fields)

    def get(self, **key: Any) -> dict[str, Any] | None:
        wanted = self._key(key)
        return next((row for row in self.rows if self._key(row) == wanted), None)

    def add(self, row: dict[str, Any]) -> dict[str, Any]:
        self.rows.append(row)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fields = list(dict.fromkeys(field for item in self.rows for field in item))
            with self.path.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=fields)
                writer.writeheader()
                writer.writerows(self.rows)
        return row
