"""The compute frontier: test accuracy against training compute (FLOPs, probe included), per method.

The honest baseline for data pruning is not "pruned vs full data at the same epochs" but the full-data
run stopped early: all data trained for fewer epochs, each run with its learning-rate schedule fitted
to its own length. A method pays only where it lies *above* that line. Three regimes:

- ``a``: MNIST-1D, 45,000 training examples, CNN1D, multi-epoch (15 epochs = compute 1.0);
- ``b``: MNIST-1D pool of ~196,000 generated training examples, CNN1D, budget about one pass
  (one pass = compute 1.0; a step-wise cosine schedule, so a fraction of a pass is a complete run);
- ``c``: scarce real data: scikit-learn digits (1,294 training examples), MLP, 20 epochs = 1.0;
- ``d``: regime ``a`` with 20 % of the training labels replaced by a uniformly random other class
  (``d40``: 40 %); validation and test labels clean, a new draw of the noise per seed. The all-data line
  trains on all the noisy data: that is what a user without datadiet gets.
- ``f``: Fashion-MNIST (54,000 training images, Debian's ``dataset-fashion-mnist``), CNN2D 16/32 (hidden 64)
  with batch norm, AdamW 2e-3, 10 epochs = 1.0; ``f20``: 20 % of the training labels a random other class;
  ``f-pair``: 30 % moved to the next class (c -> c + 1).
- ``e``: a byte-level causal language model (``TinyGPT``) on the Python standard library's source, 2,000
  windows of 64 bytes, 16 epochs = 1.0; ``e6000``: 6,000 windows, 8 epochs = 1.0. Held-out files; the metric
  is held-out bits per byte (lower is better; ``benchmarks/_lm.py``).

Online RHO-LOSS (``rho`` rows, :class:`~datadiet.ReducibleLossSelection`) trains its irreducible-loss model on a
holdout split of the (noisy) training set first; its training presentations and forwards count in the run's
compute, and the IL losses are cached per regime and seed in ``results/rho_irreducible/`` (a rerun of another
fraction reuses them; the cost counted is that of computing them). In the noisy regimes its "wrong labels"
column is the share of its training *presentations* that carried a wrong label.

Compute (DESIGN.md §5b): each model's forward FLOPs per example measured once with
``torch.utils.flop_counter.FlopCounterMode`` (:func:`datadiet.compute.forward_flops_per_example`), a
training presentation at 3x forward, a scoring-pass forward at 1x; presentations are counted by the data
module (what ``training_step`` really saw). Every run is one row of ``benchmarks/results/frontier_runs.csv``
(the noisy regimes' rows, with the share of wrong labels in the kept set, in ``frontier_noisy_runs.csv``;
kept between invocations: a rerun only trains what is missing, ``--fresh`` starts over); the summary per
method is ``frontier_<regime>.csv``, the plot ``docs/figures/frontier_<regime>.png``, and the tables are
printed last.

    python -m benchmarks.frontier                      # all regimes, 3 seeds (~1 h on 2 idle cores)
    python -m benchmarks.frontier --regimes a --seeds 3
    python -m benchmarks.frontier --quick              # tiny sizes: checks the script runs
"""

from __future__ import annotations

import csv
import functools
import logging
import math
import os
import sys
import textwrap
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import lightning.pytorch as pl
import numpy as np
import torch

from benchmarks import _lm
from benchmarks._timing import base_parser, machine, quiet_trainer, results_dir
from datadiet import DifficultyCallback, PruningDataModule
from datadiet.compute import ComputeAccount, forward_flops_per_example, full_data_flops
from datadiet.models import CNN1D, CNN2D, MLP, Classifier

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"
RUNS_FILE = "frontier_runs.csv"
#: ``test_acc`` holds the regime's test metric (``Regime.metric``: accuracy as a fraction, or bits per byte).
RUN_COLUMNS = (
    "regime",
    "method",
    "label",
    "seed",
    "test_acc",
    "compute",
    "flops",
    "train_presentations",
    "probe_presentations",
    "scored_main",
    "scored_probe",
    "wall_s",
)
#: The regimes with label noise keep their rows apart, with what only they can measure.
NOISY_RUNS_FILE = "frontier_noisy_runs.csv"
NOISY_RUN_COLUMNS = RUN_COLUMNS + ("kept", "kept_flipped", "flagged", "flagged_flipped")


# The regimes ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Regime:
    """One data set, model and budget; ``unit_epochs`` epochs of all data are compute 1.0."""

    name: str
    title: str
    make_data: Callable[[int], PruningDataModule]
    make_net: Callable[..., torch.nn.Module]
    lr: float
    unit_epochs: float
    #: Compute points of the full-data frontier, in units of ``unit_epochs`` full-data epochs.
    frontier: tuple[float, ...]
    step_schedule: bool = False
    methods: tuple[tuple[str, dict[str, Any]], ...] = field(default_factory=tuple)
    #: Share of training labels replaced by a uniformly random other class (a new draw per seed).
    label_noise: float = 0.0
    #: The test metric: ``evaluate(model, dm)`` (default: accuracy), its name, whether higher is better, and
    #: the factor it is shown with (100: a fraction shown in %).
    evaluate: Optional[Callable[[pl.LightningModule, PruningDataModule], float]] = None
    metric: str = "test accuracy (%)"
    higher_is_better: bool = True
    metric_scale: float = 100.0
    #: The LightningModule around ``make_net`` (and the probe's), its optimizer, and the selector probe's net.
    module: Callable[..., pl.LightningModule] = Classifier
    optimizer: str = "adam"
    selector: Optional[Callable[..., torch.nn.Module]] = None
    #: Whether the README's recommended configuration (``RECOMMENDED``) is highlighted in this regime.
    recommended: bool = True


def _mnist1d(
    num_samples: int, val_fraction: float, batch_size: int, num_train: Optional[int] = None, label_noise: float = 0.0
):
    from datadiet.data.sources import mnist1d_datamodule

    def make(seed: int) -> PruningDataModule:
        return mnist1d_datamodule(
            num_samples=num_samples,
            val_fraction=val_fraction,
            seed=42,
            batch_size=batch_size,
            eval_batch_size=1024,
            num_train=num_train,
            label_noise=label_noise,
            label_noise_seed=seed,
        )

    return make


