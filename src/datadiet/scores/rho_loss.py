"""RHO-LOSS (Mindermann et al. 2022): the reducible holdout loss ``ℓ(x, y; probe) − ℓ(x, y; irreducible-loss model)``.

The irreducible-loss (IL) model is trained on a seeded held-out split ``H`` of the training set
(``holdout_fraction`` of it) and its per-example losses on the other examples are cached. The probe,
trained on the whole training set, gives the first term in its eval-mode scoring pass.

Holdout examples are scored by **cross-fitting** (default): a second IL model, trained on the
complement of ``H``, gives their irreducible loss, so every example's IL term comes from a model that
never saw it. With ``cross_fit=False`` only one IL model is trained and holdout examples get NaN
(which :func:`datadiet.select` ranks as hardest — prefer cross-fitting for pruning).

Larger reducible loss = learnable but not yet learnt = ranked harder; raw and oriented are the same.
This module is the static score; the paper's online selection, step by step during training, is
:class:`~datadiet.ReducibleLossSelection`, fed by :func:`fit_irreducible_losses` (which also records
what the IL model cost).

Example::

    il = irreducible_losses(train_set, model_factory=lambda: MyModule(), holdout_fraction=0.5,
                            trainer_kwargs={"max_epochs": 3}, cache_path="il.npz")
    DifficultyCallback(scores=["rho_loss"], score_options={"rho_loss": {"irreducible_losses": il}})
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.utilities.data import extract_batch_size
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from datadiet._io import UnreadableFileError, atomic_save_npz, load_npz
from datadiet.adapter import Adapter
from datadiet.compute import forward_flops_per_example
from datadiet.scores import functional as F
from datadiet.scores.base import EvalPassScore
from datadiet.scores.context import ScoreContext
from datadiet.scores.registry import register_score


def holdout_split(num_examples: int, holdout_fraction: float, seed: int = 0) -> np.ndarray:
    """Sorted original indices of the seeded holdout ``H`` (``round(fraction · N)`` examples, at least 1)."""
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"`holdout_fraction` must be in (0, 1), got {holdout_fraction}")
    size = min(num_examples - 1, max(1, int(round(holdout_fraction * num_examples))))
    return np.sort(np.random.default_rng(seed).permutation(num_examples)[:size])


@torch.no_grad()
def per_example_loss(
    model: torch.nn.Module,
    dataset: Dataset,
    indices: np.ndarray,
    batch_size: int = 512,
    adapter: Optional[Adapter] = None,
    collate_fn: Optional[Callable] = None,
) -> np.ndarray:
    """The per-example loss of ``model`` (eval mode, on its own device) on ``dataset[indices]``, in that order:
    the adapter's loss (cross-entropy by default; see :class:`~datadiet.Adapter`)."""
    adapter = adapter or Adapter()
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    losses = []
    try:
        loader = DataLoader(
            Subset(dataset, indices.tolist()), batch_size=batch_size, shuffle=False, collate_fn=collate_fn
        )
        for batch in loader:
            batch = _to_device(batch, device)
            losses.append(adapter.example_loss(model(adapter.input_fn(batch)), batch).double().cpu())
    finally:
        model.train(was_training)
    return torch.cat(losses).numpy() if losses else np.zeros(0)


def _to_device(batch: Any, device: torch.device) -> Any:
    from torch.utils._pytree import tree_map

    return tree_map(lambda t: t.to(device) if isinstance(t, Tensor) else t, batch)


@dataclass(frozen=True)
class IrreducibleLosses:
    """The irreducible-loss (IL) model's per-example losses, and what producing them cost.

    Attributes:
        losses: float64, one per original index: the loss of an IL model that never trained on the example;
            NaN where none scored it (the holdout, without cross-fitting).
        holdout_indices: sorted original indices of the holdout ``H`` the first IL model trained on.
        cross_fit: whether a second IL model, trained on the rest, scored ``H``.
        train_presentations: the IL models' training presentations, all folds and processes (``None``:
            unknown, read from a cache written before it was recorded).
        scored_examples: the IL models' forward passes over the examples they scored, all processes.
        flops_per_example: an IL model's forward FLOPs per example (``None``: its input is not one tensor).
    """

    losses: np.ndarray
    holdout_indices: np.ndarray
    cross_fit: bool
    train_presentations: Optional[int]
    scored_examples: Optional[int]
    flops_per_example: Optional[float]


class _CountPresentations(pl.Callback):
    """Training examples of one ``fit``, summed over processes once it ends (a collective on every rank)."""

    def __init__(self) -> None:
        self.local = 0
        self.total = 0

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.local += extract_batch_size(batch)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        count = torch.tensor(self.local, dtype=torch.int64, device=trainer.strategy.root_device)
        self.total = int((trainer.strategy.reduce(count, reduce_op="sum") if trainer.world_size > 1 else count).item())


