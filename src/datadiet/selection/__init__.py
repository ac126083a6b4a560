"""Selection strategies, found by name: which examples to keep given their difficulty.

The ``auto`` strategy builds on the perceptron theory and lives in :mod:`datadiet.theory.auto`; importing
``datadiet`` registers it.
"""

from datadiet.selection import ccs as _ccs  # noqa: F401  (registers ccs)
from datadiet.selection import strategies as _strategies  # noqa: F401  (registers hard/easy/random)
from datadiet.selection.registry import (
    STRATEGIES,
    list_strategies,
    needs_scores,
    num_to_keep,
    register_strategy,
    select,
    validate_keep_fraction,
)

__all__ = [
    "STRATEGIES",
    "list_strategies",
    "needs_scores",
    "num_to_keep",
    "register_strategy",
    "select",
    "validate_keep_fraction",
]
