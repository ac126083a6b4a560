"""Selection strategies, found by name: which examples to keep given their difficulty."""

from datadiet.selection.registry import (
    STRATEGIES,
    list_strategies,
    num_to_keep,
    register_strategy,
    select,
    validate_keep_fraction,
)
from datadiet.selection import strategies as _strategies  # noqa: F401  (registers hard/easy/random)
from datadiet.selection import ccs as _ccs  # noqa: F401  (registers ccs)
from datadiet.selection import auto as _auto  # noqa: F401  (registers auto)

__all__ = ["STRATEGIES", "list_strategies", "num_to_keep", "register_strategy", "select", "validate_keep_fraction"]
