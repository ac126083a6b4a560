"""RHO-LOSS (Mindermann et al. 2022): the reducible holdout loss ``ℓ(x, y; probe) − ℓ(x, y; irreducible-loss model)``.

The irreducible-loss (IL) model is trained on a seeded held-out split ``H`` of the training set
(``holdout_fraction`` of it) and its per-example losses on the other examples are cached. The probe,
trained on the whole training set, gives the first term in its eval-mode scoring pass.

Holdout examples are scored by **cross-fitting** (default): a second IL model, trained on the
complement of ``H``, gives their irreducible loss, so every example's IL term comes from a model that
never saw it. With ``cross_fit=False`` only one IL model is trained and holdout examples get NaN
(which :func:`datadiet.select` ranks as hardest — prefer cross-fitting for pruning).

Larger reducible loss = learnable but not yet learnt = ranked harder; raw and oriented are the same.

Example::

    il = irreducible_losses(train_set, model_factory=lambda: MyModule(), holdout_fraction=0.5,
                            trainer_kwargs={"max_epochs": 3}, cache_path="il.npz")
    DifficultyCallback(scores=["rho_loss"], score_options={"rho_loss": {"irreducible_losses": il}})
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

import lightning.pytorch as pl
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from datadiet._io import UnreadableFileError, atomic_save_npz, load_npz
from datadiet.adapter import Adapter
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
    model: torch.nn.Module, dataset: Dataset, indices: np.ndarray, batch_size: int = 512, adapter: Optional[Adapter] = None,
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
        loader = DataLoader(Subset(dataset, indices.tolist()), batch_size=batch_size, shuffle=False, collate_fn=collate_fn)
        for batch in loader:
            batch = _to_device(batch, device)
            losses.append(adapter.example_loss(model(adapter.input_fn(batch)), batch).double().cpu())
    finally:
        model.train(was_training)
    return torch.cat(losses).numpy() if losses else np.zeros(0)


def _to_device(batch: Any, device: torch.device) -> Any:
    from torch.utils._pytree import tree_map

    return tree_map(lambda t: t.to(device) if isinstance(t, Tensor) else t, batch)


def irreducible_losses(
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
) -> np.ndarray:
    """Trains the irreducible-loss model(s) and returns each example's IL-model loss (length N).

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
        cache_path: an ``.npz`` read if it exists and written (atomically) otherwise; key it by a
            fingerprint of everything above so a changed setting never reads stale losses.

    Returns:
        float64 array of length N: the loss of a model that never trained on the example.
    """
    if cache_path is not None and Path(cache_path).exists():
        try:
            losses = load_npz(cache_path, keys=("irreducible_loss",))["irreducible_loss"]
        except UnreadableFileError as error:  # computed again below and replaced atomically
            rank_zero_warn(f"cached irreducible losses {cache_path} cannot be read ({error.reason}): computing them again")
        else:
            if len(losses) != len(train_dataset):
                raise ValueError(f"cached irreducible losses {cache_path} have {len(losses)} values, expected {len(train_dataset)}")
            return losses
    num_examples = len(train_dataset)
    holdout = holdout_split(num_examples, holdout_fraction, seed)
    rest = np.setdiff1d(np.arange(num_examples), holdout)
    losses = np.full(num_examples, np.nan)
    folds = [(holdout, rest)] + ([(rest, holdout)] if cross_fit else [])
    is_global_zero = True
    for fold, (train_part, scored_part) in enumerate(folds):
        pl.seed_everything(seed + fold, workers=True, verbose=False)
        model = model_factory()
        options = {"enable_checkpointing": False, "logger": False, "enable_model_summary": False, **(trainer_kwargs or {})}
        trainer = (trainer_factory or pl.Trainer)(**options)
        loader = DataLoader(Subset(train_dataset, train_part.tolist()), batch_size=batch_size, shuffle=True, collate_fn=collate_fn)
        trainer.fit(model, train_dataloaders=loader)
        is_global_zero = trainer.is_global_zero
        # Every process scores every example with the same (synchronised) weights: no gather needed.
        losses[scored_part] = per_example_loss(model, train_dataset, scored_part, batch_size, adapter, collate_fn)
    if cache_path is not None and is_global_zero:
        atomic_save_npz(cache_path, {"irreducible_loss": losses, "holdout_indices": holdout})
    return losses


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

    def __init__(self, num_examples: int, irreducible_losses: Union[None, str, os.PathLike, np.ndarray, Tensor] = None) -> None:
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
