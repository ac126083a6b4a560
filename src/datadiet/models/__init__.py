"""The app's LightningModules and small networks for the built-in datasets."""

from datadiet.models.causal_lm import CausalLM, TinyGPT
from datadiet.models.classifier import Classifier
from datadiet.models.nets import CNN1D, CNN2D, MLP
from datadiet.models.resnet import resnet18

__all__ = ["CNN1D", "CNN2D", "CausalLM", "Classifier", "MLP", "TinyGPT", "resnet18"]
