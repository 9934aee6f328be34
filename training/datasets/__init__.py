"""Dataset splits: strategies (index arithmetic), plans, split files, window splits, PyTorch
access (`training.datasets.torch_data`, not imported here so that validation needs no torch).

`training.datasets.builder` (`DatasetBuilder`) is the entry point; `validator` and `drift` check
the data before training.
"""

from training.datasets.split import DatasetSplit
from training.datasets.strategies import Ratios, SplitStrategy

__all__ = ["DatasetSplit", "Ratios", "SplitStrategy"]
