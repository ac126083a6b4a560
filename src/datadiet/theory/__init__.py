"""The perceptron teacher–student model of data pruning (Sorscher et al. 2022): simulation, large-N theory,
and the ``auto`` selection strategy built on it (registered in :mod:`datadiet.selection` on import)."""

from datadiet.theory.auto import participation_ratio  # also registers the `auto` strategy
from datadiet.theory.decision import AutoDecision, auto_decision, crossover_alpha_tot, predict
from datadiet.theory.large_n import TheoryResult
from datadiet.theory.perceptron import SimulationResult, max_margin_direction, simulate

__all__ = [
    "AutoDecision",
    "SimulationResult",
    "TheoryResult",
    "auto_decision",
    "crossover_alpha_tot",
    "max_margin_direction",
    "participation_ratio",
    "predict",
    "simulate",
]