def _fashion(batch_size: int, label_noise: float = 0.0, kind: str = "symmetric", num_train: Optional[int] = None):
    from datadiet.data.sources import fashion_mnist_datamodule

    def make(seed: int) -> PruningDataModule:
        return fashion_mnist_datamodule(
            download=False,
            batch_size=batch_size,
            eval_batch_size=1024,
            num_train=num_train,
            label_noise=label_noise,
            label_noise_kind=kind,
            label_noise_seed=seed,
        )

    return make


def _digits(batch_size: int):
    from datadiet.data.sources import digits_datamodule

    def make(seed: int) -> PruningDataModule:
        return digits_datamodule(seed=0, batch_size=batch_size, eval_batch_size=512)

    return make


#: The (f) regimes' network: CNN2D 16/32 with a hidden layer of 64 (batch norm; 2.2 MFLOPs an image, a quarter of
#: CNN2D's default 32/64, hidden 128), the net of the reduced runs and of the transfer table.
FASHION_NET = functools.partial(CNN2D, channels=(16, 32), hidden=64)


def tiny_mlp(input_shape: Sequence[int], num_classes: int) -> torch.nn.Module:
    """The small "selector" probe: one hidden layer of 32 units (~1/20 of the CNN1D's forward FLOPs)."""
    return MLP(input_shape, num_classes, hidden_sizes=(32,))


def _static(keep: float, strategy: str, route: str, **extra: Any) -> tuple[str, dict[str, Any]]:
    return "static", {"keep": keep, "strategy": strategy, "route": route, **extra}


def _rho(
    fraction: float,
    epochs: int,
    il_model: str = "cnn",
    holdout: float = 0.1,
    il_epochs: int = 10,
    il_batch: int = 32,
    **extra: Any,
) -> tuple[str, dict[str, Any]]:
    """Online RHO-LOSS: large batches of ``128 / fraction`` (the step still trains on 128), ``epochs`` epochs;
    the IL model trained on a ``holdout`` split (excluded from training) for ``il_epochs`` in batches of
    ``il_batch`` (at equal FLOPs, batches of 32 give a far better IL model than 128 on 4,500 examples)."""
    return "rho", {
        "fraction": fraction,
        "epochs": epochs,
        "il_model": il_model,
        "holdout": holdout,
        "il_epochs": il_epochs,
        "il_batch": il_batch,
        **extra,
    }


#: Online RHO-LOSS, in (a) and the noisy regimes: the paper's 10 % and larger fractions; a better IL model.
RHO_METHODS = (
    _rho(0.5, 15),
    _rho(0.3, 15),
    _rho(0.1, 15),
    _rho(0.5, 15, holdout=0.2),
)


