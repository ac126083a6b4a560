"""The app's LightningModule and small networks for the built-in datasets."""

from datadiet.models.classifier import Classifier
from datadiet.models.nets import CNN1D, MLP
from datadiet.models.resnet import resnet18

__all__ = ["CNN1D", "Classifier", "MLP", "resnet18"]