def fit_irreducible_losses(
    train_dataset: Dataset,
    model_factory: Callable[[], pl.LightningModule],
    holdout_fraction: float = 0.5,
    *,
    cross_fit: bool = True,
    seed: int = 0,
    batch_size: int = 128,
    trainer_factory: Optional[Callable[..., pl.Trainer]] = None,
    trainer_kwargs: Optional[Mapping[str, Any]] = None,
    adapter: Optional[Adapter] = None,
    collate_fn: Optional[Callable] = None,
    cache_path: Union[None, str, os.PathLike] = None,
) -> IrreducibleLosses:
    """Trains the irreducible-loss model(s); returns each example's IL-model loss and the cost of getting it.

    Args:
        train_dataset: the full training set (original indices = positions).
        model_factory: builds a fresh ``LightningModule`` (usually the probe's config).
        holdout_fraction: size of the holdout ``H`` the IL model trains on, as a fraction of N.
        cross_fit: also train on the complement of ``H`` to score ``H`` (else ``H`` gets NaN).
        seed: seeds the split and the IL models' initialisation.
        batch_size: training and scoring batch size.
        trainer_factory: ``trainer_factory(**kwargs) -> Trainer`` (default ``lightning.Trainer``).
        trainer_kwargs: passed to it (e.g. ``max_epochs``); checkpointing and logging are off by default.
        adapter: reads inputs, labels and logits (default ``(x, y)`` batches and logits out).
        collate_fn: collate function of the loaders.
        cache_path: an ``.npz`` read if it exists (an unreadable one is recomputed) and written (atomically)
            otherwise; key it by a fingerprint of everything above so a changed setting never reads stale losses.

    Returns:
        The losses, the holdout and the IL models' training presentations and scoring forwards (a cached
        result reports the cost of computing it, not of reading it: it is the method's cost all the same).
    """
    cached = _read_cache(cache_path, len(train_dataset))
    if cached is not None:
        return cached
    num_examples = len(train_dataset)
    holdout = holdout_split(num_examples, holdout_fraction, seed)
    rest = np.setdiff1d(np.arange(num_examples), holdout)
    losses = np.full(num_examples, np.nan)
    folds = [(holdout, rest)] + ([(rest, holdout)] if cross_fit else [])
    is_global_zero, presentations, scored, flops = True, 0, 0, None
    for fold, (train_part, scored_part) in enumerate(folds):
        pl.seed_everything(seed + fold, workers=True, verbose=False)
        model = model_factory()
        counter = _CountPresentations()
        options = {
            "enable_checkpointing": False,
            "logger": False,
            "enable_model_summary": False,
            **(trainer_kwargs or {}),
        }
        options["callbacks"] = [*options.get("callbacks", []), counter]
        trainer = (trainer_factory or pl.Trainer)(**options)
        loader = DataLoader(
            Subset(train_dataset, train_part.tolist()), batch_size=batch_size, shuffle=True, collate_fn=collate_fn
        )
        trainer.fit(model, train_dataloaders=loader)
        is_global_zero = trainer.is_global_zero
        # Every process scores every example with the same (synchronised) weights: no gather needed.
        losses[scored_part] = per_example_loss(model, train_dataset, scored_part, batch_size, adapter, collate_fn)
        presentations += counter.total
        scored += trainer.world_size * len(scored_part)
        flops = _forward_flops(model, train_dataset, adapter, collate_fn)
    result = IrreducibleLosses(losses, holdout, cross_fit, presentations, scored, flops)
    if cache_path is not None and is_global_zero:
        atomic_save_npz(cache_path, {
            "irreducible_loss": losses, "holdout_indices": holdout, "cross_fit": cross_fit,
            "train_presentations": presentations, "scored_examples": scored, "flops_per_example": np.nan if flops is None else flops,
        })  # fmt: skip
    return result


def _read_cache(cache_path: Union[None, str, os.PathLike], num_examples: int) -> Optional[IrreducibleLosses]:
    """The cached result, or ``None`` when there is none or it cannot be read (then it is recomputed)."""
    if cache_path is None or not Path(cache_path).exists():
        return None
    try:
        values = load_npz(cache_path, keys=("irreducible_loss",))
    except UnreadableFileError as error:  # torn or foreign: computed again and replaced atomically
        rank_zero_warn(f"cached irreducible losses {cache_path} cannot be read ({error.reason}): computing them again")
        return None
    losses = values["irreducible_loss"]
    if len(losses) != num_examples:
        raise ValueError(f"cached irreducible losses {cache_path} have {len(losses)} values, expected {num_examples}")
    holdout = values.get("holdout_indices", np.zeros(0, dtype=np.int64))

    def count(key: str) -> Optional[int]:  # absent in caches written before the cost was recorded
        return int(values[key]) if key in values else None

    flops = float(values["flops_per_example"]) if "flops_per_example" in values else float("nan")
    cross_fit = bool(values["cross_fit"]) if "cross_fit" in values else bool(np.isfinite(losses).all())
    return IrreducibleLosses(
        losses,
        holdout,
        cross_fit,
        count("train_presentations"),
        count("scored_examples"),
        None if np.isnan(flops) else flops,
    )