def regimes(quick: bool) -> dict[str, Regime]:
    """The three regimes (tiny sizes with ``quick``)."""
    cnn = functools.partial(CNN1D)
    common_a = dict(score="el2n")
    a_methods = (
        _static(0.5, "random", "none"),
        _static(0.7, "random", "none"),
        _static(0.5, "hard", "probe", probe_epochs=2, **common_a),
        _static(0.7, "hard", "probe", probe_epochs=2, **common_a),
        _static(0.7, "hard", "selector", probe_epochs=1, class_balanced=True, **common_a),
        _static(0.5, "hard", "in_run", probe_epochs=2, **common_a),
        _static(0.7, "hard", "in_run", probe_epochs=2, **common_a),
        _static(0.7, "hard", "in_run", probe_epochs=2, class_balanced=True, **common_a),
        _static(0.3, "hard", "in_run", probe_epochs=2, **common_a),
        _static(0.5, "hard", "in_run", probe_epochs=1, **common_a),
        _static(0.5, "random", "in_run", probe_epochs=2),
        _static(0.7, "hard", "in_run", probe_epochs=2, prune_ratio=0.5, **common_a),
        _static(0.7, "hard", "in_run", probe_epochs=2, prune_ratio=0.3, **common_a),
        _static(0.7, "hard", "in_run", probe_epochs=2, prune_ratio=0.2, **common_a),
        _static(0.6, "hard", "in_run", probe_epochs=2, prune_ratio=0.3, **common_a),
        ("dynamic", {"prune_ratio": 0.3}),
        ("dynamic", {"prune_ratio": 0.5}),
        ("dynamic", {"prune_ratio": 0.7}),
        ("dynamic", {"prune_ratio": 0.4}),
        ("dynamic", {"prune_ratio": 0.6}),
        ("dynamic", {"prune_ratio": 0.5, "anneal": 0.2}),
        ("dynamic", {"prune_ratio": 0.5, "rule": "seta"}),
        ("dynamic", {"prune_ratio": 0.7, "rule": "seta"}),
        ("dynamic", {"prune_ratio": 0.7, "epochs": 19}),
        ("dynamic", {"prune_ratio": 0.6, "epochs": 17}),
        ("dynamic", {"prune_ratio": 0.8, "epochs": 22}),
        _static(0.7, "hard", "in_run", probe_epochs=2, prune_ratio=0.5, epochs=19, **common_a),
        _static(0.6, "hard", "in_run", probe_epochs=2, prune_ratio=0.5, epochs=19, **common_a),
        _static(0.7, "hard", "in_run", probe_epochs=2, prune_ratio=0.6, epochs=22, **common_a),
        _static(0.45, "hard", "in_run", probe_epochs=3, mislabelled="exclude_disagreeing", **common_a),
        _static(0.45, "hard", "in_run", probe_epochs=3, mislabelled="exclude", **common_a),
        _static(0.5, "hard", "in_run", probe_epochs=2, mislabelled="auto", **common_a),  # the default since issue 17
        _static(0.5, "hard", "in_run", probe_epochs=2, mislabelled="auto", detector="below_chance", **common_a),  # 27
    )
    b_methods = (
        _static(0.5, "random", "none"),
        _static(0.5, "hard", "selector", probe_epochs=1, class_balanced=True, score="el2n"),
        _static(0.7, "hard", "selector", probe_epochs=1, class_balanced=True, score="el2n"),
        _static(0.5, "ccs", "selector", probe_epochs=1, class_balanced=True, score="el2n"),
        ("dynamic", {"prune_ratio": 0.5, "epochs": 2}),
        ("dynamic", {"prune_ratio": 0.7, "epochs": 2}),
        _static(0.4, "random", "none", epochs=2, prune_ratio=0.7),
        _static(0.25, "random", "none", epochs=2, prune_ratio=0.7),
        _static(0.5, "random", "none", epochs=2),
    )
    c_methods = (
        _static(0.5, "random", "none"),
        _static(0.7, "random", "none"),
        _static(0.5, "easy", "in_run", probe_epochs=4, score="el2n"),
        _static(0.5, "hard", "in_run", probe_epochs=4, score="el2n"),
        _static(0.5, "hard", "in_run", probe_epochs=2, score="el2n"),
        _static(0.5, "random", "in_run", probe_epochs=2),
        _static(0.5, "random", "in_run", probe_epochs=4),
        _static(0.7, "hard", "in_run", probe_epochs=4, score="el2n"),
        _static(0.7, "easy", "in_run", probe_epochs=4, score="el2n"),
        ("dynamic", {"prune_ratio": 0.3}),
        ("dynamic", {"prune_ratio": 0.5}),
        _static(0.5, "hard", "in_run", probe_epochs=2, mislabelled="auto", detector="below_chance", **common_a),  # 27
    )
    # Noisy labels (issue 17): the same data and model as (a); what keeps the hard without keeping the wrong.
    d_methods = (
        _static(0.5, "random", "none"),
        _static(0.7, "random", "none"),
        _static(0.5, "random", "in_run", probe_epochs=2),
        _static(0.5, "hard", "in_run", probe_epochs=2, **common_a),
        _static(0.7, "hard", "in_run", probe_epochs=2, **common_a),
        _static(0.5, "easy", "in_run", probe_epochs=2, **common_a),
        ("dynamic", {"prune_ratio": 0.5}),
        _static(0.5, "hard", "in_run", probe_epochs=2, mislabelled="exclude", **common_a),
        _static(0.45, "hard", "in_run", probe_epochs=3, mislabelled="exclude", **common_a),
        _static(0.45, "random", "in_run", probe_epochs=3, mislabelled="exclude"),
        _static(0.8, "random", "in_run", probe_epochs=3, mislabelled="exclude", prune_ratio=0.7),
        _static(0.6, "hard", "in_run", probe_epochs=3, mislabelled="exclude", prune_ratio=0.3, **common_a),
        _static(0.45, "hard", "in_run", probe_epochs=3, mislabelled="exclude_disagreeing", **common_a),
        _static(0.5, "hard", "in_run", probe_epochs=2, mislabelled="exclude_disagreeing", **common_a),
        _static(0.5, "hard", "in_run", probe_epochs=2, mislabelled="auto", **common_a),  # the default until 27
        _static(0.5, "hard", "in_run", probe_epochs=2, mislabelled="auto", detector="below_chance", **common_a),  # 27
    )
    # Real images (issue 27): Fashion-MNIST, a small CNN with batch norm, 10 epochs;
    # clean, 20 % symmetric, 30 % pairwise.
    f_methods = (
        _static(0.5, "random", "none"),
        _static(
            0.5, "hard", "in_run", probe_epochs=2, mislabelled="auto", detector="below_chance", **common_a
        ),  # default
        _static(0.5, "hard", "in_run", probe_epochs=2, mislabelled="auto", **common_a),  # the default until issue 27
        _static(0.5, "hard", "in_run", probe_epochs=2, **common_a),  # the default without detection
        _static(0.5, "random", "in_run", probe_epochs=2),
        ("dynamic", {"prune_ratio": 0.5}),
        ("dynamic", {"prune_ratio": 0.3}),
    )
    f_noisy_methods = f_methods + (_static(0.45, "hard", "in_run", probe_epochs=3, mislabelled="exclude", **common_a),)
    # A byte-level language model (benchmarks/_lm.py): many epochs over little text (e), and fewer over more (e6000).
    e_methods = (
        _static(0.5, "random", "none"),
        _static(0.5, "hard", "in_run", probe_epochs=4, score="loss"),
        _static(0.7, "hard", "in_run", probe_epochs=4, score="loss"),
        _static(0.5, "easy", "in_run", probe_epochs=4, score="loss"),
        ("dynamic", {"prune_ratio": 0.3}),
        ("dynamic", {"prune_ratio": 0.5}),
        ("dynamic", {"prune_ratio": 0.7}),
        ("dynamic", {"prune_ratio": 0.7, "epochs": 20}),
    )
    e6000_methods = (
        _static(0.5, "hard", "in_run", probe_epochs=2, score="loss"),
        ("dynamic", {"prune_ratio": 0.3}),
        ("dynamic", {"prune_ratio": 0.5}),
    )
    if quick:
        return {
            "a": Regime(
                "a",
                "quick MNIST-1D",
                _mnist1d(3000, 0.1, 128, num_train=600),
                cnn,
                5e-3,
                3,
                (2 / 3, 1.0),
                methods=a_methods[:1]
                + a_methods[2:3]
                + a_methods[5:6]
                + a_methods[28:29]
                + (_rho(0.5, 3, il_epochs=2),),
            ),
            "d": Regime(
                "d",
                "quick MNIST-1D, 20 % noisy labels",
                _mnist1d(3000, 0.1, 128, num_train=600, label_noise=0.2),
                cnn,
                5e-3,
                3,
                (2 / 3, 1.0),
                methods=tuple(m for m in d_methods if m[1].get("mislabelled") and m[1]["probe_epochs"] == 2)[:1]
                + (_rho(0.5, 3, il_epochs=2),),
                label_noise=0.2,
            ),
            "f": Regime(
                "f",
                "quick Fashion-MNIST",
                _fashion(128, num_train=1000),
                FASHION_NET,
                2e-3,
                3,
                (2 / 3, 1.0),
                methods=f_methods[:2] + f_methods[5:6],
                optimizer="adamw",
            ),
            "e": Regime(
                "e",
                "quick byte-level LM",
                _lm.make_data(256, 64),
                _lm.NET,
                3e-3,
                3,
                (2 / 3, 1.0),
                methods=(_static(0.5, "hard", "in_run", probe_epochs=2, score="loss"), e_methods[5]),
                **_lm.REGIME_OPTIONS,
            ),
        }
    return {
        "a": Regime(
            "a",
            "MNIST-1D, 45,000 training examples, CNN1D (1.0 = 15 epochs)",
            _mnist1d(62500, 0.1, 128),
            cnn,
            5e-3,
            15,
            (4 / 15, 6 / 15, 8 / 15, 10 / 15, 12 / 15, 1.0),
            methods=a_methods + RHO_METHODS,
        ),
        "b": Regime(
            "b",
            "MNIST-1D pool of 196,000 training examples, CNN1D, about one pass (1.0 = one pass)",
            _mnist1d(250000, 0.02, 256),
            cnn,
            5e-3,
            1,
            (0.25, 0.5, 0.75, 1.0, 1.5, 2.0),
            step_schedule=True,
            methods=b_methods,
        ),
        "c": Regime(
            "c",
            "digits, 1,294 training examples, MLP (1.0 = 20 epochs)",
            _digits(64),
            functools.partial(MLP),
            1e-3,
            20,
            (0.1, 0.2, 0.3, 0.5, 0.75, 1.0),
            methods=c_methods,
        ),
        **{
            name: Regime(
                name,
                f"MNIST-1D 45k, {noise:.0%} of the training labels wrong (a random other class), CNN1D "
                "(1.0 = 15 epochs)",
                _mnist1d(62500, 0.1, 128, label_noise=noise),
                cnn,
                5e-3,
                15,
                frontier,
                methods=d_methods + RHO_METHODS,
                label_noise=noise,
            )
            for name, noise, frontier in (
                ("d", 0.2, (4 / 15, 6 / 15, 8 / 15, 10 / 15, 12 / 15, 1.0)),
                ("d40", 0.4, (6 / 15, 8 / 15, 10 / 15, 1.0)),
            )
        },
        **{
            name: Regime(
                name,
                f"Fashion-MNIST, 54,000 training images{noise_words}, CNN2D with batch norm, AdamW (1.0 = 10 epochs)",
                _fashion(128, noise, kind),
                FASHION_NET,
                2e-3,
                10,
                (0.4, 0.5, 0.6, 0.8, 1.0),
                methods=methods,
                label_noise=noise,
                optimizer="adamw",
            )
            for name, noise, kind, noise_words, methods in (
                ("f", 0.0, "symmetric", "", f_methods),
                ("f20", 0.2, "symmetric", ", 20 % of the labels wrong (a random other class)", f_noisy_methods),
                ("f-pair", 0.3, "pairwise", ", 30 % of the labels wrong (class c -> c + 1)", f_noisy_methods),
            )
        },
        "e": Regime(
            "e",
            "byte-level LM (TinyGPT, 85k params), Python stdlib source, 2,000 windows of 64 B (1.0 = 16 epochs)",
            _lm.make_data(2000, 1000),
            _lm.NET,
            1e-2,
            16,
            (0.25, 0.375, 0.5, 0.625, 0.75, 1.0),
            methods=e_methods,
            **_lm.REGIME_OPTIONS,
        ),
        "e6000": Regime(
            "e6000",
            "byte-level LM as (e), 6,000 windows, AdamW 3e-3 (1.0 = 8 epochs)",
            _lm.make_data(6000, 1000),
            _lm.NET,
            3e-3,
            8,
            (0.25, 0.5, 0.75, 1.0),
            methods=e6000_methods,
            **_lm.REGIME_OPTIONS,
        ),
    }


