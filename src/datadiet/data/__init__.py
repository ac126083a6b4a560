"""Data: the pruning data module, index tracking, and built-in dataset sources."""

from datadiet.data.datamodule import PruningDataModule
from datadiet.data.indexed import IndexedBatch, IndexedCollate, IndexedDataset
from datadiet.data.labels import dataset_labels

__all__ = ["IndexedBatch", "IndexedCollate", "IndexedDataset", "PruningDataModule", "dataset_labels"]
