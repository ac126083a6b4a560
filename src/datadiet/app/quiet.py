"""Warnings the app silences because its own settings make them expected (each says why), never a user's."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterator

from lightning.pytorch.utilities.model_helpers import is_overridden


@contextlib.contextmanager
def expected_warnings(datamodule: Any = None) -> Iterator[None]:
    """Around the app's ``fit`` calls: without a validation set (``data.val_fraction=0``) Lightning warns
    that the model's ``validation_step`` has no ``val_dataloader``, twice per run; the app's models always
    define one, so the warning says nothing the config does not. ``datamodule=None``: a fit without
    validation by design (rho_loss's irreducible-loss models)."""
    with warnings.catch_warnings():
        if datamodule is None or not is_overridden("val_dataloader", datamodule):
            warnings.filterwarnings("ignore", message=r"You defined a `validation_step` but have no `val_dataloader`")
        yield