# One run ---------------------------------------------------------------------------------------------
def _classifier(regime: Regime, dm: PruningDataModule, net: Any = None, lr: Optional[float] = None) -> Classifier:
    return regime.module(
        net or regime.make_net,
        dm.input_shape,
        dm.num_classes,
        optimizer=regime.optimizer,
        lr=lr or regime.lr,
        cosine_schedule=True,
        schedule_interval="step" if regime.step_schedule else "epoch",
    )


def _fit(model: Classifier, dm: PruningDataModule, epochs: float, callbacks: Sequence[pl.Callback] = ()) -> int:
    """Trains for ``epochs`` epochs of the data module's current training set (a fraction: ``max_steps``);
    returns the presentations it made."""
    served = dm.train_examples_served
    options: dict[str, Any] = {}
    if float(epochs).is_integer():
        max_epochs = int(epochs)
    else:
        current = dm.num_examples if dm.kept_indices is None else len(dm.kept_indices)
        options["max_steps"] = max(1, round(epochs * current / dm.batch_size))
        max_epochs = -1
    quiet_trainer("cpu", max_epochs, callbacks=list(callbacks), **options).fit(model, datamodule=dm)
    return dm.train_examples_served - served


def _test_accuracy(model: Classifier, dm: PruningDataModule) -> float:
    x, y = dm.test_dataset.tensors
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x[i : i + 4096]).argmax(1) == y[i : i + 4096]).sum()) for i in range(0, len(y), 4096))
    return correct / len(y)


