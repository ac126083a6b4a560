"""Built-in dataset sources, each a function returning a ready :class:`PruningDataModule`.

All of them work offline: MNIST-1D is generated locally and cached, digits ship with scikit-learn,
synthetic data is drawn from a seed, text is the Python standard library's own source.
"""

from datadiet.data.sources.digits import digits_datamodule
from datadiet.data.sources.mnist1d import load_mnist1d, mnist1d_datamodule
from datadiet.data.sources.synthetic import synthetic_datamodule
from datadiet.data.sources.text import python_source_datamodule

__all__ = [
    "digits_datamodule",
    "load_mnist1d",
    "mnist1d_datamodule",
    "python_source_datamodule",
    "synthetic_datamodule",
]