def _forward_flops(
    model: torch.nn.Module, dataset: Dataset, adapter: Optional[Adapter], collate_fn: Optional[Callable]
) -> Optional[float]:
    """The model's forward FLOPs per example on two examples of ``dataset``; ``None`` if its input is not one tensor."""
    adapter = adapter or Adapter()
    batch = next(iter(DataLoader(Subset(dataset, [0, min(1, len(dataset) - 1)]), batch_size=2, collate_fn=collate_fn)))
    inputs = adapter.input_fn(batch)
    if not isinstance(inputs, Tensor):
        return None
    return forward_flops_per_example(model, inputs)


def irreducible_losses(
    train_dataset: Dataset,
    model_factory: Callable[[], pl.LightningModule],
    holdout_fraction: float = 0.5,
    **options: Any,
) -> np.ndarray:
    """The losses alone of :func:`fit_irreducible_losses` (same arguments): float64, length N.

    Example::

        il = irreducible_losses(train_set, model_factory=lambda: MyModule(), holdout_fraction=0.5,
                                trainer_kwargs={"max_epochs": 3}, cache_path="il.npz")
    """
    return fit_irreducible_losses(train_dataset, model_factory, holdout_fraction, **options).losses


@register_score("rho_loss")
class RhoLoss(EvalPassScore):
    """Reducible holdout loss: the probe's scoring-pass loss minus the IL model's (both the adapter's loss).

    Args:
        num_examples: training set size.
        irreducible_losses: the IL model's per-example losses (length N, from :func:`irreducible_losses`)
            or a path to the ``.npz`` it cached. The app passes it from ``probe.rho_loss``.

    Raises:
        ValueError: at ``finalize`` if no irreducible losses were given, or their length is not N.
    """

    def __init__(
        self, num_examples: int, irreducible_losses: Union[None, str, os.PathLike, np.ndarray, Tensor] = None
    ) -> None:
        super().__init__(num_examples)
        self.irreducible_source = irreducible_losses
        self.irreducible: Optional[np.ndarray] = None

    needs_class_probabilities = False
    from_example_loss = True
    functional = staticmethod(F.cross_entropy)

    def finalize(self, context: ScoreContext) -> None:
        source = self.irreducible_source
        if source is None:
            raise ValueError(
                "rho_loss needs the irreducible-loss model's per-example losses: compute them with "
                "`datadiet.scores.rho_loss.irreducible_losses(...)` and pass "
                "`score_options={'rho_loss': {'irreducible_losses': losses}}` (the app does this from `probe.rho_loss`)"
            )
        if isinstance(source, (str, os.PathLike)):
            with np.load(source, allow_pickle=False) as cached:
                source = cached["irreducible_loss"]
        values = source.detach().cpu().numpy() if isinstance(source, Tensor) else np.asarray(source)
        values = values.astype(np.float64)
        if values.shape != (self.num_examples,):
            raise ValueError(f"`irreducible_losses` has shape {values.shape}, expected ({self.num_examples},)")
        self.irreducible = values

    def compute(self) -> tuple[np.ndarray, np.ndarray]:
        if self.irreducible is None:
            raise RuntimeError("rho_loss.compute() before finalize(): the irreducible losses are not loaded")
        raw = self.value.double().cpu().numpy() - self.irreducible
        return raw.copy(), raw


def cached_irreducible_losses(
    datamodule: Any,
    model_factory: Callable[[], pl.LightningModule],
    trainer_factory: Callable[..., pl.Trainer],
    settings: Mapping[str, Any],
    seed: int,
    key: Mapping[str, Any],
    cache_dir: Union[None, str, os.PathLike] = None,
) -> np.ndarray:
    """The app's entry point: :func:`irreducible_losses` for a ``PruningDataModule``, cached by fingerprint.

    ``settings`` is ``probe.rho_loss`` (``holdout_fraction``, ``cross_fit``, ``epochs``, optional
    ``cache_dir``); ``key`` is what else the losses depend on (dataset fingerprint, model and trainer
    configs). The cache is ``<cache_dir or $DATADIET_CACHE>/irreducible_loss/<fingerprint>.npz``.
    """
    from datadiet.data.sources.mnist1d import default_cache_dir
    from datadiet.fingerprint import config_fingerprint

    settings = dict(settings)
    cache_dir = settings.pop("cache_dir", None) or cache_dir
    fingerprint = config_fingerprint({**dict(key), "rho_loss": settings, "seed": seed})
    cache_path = Path(cache_dir or default_cache_dir()) / "irreducible_loss" / f"{fingerprint}.npz"
    return irreducible_losses(
        datamodule.train_dataset,
        model_factory,
        float(settings.get("holdout_fraction", 0.5)),
        cross_fit=bool(settings.get("cross_fit", True)),
        seed=seed,
        batch_size=datamodule.batch_size,
        trainer_factory=trainer_factory,
        trainer_kwargs={"max_epochs": int(settings.get("epochs", 5))},
        collate_fn=datamodule.collate_fn,
        cache_path=cache_path,
    )