def run_once(
    regime: Regime,
    method: str,
    params: dict[str, Any],
    seed: int,
    flops: dict[str, float],
    cache_dir: Optional[Path] = None,
) -> dict[str, Any]:
    """Trains one configuration with one seed; returns its row (accuracy, presentations, FLOPs, wall time).
    ``cache_dir`` keeps what several configurations share (RHO-LOSS's irreducible losses)."""
    from datadiet.callbacks import PruneDuringFit

    pl.seed_everything(seed, workers=True)
    dm = regime.make_data(seed)
    n = dm.num_examples
    issues = None  # a mislabel detector's flags, when the method runs one
    train_presentations = probe_presentations = scored_main = scored_probe = 0
    start = time.perf_counter()
    account, kept_stats = None, None
    if method == "rho":
        model, account, kept_stats = _rho_run(regime, dm, params, seed, flops, cache_dir)
        train_presentations, probe_presentations = account.train_presentations, account.probe_presentations
        scored_main, scored_probe = account.in_run_scored, account.probe_scored
    elif method == "full":
        model = _classifier(regime, dm)
        train_presentations = _fit(model, dm, params["epochs"])
    elif method == "dynamic":
        from datadiet.callbacks import DynamicPruning

        epochs = params.get("epochs", regime.unit_epochs)
        model = _classifier(regime, dm)
        pruning = DynamicPruning(
            prune_ratio=params["prune_ratio"],
            anneal_fraction=params.get("anneal", 0.125),
            seed=seed,
            rule=params.get("rule", "infobatch"),
        )
        train_presentations = _fit(model, dm, epochs, [pruning])
    else:  # static
        keep, strategy, route = params["keep"], params["strategy"], params["route"]
        epochs = params.get("epochs", regime.unit_epochs)
        select_options = dict(
            score=params.get("score", "el2n"),
            keep_fraction=keep,
            strategy=strategy,
            class_balanced=params.get("class_balanced", False),
            seed=seed,
        )
        if route == "in_run":
            model = _classifier(regime, dm)
            prune = PruneDuringFit(
                after_epochs=params["probe_epochs"],
                mislabelled=params.get("mislabelled"),
                detector=params.get("detector", "both"),  # as the cached rows were made
                **select_options,
            )
            train_presentations = _fit(model, dm, epochs, [prune, *_dynamic_inside(params, seed)])
            scored_main = prune.scored_examples
            issues = prune.label_issues
            if prune.noise_decision is not None:  # what auto decided, for the log (not a column)
                decision = prune.noise_decision
                print(
                    f"  auto: estimate {decision.estimate:.3f}, confident learning "
                    f"{decision.confident_learning_estimate}, guard {decision.guard}",
                    flush=True,
                )
        else:
            if route == "none":
                dm.prune(
                    np.zeros(n),
                    keep_fraction=keep,
                    strategy=strategy,
                    seed=seed,
                    class_balanced=select_options["class_balanced"],
                )
            else:
                net = (regime.selector or tiny_mlp) if route == "selector" else regime.make_net
                probe = regime.module(
                    net,
                    dm.input_shape,
                    dm.num_classes,
                    lr=1e-3 if route == "selector" else regime.lr,
                    cosine_schedule=False,
                )
                difficulty = DifficultyCallback(scores=[select_options["score"]])
                probe_presentations = _fit(probe, dm, params["probe_epochs"], [difficulty])
                scored_probe = n
                dm.prune(difficulty.score_table, **select_options)
            pl.seed_everything(seed, workers=True)
            model = _classifier(regime, dm)
            train_presentations = _fit(model, dm, epochs, _dynamic_inside(params, seed))
    wall = time.perf_counter() - start
    kept = np.arange(n) if dm.kept_indices is None else dm.kept_indices
    account = account or ComputeAccount(
        flops_per_example=flops["main"],
        train_presentations=train_presentations,
        probe_flops_per_example=flops["selector"] if params.get("route") == "selector" else flops["main"],
        probe_presentations=probe_presentations,
        probe_scored=scored_probe,
        in_run_scored=scored_main,
    )
    total = account.total_flops
    unit = full_data_flops(n, regime.unit_epochs, flops["main"])
    return {
        "regime": regime.name,
        "method": method,
        "label": label(method, params),
        "seed": seed,
        "test_acc": (regime.evaluate or _test_accuracy)(model, dm),
        "compute": total / unit,
        "flops": total,
        "train_presentations": train_presentations,
        "probe_presentations": probe_presentations,
        "scored_main": scored_main,
        "scored_probe": scored_probe,
        "wall_s": round(wall, 2),
        **(
            {}
            if dm.label_noise is None
            else {
                "kept": len(kept),
                "kept_flipped": int(dm.label_noise.is_flipped()[kept].sum()),
                **(kept_stats or {}),
                "flagged": "" if issues is None else issues.num_flagged,
                "flagged_flipped": "" if issues is None else int((issues.flagged & dm.label_noise.is_flipped()).sum()),
                **_relabel_stats(dm),
            }
        ),
    }


def _relabel_stats(dm: PruningDataModule) -> dict[str, Any]:
    """``mislabelled=relabel``: how many examples were relabelled, and how many of them now carry their true class."""
    treatment = dm.flagged_treatment
    if treatment is None or treatment.kind != "relabel":
        return {}
    truth = dm.label_noise.clean_labels[treatment.indices]
    return {"relabelled": len(treatment.indices), "relabelled_right": int((treatment.labels == truth).sum())}


def _rho_run(
    regime: Regime,
    dm: PruningDataModule,
    params: dict[str, Any],
    seed: int,
    flops: dict[str, float],
    cache_dir: Optional[Path],
) -> tuple[Classifier, ComputeAccount, Optional[dict[str, int]]]:
    """Online RHO-LOSS: the IL model on a holdout split (cached), then the main model with
    :class:`~datadiet.ReducibleLossSelection`; returns the model, its compute and, with label noise, its
    presentations and how many of them carried a wrong label."""
    from datadiet import ReducibleLossSelection
    from datadiet.scores.rho_loss import fit_irreducible_losses

    small = params["il_model"] == "mlp"
    cross_fit = params.get("cross_fit", False)

    def il_model() -> Classifier:
        return Classifier(
            tiny_mlp if small else regime.make_net,
            dm.input_shape,
            dm.num_classes,
            optimizer="adam",
            lr=1e-3 if small else regime.lr,
            cosine_schedule=True,
        )

    # keyed by the training set's content too: a changed noise draw or source never reads stale losses
    name = (
        f"{regime.name}_{seed}_{dm.fingerprint()[:12]}_{params['il_model']}_h{params['holdout']}"
        f"_{params['il_epochs']}ep_b{params['il_batch']}{'_x' if cross_fit else ''}"
    )
    cache = None if cache_dir is None else cache_dir / "rho_irreducible" / f"{name}.npz"
    record = fit_irreducible_losses(
        dm.train_dataset,
        il_model,
        params["holdout"],
        cross_fit=cross_fit,
        seed=seed,
        batch_size=params["il_batch"],
        trainer_factory=lambda **kw: quiet_trainer("cpu", params["il_epochs"], **kw),
        collate_fn=dm.collate_fn,
        cache_path=cache,
    )
    pl.seed_everything(seed, workers=True)
    dm.batch_size = round(128 / params["fraction"])
    model = _classifier(regime, dm)
    selection = ReducibleLossSelection(record, selected_fraction=params["fraction"])
    _fit(model, dm, params["epochs"], [selection])
    kept_stats = None
    if dm.label_noise is not None:
        times = selection.times_selected
        kept_stats = {"kept": int(times.sum()), "kept_flipped": int(times[dm.label_noise.is_flipped()].sum())}
    return model, selection.compute_account(flops["main"]), kept_stats


def _dynamic_inside(params: dict[str, Any], seed: int) -> list[pl.Callback]:
    """``DynamicPruning`` inside a static subset (the app's ``pruning.mode=both``) when ``prune_ratio`` is given."""
    if "prune_ratio" not in params:
        return []
    from datadiet.callbacks import DynamicPruning

    return [DynamicPruning(prune_ratio=params["prune_ratio"], anneal_fraction=0.125, seed=seed)]


