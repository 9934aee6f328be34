"""Dataset splits: strategies (index arithmetic), plans, split files, window splits, PyTorch
access (`training.datasets.torch_data`, not imported here so that validation needs no torch).

`training.dataset_builder` is the public entry point (the original API); this package holds
its parts.
"""

from training.datasets.split import DatasetSplit
from training.datasets.strategies import Ratios, SplitStrategy

__all__ = ["DatasetSplit", "Ratios", "SplitStrategy"]
