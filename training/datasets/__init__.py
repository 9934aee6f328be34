"""Dataset splits: strategies (index arithmetic), split files, PyTorch access, window splits.

`training.dataset_builder` is the public entry point (the original API); this package holds
its parts.
"""

from training.datasets.split import DatasetSplit
from training.datasets.strategies import Ratios, SplitStrategy
from training.datasets.torch_data import PyTorchDatasetWrapper, make_loader

__all__ = ["DatasetSplit", "PyTorchDatasetWrapper", "Ratios", "SplitStrategy", "make_loader"]