def label(method: str, params: dict[str, Any]) -> str:
    """A short, unique name of a configuration (the key of the cached rows)."""
    if method == "full":
        return f"all data, {params['epochs']:g} ep"
    if method == "rho":
        il = (
            f"IL {params['il_model']} {params['holdout']:.0%} x {params['il_epochs']} ep, batch {params['il_batch']}"
            + (", cross-fit" if params.get("cross_fit") else "")
        )
        return f"RHO-LOSS {params['fraction']:.0%} of {round(128 / params['fraction'])}, {params['epochs']} ep ({il})"
    if method == "dynamic":
        epochs = f", {params['epochs']} ep" if "epochs" in params else ""
        anneal = f", anneal {params['anneal']}" if "anneal" in params else ""
        rule = "SeTa" if params.get("rule") == "seta" else "dynamic"
        return f"{rule} r={params['prune_ratio']}{epochs}{anneal}"
    route = {
        "none": "no probe",
        "probe": f"probe {params.get('probe_epochs')} ep",
        "in_run": f"in-run after {params.get('probe_epochs')} ep",
        "selector": f"selector {params.get('probe_epochs')} ep",
    }
    balanced = ", balanced" if params.get("class_balanced") else ""
    dynamic = f" + dynamic r={params['prune_ratio']}" if "prune_ratio" in params else ""
    epochs = f", {params['epochs']} ep" if "epochs" in params else ""
    flagged = f", {params['mislabelled']} flagged" if params.get("mislabelled") else ""
    if params.get("mislabelled") == "auto":
        flagged = ", mislabelled auto"
    if params.get("detector"):  # rows without one ran cleanlab's `both`, the default detector before issue 27
        flagged += f", {params['detector']}"
    return f"{params['strategy']} {params['keep']:.0%} ({route[params['route']]}{balanced}{epochs}{flagged}){dynamic}"


# Caching rows, summarising, plotting ------------------------------------------------------------------
def load_runs(path: Optional[Path]) -> list[dict[str, Any]]:
    """The cached rows of ``path`` and of the noisy regimes' file beside it."""
    if path is None:
        return []
    rows = []
    for file in (path, path.with_name(NOISY_RUNS_FILE)):
        if file.is_file():
            with open(file, newline="") as handle:
                rows += list(csv.DictReader(handle))
    for row in rows:
        row["seed"] = int(row["seed"])
        for key in ("test_acc", "compute", "flops", "wall_s"):
            row[key] = float(row[key])
        for key in ("kept", "kept_flipped", "flagged", "flagged_flipped"):
            if row.get(key) not in (None, ""):
                row[key] = int(row[key])
    return rows


def save_runs(path: Optional[Path], rows: list[dict[str, Any]]) -> None:
    """Writes the rows to ``path``, those of the noisy regimes (with their extra columns) beside it."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    for file, columns, noisy in (
        (path, RUN_COLUMNS, False),
        (path.with_name(NOISY_RUNS_FILE), NOISY_RUN_COLUMNS, True),
    ):
        chosen = [row for row in rows if ("kept_flipped" in row) == noisy]
        if noisy and not chosen:
            continue
        tmp = file.with_suffix(".tmp")
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows({key: row.get(key, "") for key in columns} for row in chosen)
        os.replace(tmp, file)


def summarise(
    rows: list[dict[str, Any]], regime: str, scale: float = 100.0, higher_is_better: bool = True
) -> list[dict[str, Any]]:
    """Mean and std over seeds of the metric (``acc_*``, times ``scale``), compute, presentations and wall time,
    per configuration; ``above_frontier`` is how much better than the frontier at the same compute."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["regime"] == regime:
            groups.setdefault(row["label"], []).append(row)
    # the injected wrong labels: all of them are in a full-data run's kept set
    flipped = next((r.get("kept_flipped") for r in rows if r["regime"] == regime and r["method"] == "full"), None)
    table = []
    for name, runs in groups.items():
        acc = np.array([r["test_acc"] for r in runs]) * scale
        table.append(
            {
                "label": name,
                "method": runs[0]["method"],
                "seeds": len(runs),
                "acc_mean": acc.mean(),
                "acc_std": acc.std(ddof=1) if len(acc) > 1 else 0.0,
                "compute": float(np.mean([r["compute"] for r in runs])),
                "presentations": float(
                    np.mean([float(r["train_presentations"]) + float(r["probe_presentations"]) for r in runs])
                ),
                "wall_s": float(np.mean([r["wall_s"] for r in runs])),
                **(
                    {"kept_wrong_share": float(np.mean([r["kept_flipped"] / r["kept"] for r in runs]))}
                    if "kept_flipped" in runs[0]
                    else {}
                ),
                **_detector_rates(runs, flipped),
            }
        )
    frontier = sorted((t for t in table if t["method"] == "full"), key=lambda t: t["compute"])
    for entry in table:
        entry["frontier_acc"] = frontier_at(frontier, entry["compute"])
        entry["above_frontier"] = (entry["acc_mean"] - entry["frontier_acc"]) * (1 if higher_is_better else -1)
    return sorted(table, key=lambda t: (t["method"] != "full", t["method"], t["compute"]))


def _detector_rates(runs: list[dict[str, Any]], flipped: Optional[int]) -> dict[str, float]:
    """Mean precision and recall of a mislabel detector's flags against the ``flipped`` injected wrong labels."""
    scored = [r for r in runs if r.get("flagged") not in (None, "")]
    if not scored or not flipped:
        return {}
    return {
        "detector_precision": float(np.mean([r["flagged_flipped"] / max(r["flagged"], 1) for r in scored])),
        "detector_recall": float(np.mean([r["flagged_flipped"] / flipped for r in scored])),
    }


def frontier_at(frontier: list[dict[str, Any]], compute: float) -> float:
    """The full-data frontier's accuracy at ``compute``, linear between its points (NaN outside them)."""
    if not frontier or compute < frontier[0]["compute"] - 1e-9 or compute > frontier[-1]["compute"] + 1e-9:
        return float("nan")
    xs = [t["compute"] for t in frontier]
    ys = [t["acc_mean"] for t in frontier]
    return float(np.interp(compute, xs, ys))


