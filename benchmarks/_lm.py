"""Regime (e) of the frontier: a tiny byte-level causal language model on the Python standard library's source.

The data (``datadiet.data.sources.python_source_datamodule``: 64-byte windows of training files, held-out
windows from other files), the network (``TinyGPT``, width 48, 2 blocks, ~85k parameters) and the test
metric (held-out bits per byte: lower is better), kept here so that ``frontier.py`` only names the regime.
"""

from __future__ import annotations

import functools
from typing import Any

import lightning.pytorch as pl

from datadiet import PruningDataModule
from datadiet.models import CausalLM, TinyGPT
from datadiet.models.causal_lm import bits_per_token

#: Bytes of context per example.
CONTEXT = 64
#: The main model and the small "selector" probe (about 1/6 of its forward FLOPs).
NET = functools.partial(TinyGPT, width=48, depth=2, heads=4)
SELECTOR = functools.partial(TinyGPT, width=16, depth=1, heads=2)


def make_data(num_train: int, num_test: int, batch_size: int = 64):
    """A factory ``seed -> PruningDataModule``: one fixed split of the files for every seed (the seeds vary
    the model and the draws, as in the other regimes)."""
    from datadiet.data.sources import python_source_datamodule

    def make(seed: int) -> PruningDataModule:
        return python_source_datamodule(
            context=CONTEXT, num_train=num_train, num_test=num_test, seed=0, batch_size=batch_size, eval_batch_size=256
        )

    return make


def held_out_bits_per_byte(model: pl.LightningModule, dm: PruningDataModule) -> float:
    """The test metric: bits per byte over every held-out byte."""
    return bits_per_token(model, dm.test_dataset)


#: The ``Regime`` fields that make regime (e) a language model (see ``benchmarks/frontier.py``).
REGIME_OPTIONS: dict[str, Any] = dict(
    module=CausalLM,
    optimizer="adamw",
    selector=SELECTOR,
    evaluate=held_out_bits_per_byte,
    metric="held-out bits per byte",
    higher_is_better=False,
    metric_scale=1.0,
    recommended=False,
)
