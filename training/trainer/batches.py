"""In-memory batches: the whole dataset as tensors, shuffled by one permutation per epoch.

For data that fits in memory (the layer-1 VAE's 10,000 x 128 floats are 5 MB) a DataLoader's
per-sample indexing, collation and worker processes cost more than the model's step. A
`TensorBatches` permutes the tensors once per epoch (one gather) and yields contiguous slices:
no per-sample Python, no copies per batch, no workers.

`LayerTrainer` accepts any iterable of batches (a `torch.utils.data.DataLoader`, a PyG
`DataLoader`, a generator over files for data that does not fit in memory); this class is the
fast path for data that does.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from numbers import Integral
from typing import Any

import torch

from training.errors import ConfigError

Batch = torch.Tensor | tuple[torch.Tensor, ...]


class EpochOrder:
    """Which items each epoch visits, in which order: shuffled per epoch, sharded per process.

    The base of every in-memory batch iterable (rows of tensors here, window graphs in
    `training.layers.layer2_batches`), so that validation, shuffling and sharding mean one
    thing everywhere.

    Args:
        batch_size: items per batch (>= 1).
        shuffle: draw a new permutation of the items every epoch.
        seed: seed of the order's own random generator; None shuffles with torch's global
            generator (which `torch.manual_seed` and the trainer's checkpoints cover). A seed
            is required for `world_size > 1` so that every process draws the same permutation.
        rank: this process's shard (0-based) when several processes train together.
        world_size: number of shards. Each process takes every `world_size`-th item of the
            permutation, trimmed so that all processes get the same number of batches.

    Raises:
        ConfigError: an invalid size, rank or world size, or shuffled shards without a seed.
    """

    def __init__(self, batch_size: int, *, shuffle: bool = False, seed: int | None = None,
                 rank: int = 0, world_size: int = 1) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, Integral) or batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if world_size < 1:
            raise ConfigError(f"world_size must be >= 1, got {world_size}")
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank must be in [0, world_size={world_size}), got {rank}")
        if world_size > 1 and shuffle and seed is None:
            raise ConfigError("shuffling across world_size > 1 processes needs a seed, so that "
                              "every process draws the same permutation")
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = seed
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)

    def share(self, n: int) -> int:
        """Items this process sees per epoch, of `n`."""
        return n // self.world_size if self.world_size > 1 else n

    def epoch_order(self, n: int) -> torch.Tensor | None:
        """This epoch's item numbers (on the CPU), or None for all of them in order."""
        if not self.shuffle and self.world_size == 1:
            return None
        index = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        if self.world_size > 1:
            index = index[self.rank:self.share(n) * self.world_size:self.world_size]
        return index

    def state_dict(self) -> dict[str, Any]:
        """The random generator's state (for exact resume); empty without an own generator."""
        return {} if self.generator is None else {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.generator is not None and "generator" in state:
            self.generator.set_state(state["generator"])


class TensorBatches(EpochOrder):
    """Batches of rows of one or more tensors that share their first dimension.

    A batch is the tensor itself when one tensor is given, else a tuple with one slice of
    each tensor, in the order given (e.g. `(features, labels)`).

    Args:
        *tensors: tensors with the same length along dim 0.
        batch_size: rows per batch (the last batch may be smaller unless `drop_last`).
        drop_last: skip a last batch smaller than `batch_size`.
        shuffle, seed, rank, world_size: the order of the rows (see `EpochOrder`).

    Raises:
        ConfigError: no tensors, tensors of different lengths, or an invalid size/rank.

    Example:
        >>> batches = TensorBatches(torch.zeros(10, 3), batch_size=4)
        >>> [b.shape[0] for b in batches]
        [4, 4, 2]
    """

    def __init__(self, *tensors: torch.Tensor, batch_size: int, shuffle: bool = False,
                 drop_last: bool = False, seed: int | None = None, rank: int = 0,
                 world_size: int = 1) -> None:
        if not tensors:
            raise ConfigError("TensorBatches needs at least one tensor")
        lengths = {int(t.shape[0]) for t in tensors}
        if len(lengths) != 1:
            raise ConfigError(f"tensors must have the same length along dim 0, got "
                              f"{[int(t.shape[0]) for t in tensors]}")
        super().__init__(batch_size, shuffle=shuffle, seed=seed, rank=rank,
                         world_size=world_size)
        self.tensors = tuple(tensors)
        self.drop_last = bool(drop_last)

    @property
    def num_rows(self) -> int:
        """Rows this process sees per epoch."""
        return self.share(int(self.tensors[0].shape[0]))

    def __len__(self) -> int:
        full, rest = divmod(self.num_rows, self.batch_size)
        return full + (rest > 0 and not self.drop_last)

    def __iter__(self) -> Iterator[Batch]:
        tensors = self._epoch_tensors()
        n = int(tensors[0].shape[0])
        stop = n - n % self.batch_size if self.drop_last else n
        size = self.batch_size
        if len(tensors) == 1:
            data = tensors[0]
            for start in range(0, stop, size):
                yield data[start:start + size]
        else:
            for start in range(0, stop, size):
                yield tuple(t[start:start + size] for t in tensors)

    def _epoch_tensors(self) -> tuple[torch.Tensor, ...]:
        """This epoch's rows, permuted if shuffling, as contiguous tensors."""
        index = self.epoch_order(int(self.tensors[0].shape[0]))
        if index is None:
            return self.tensors
        # The order is drawn on the CPU (the generator lives there) and moved once.
        return tuple(t.index_select(0, index.to(t.device)) for t in self.tensors)

    def to(self, device: torch.device | str) -> TensorBatches:
        """The same batches with every tensor on `device` (moved once, not per batch).

        The copy shares this object's random generator, so its permutations continue the
        same sequence.
        """
        moved = copy.copy(self)
        moved.tensors = tuple(t.to(device) for t in self.tensors)
        return moved