#: The configuration the README recommends, the app's default (highlighted in the plots and the tables).
RECOMMENDED = "hard 50% (in-run after 2 ep, mislabelled auto)"
#: The default since issue 27: auto with the below_chance detector (rows to be run; the lead moves the highlight).
DEFAULT_27 = "hard 50% (in-run after 2 ep, mislabelled auto, below_chance)"
#: The default before ``mislabelled=auto``: on clean labels (the detector under its threshold) the same run.
CLEAN_DEFAULT = "hard 50% (in-run after 2 ep)"
#: Always excluding what the detector flags after 3 epochs (issue 17: hard, not wrong), highlighted too.
RECOMMENDED_NOISY = "hard 45% (in-run after 3 ep, exclude flagged)"


def _recommended(name: str) -> str:
    """The tag of a recommended configuration ("" for the others)."""
    return {
        DEFAULT_27: "the default since issue 27",
        RECOMMENDED: "recommended, the default until issue 27",
        CLEAN_DEFAULT: "the default without detection; auto on clean labels",
        RECOMMENDED_NOISY: "always exclude flagged",
    }.get(name, "")


def _family(entry: dict[str, Any]) -> str:
    name = entry["label"]
    if entry["method"] == "dynamic":
        return "dynamic pruning (InfoBatch)"
    if entry["method"] == "rho":
        return "online RHO-LOSS (IL model counted)"
    if name.startswith("random"):
        return "random subset"
    if "in-run" in name:
        return "static, in-run EL2N (no probe model)"
    return "static, separate probe"


_FAMILY_COLORS = {
    "random subset": "tab:green",
    "static, separate probe": "tab:blue",
    "static, in-run EL2N (no probe model)": "tab:purple",
    "dynamic pruning (InfoBatch)": "tab:red",
    "online RHO-LOSS (IL model counted)": "tab:orange",
}


