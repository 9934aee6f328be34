"""Train/validation/test splits (the original module name; the code lives in `training.datasets`)."""

from training.datasets.builder import DatasetBuilder, load_splits
from training.datasets.split import DatasetSplit
from training.datasets.strategies import SplitStrategy
from training.datasets.torch_data import PyTorchDatasetWrapper, make_loader

__all__ = ["DatasetBuilder", "DatasetSplit", "PyTorchDatasetWrapper", "SplitStrategy", "load_splits", "make_loader"]
