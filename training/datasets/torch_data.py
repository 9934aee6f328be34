"""A split as a PyTorch `Dataset`, and a seeded `DataLoader` over it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from training.datasets.split import DatasetSplit
from training.errors import ConfigError


class PyTorchDatasetWrapper(Dataset):
    """Items are (features, label) tensors: float32 (features...) and int64 () (-1 unknown).

    The tensors share memory with the split's arrays. Indexing with a list of rows returns a
    whole batch at once ((rows, features...), (rows,)), which is how `make_loader` reads it;
    a plain `DataLoader(wrapper, batch_size=...)` works too, row by row.

    Args:
        split: the rows to serve.
    """

    def __init__(self, split: DatasetSplit) -> None:
        self.split = split
        self.features = torch.from_numpy(np.ascontiguousarray(split.features, dtype=np.float32))
        self.labels = torch.from_numpy(split.labels.astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int | Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(index, int | np.integer):
            index = torch.as_tensor(index, dtype=torch.int64)
        return self.features[index], self.labels[index]

    def get_sample_id(self, index: int) -> str:
        """The sample id of row `index` (negative counts from the end, as in a list).

        Raises:
            IndexError: `index` is outside the rows.
        """
        n = len(self.labels)
        if not -n <= index < n:
            raise IndexError(f"index must be in {-n}..{n - 1} for {n} rows, got {index}")
        return str(self.split.sample_ids[index])


def make_loader(split: DatasetSplit, batch_size: int = 32, shuffle: bool = True, seed: int = 42,
                drop_last: bool = False, num_workers: int = 0) -> DataLoader:
    """A DataLoader of (features (batch, ...), labels (batch,)) over `split`.

    Args:
        split: the rows.
        batch_size: rows per batch (>= 1).
        shuffle: reshuffle every epoch, reproducibly from `seed`.
        seed: seed of the loader's own generator (global state is untouched).
        drop_last: drop a final incomplete batch.
        num_workers: worker processes (0 loads in the calling process).
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    dataset = PyTorchDatasetWrapper(split)
    order = (RandomSampler(dataset, generator=torch.Generator().manual_seed(seed)) if shuffle
             else SequentialSampler(dataset))
    # Batches of row numbers, each fetched with one indexing call (batch_size=None: the
    # loader neither splits nor collates them again).
    return DataLoader(dataset, sampler=BatchSampler(order, batch_size, drop_last),
                      batch_size=None, num_workers=num_workers)