def plot(table: list[dict[str, Any]], regime: Regime, path: Path) -> None:
    """Accuracy against compute: the frontier as a line, every other configuration a point (mean ± std)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5.2))
    frontier = [t for t in table if t["method"] == "full"]
    ax.errorbar(
        [t["compute"] for t in frontier],
        [t["acc_mean"] for t in frontier],
        yerr=[t["acc_std"] for t in frontier],
        color="black",
        lw=2,
        marker="o",
        capsize=3,
        label="all data, fewer epochs (the frontier to beat)",
    )
    markers = "sD^v<>pPXhd"
    seen: dict[str, int] = {}
    for entry in (t for t in table if t["method"] != "full"):
        family = _family(entry)
        index = seen[family] = seen.get(family, -1) + 1
        best = _recommended(entry["label"]) if regime.recommended else ""
        ax.errorbar(
            entry["compute"],
            entry["acc_mean"],
            yerr=entry["acc_std"],
            ls="none",
            capsize=3,
            marker="*" if best else markers[index % len(markers)],
            ms=14 if best else 7,
            color=_FAMILY_COLORS[family],
            mec="black" if best else None,
            label=f"{entry['label']}{f'  ← {best}' if best else ''}",
        )
    if frontier and regime.metric_scale == 100:
        full = min(frontier, key=lambda t: abs(t["compute"] - 1.0))  # the run compute 1.0 stands for
        ax.axhline(full["acc_mean"] - 0.5, color="gray", ls=":", lw=1, label="full-data accuracy − 0.5 pt")
    if table:
        low, high = min(t["acc_mean"] - t["acc_std"] for t in table), max(t["acc_mean"] + t["acc_std"] for t in table)
        margin = 0.5 if regime.metric_scale == 100 else 0.05 * (high - low)
        ax.set_ylim(low - margin, high + margin)
    unit = "one pass" if regime.step_schedule else f"{regime.unit_epochs:g} epochs of all data"
    ax.set_xlabel(f"compute: training + probe + scoring FLOPs (1.0 = {unit})")
    ax.set_ylabel(f"{regime.metric}, mean ± std over seeds" + ("" if regime.higher_is_better else " (lower is better)"))
    ax.set_title("\n".join(textwrap.wrap(regime.title, 75)), fontsize=10)  # whole: long titles wrap, not cut
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def print_table(table: list[dict[str, Any]], regime: Regime) -> None:
    print(f"\n## regime {regime.name}: {regime.title}")
    noisy = regime.label_noise > 0
    extra = " wrong labels in the kept set | detector precision / recall |" if noisy else ""
    print(
        f"| run | compute | {regime.metric} (mean ± std) | better than the frontier at same compute by | "
        f"presentations | wall s |{extra}"
    )
    print("|---|---|---|---|---|---|" + ("---|---|" if noisy else ""))
    unit, digits = (" pt", 2) if regime.metric_scale == 100 else ("", 4)
    for t in table:
        gap = (
            ""
            if t["method"] == "full" or math.isnan(t["above_frontier"])
            else f"{t['above_frontier']:+.{digits}f}{unit}"
        )
        tag = _recommended(t["label"]) if regime.recommended else ""
        name = f"**{t['label']}** ({tag})" if tag else t["label"]
        wrong = ""
        if noisy:
            wrong = (
                " — |" if t["method"] == "dynamic" or "kept_wrong_share" not in t else f" {t['kept_wrong_share']:.1%} |"
            )
            wrong += (
                f" {t['detector_precision']:.3f} / {t['detector_recall']:.3f} |"
                if "detector_precision" in t
                else " — |"
            )
        print(
            f"| {name} | {t['compute']:.3f} | "
            f"{t['acc_mean']:.{digits}f} ± {t['acc_std']:.{digits}f} (n={t['seeds']}) | "
            f"{gap} | {t['presentations']:,.0f} | {t['wall_s']:.1f} |{wrong}"
        )


def default_against_line(rows: list[dict[str, Any]], regime: str, name: str = DEFAULT_27) -> dict[str, Any]:
    """Configuration ``name`` against all data, seed by seed: each run minus its own seed's line at its compute
    (linear between the seed's full-data runs; a run past the line's end, such as one the regime guard kept
    whole at one scoring pass more than the full budget, is compared with the full budget). Points; ``{}``
    where the regime has no such runs."""
    runs = {r["seed"]: r for r in rows if r["regime"] == regime and r["label"] == name}
    gaps, over_full, beyond = {}, {}, []
    for seed, run in sorted(runs.items()):
        line = sorted(
            (float(r["compute"]), float(r["test_acc"]))
            for r in rows
            if r["regime"] == regime and r["method"] == "full" and r["seed"] == seed
        )
        if len(line) < 2:
            continue
        xs, ys = zip(*line)
        compute = float(run["compute"])
        if compute > xs[-1] + 1e-9:
            beyond.append(seed)
        acc = float(run["test_acc"])
        gaps[seed] = 100 * (acc - float(np.interp(min(compute, xs[-1]), xs, ys)))
        over_full[seed] = 100 * (acc - ys[-1])
    if not gaps:
        return {}
    values = np.array(list(gaps.values()))
    return {
        "regime": regime,
        "seeds": len(values),
        "acc_mean": 100 * float(np.mean([float(runs[s]["test_acc"]) for s in gaps])),
        "compute": float(np.mean([float(runs[s]["compute"]) for s in gaps])),
        "gap_mean": float(values.mean()),
        "gap_std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "gap_min": float(values.min()),
        "gaps": gaps,
        "over_full_budget_mean": float(np.mean(list(over_full.values()))),
        "beyond_line": beyond,
    }


def print_default_report(rows: list[dict[str, Any]], names: Sequence[str]) -> None:
    """The default against all data at the same compute on every regime, seed by seed (issue 27's table)."""
    print(f"\n## {DEFAULT_27} against all data at the same compute, paired by seed (points)")
    print("| regime | seeds | test acc (%) | compute | vs line, mean ± std | worst seed | per seed | vs full budget |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        report = default_against_line(rows, name)
        if not report:
            continue
        per_seed = " / ".join(f"{g:+.2f}" for g in report["gaps"].values())
        guarded = " (kept whole by the guard)" if report["beyond_line"] else ""
        print(
            f"| {name}{guarded} | {report['seeds']} | {report['acc_mean']:.2f} | {report['compute']:.3f} | "
            f"{report['gap_mean']:+.2f} ± {report['gap_std']:.2f} | {report['gap_min']:+.2f} | {per_seed} | "
            f"{report['over_full_budget_mean']:+.2f} |"
        )


def configurations(regime: Regime, only: Optional[set[str]]) -> list[tuple[str, dict[str, Any]]]:
    configs = [("full", {"epochs": round(c * regime.unit_epochs, 4)}) for c in regime.frontier]
    configs += list(regime.methods)
    return [c for c in configs if only is None or c[0] in only]


def measure_flops(regime: Regime) -> dict[str, float]:
    dm = regime.make_data(0)
    example = dm.train_dataset[0][0].unsqueeze(0).repeat(8, *([1] * dm.train_dataset[0][0].ndim))
    main = regime.make_net(input_shape=dm.input_shape, num_classes=dm.num_classes)
    selector = (regime.selector or tiny_mlp)(input_shape=dm.input_shape, num_classes=dm.num_classes)
    return {"main": forward_flops_per_example(main, example), "selector": forward_flops_per_example(selector, example)}


def main(argv: Optional[list[str]] = None) -> dict[str, list[dict[str, Any]]]:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument(
        "--regimes",
        default="a,b,c,d,d40",
        help="comma-separated: a, b, c, d, d40, e, e6000, f, f20, f-pair "
        "(f*: Fashion-MNIST's files, `make fashion-mnist`)",
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--only-seeds", default=None, help="comma-separated seeds to train, e.g. one per process (default: --seeds)"
    )
    parser.add_argument("--methods", default=None, help="only these: full, static, dynamic, rho (comma-separated)")
    parser.add_argument(
        "--labels",
        default=None,
        help="only configurations whose label is one of these (';'-separated, as the tables print them)",
    )
    parser.add_argument("--fresh", action="store_true", help="ignore the cached runs of frontier_runs.csv")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--report-only", action="store_true", help="print and plot the cached runs, train nothing")
    parser.add_argument(
        "--default-report",
        action="store_true",
        help="also print the default against all data at the same compute, seed by seed, on every regime chosen",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    out = results_dir(args)
    runs_path = None if out is None else out / RUNS_FILE
    rows = [] if args.fresh else load_runs(runs_path)
    done = {(r["regime"], r["label"], r["seed"]) for r in rows}
    only = None if args.methods is None else set(args.methods.split(","))
    seeds = [int(seed) for seed in args.only_seeds.split(",")] if args.only_seeds else range(args.seeds)  # as transfer
    all_regimes = regimes(args.quick)
    chosen = [all_regimes[name] for name in args.regimes.split(",") if name in all_regimes]
    print(f"machine: {machine()}; seeds {args.seeds}")
    figures = FIGURES if not args.quick else out
    for regime in chosen:
        flops = measure_flops(regime)
        print(
            f"regime {regime.name}: forward FLOPs per example, main {flops['main']:,.0f}, "
            f"selector {flops['selector']:,.0f}",
            flush=True,
        )
        if args.report_only:
            continue
        for method, params in configurations(regime, only):
            if args.labels is not None and label(method, params) not in args.labels.split(";"):
                continue
            for seed in seeds:
                key = (regime.name, label(method, params), seed)
                if key in done:
                    continue
                try:
                    row = run_once(regime, method, params, seed, flops, out)
                except ImportError as error:  # a method whose callback this checkout does not have yet
                    print(f"skipped {key}: {error}", flush=True)
                    break
                rows.append(row)
                done.add(key)
                save_runs(runs_path, rows)
                print(
                    f"{regime.name} | {row['label']} | seed {seed} | {regime.metric} {row['test_acc']:.4f} | "
                    f"compute {row['compute']:.3f} | {row['wall_s']:.1f} s",
                    flush=True,
                )
    tables = {}
    for regime in chosen:
        table = summarise(rows, regime.name, regime.metric_scale, regime.higher_is_better)
        tables[regime.name] = table
        if out is not None and table:
            with open(out / f"frontier_{regime.name}.csv", "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(dict.fromkeys(key for t in table for key in t)))
                writer.writeheader()
                writer.writerows(table)
            plot(table, regime, figures / f"frontier_{regime.name}.png")
    for regime in chosen:
        print_table(tables[regime.name], regime)
    if args.default_report:
        print_default_report(rows, [regime.name for regime in chosen])
    return tables


if __name__ == "__main__":
    main(sys.argv[1:])
