"""The perceptron teacher–student model of data pruning (Sorscher et al. 2022): simulation and large-N theory."""

from datadiet.theory.large_n import TheoryResult, predict
from datadiet.theory.perceptron import SimulationResult, max_margin_direction, simulate

__all__ = ["SimulationResult", "TheoryResult", "max_margin_direction", "predict", "simulate"]
