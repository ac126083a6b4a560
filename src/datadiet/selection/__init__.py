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

__all__ = ["STRATEGIES", "list_strategies", "num_to_keep", "register_strategy", "select", "validate_keep_fraction"]
