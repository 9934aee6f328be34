"""The split strategies applied to layer-2 window graphs and layer-3 windows.

Each part is a `Layer2Graphs` / `Layer3Windows` of its own (their `subset`), saved and loaded
with that class's `save`/`load`, spec included.

| container | unit | TEMPORAL by | GROUP by | label (STRATIFIED, semi-supervised) |
|---|---|---|---|---|
| Layer2Graphs | one window graph | window start | not possible: a graph holds many entities | 1 if any node is a threat, else 0 if any is benign, else -1 |
| Layer3Windows | one (entity, bucket) window | target bucket time | entity | the window's label |

TEMPORAL is the honest choice: windows next to each other share events or history, so a random
split leaks between them. A `gap` is measured between window start times, so a gap of one
window length leaves no window out; to keep a quiet period q between the parts, pass the window
length (layer 3: the history, T buckets) plus q.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.datasets.plan import as_strategy, plan_splits
from training.datasets.strategies import SplitStrategy
from training.errors import ConfigError
from training.features.layer2_graphs import Layer2Graphs
from training.features.layer3_windows import Layer3Windows


def graph_labels(graphs: Layer2Graphs) -> np.ndarray:
    """One label per graph: 1 if any node is a threat, 0 if any is benign, else -1."""
    ptr, y = graphs.arrays["node_ptr"], graphs.arrays["y"].astype(np.int64)
    labels = np.full(len(graphs), -1, dtype=np.int64)
    filled = ptr[1:] > ptr[:-1]
    if filled.any():  # segments run from one filled graph's first node to the next one's
        labels[filled] = np.maximum.reduceat(y, ptr[:-1][filled])
    return labels


def split_layer2(graphs: Layer2Graphs, strategy: SplitStrategy | str = SplitStrategy.TEMPORAL,
                 train_ratio: float = 0.7, val_ratio: float = 0.15, test_ratio: float = 0.15,
                 **options: object) -> dict:
    """Window graphs cut by a strategy (RANDOM, STRATIFIED, TEMPORAL or K_FOLD).

    Args:
        graphs: the graphs.
        strategy, ratios: as `DatasetBuilder.create_splits`.
        options: gap, n_folds, balance_classes, semi_supervised, seed, train_until, at (see
            `plan_splits`).

    Returns:
        {"train", "val", "test"} -> Layer2Graphs (K_FOLD: lists for train and val).

    Raises:
        ConfigError: GROUP (a graph holds many entities), or what `plan_splits` raises.
    """
    if as_strategy(strategy) is SplitStrategy.GROUP:
        raise ConfigError("layer-2 graphs cannot be split by entity: every window graph holds "
                          "many entities. Use SplitStrategy.TEMPORAL")
    starts = graphs.arrays["window_start"].astype("datetime64[us]")
    return _split(graphs, strategy, graph_labels(graphs), starts, None,
                  (train_ratio, val_ratio, test_ratio), options)


def split_layer3(windows: Layer3Windows, strategy: SplitStrategy | str = SplitStrategy.TEMPORAL,
                 train_ratio: float = 0.7, val_ratio: float = 0.15, test_ratio: float = 0.15,
                 **options: object) -> dict:
    """Layer-3 windows cut by a strategy; GROUP keeps every entity's windows in one split.

    Args:
        windows: the windows.
        strategy, ratios: as `DatasetBuilder.create_splits`.
        options: gap, n_folds, balance_classes, semi_supervised, seed, train_until, at (see
            `plan_splits`).

    Returns:
        {"train", "val", "test"} -> Layer3Windows (K_FOLD: lists for train and val).
    """
    entity = windows.entity.to_numpy(zero_copy_only=False).astype(str)
    return _split(windows, strategy, windows.labels.astype(np.int64), windows.time, entity,
                  (train_ratio, val_ratio, test_ratio), options)


def _split(container: Layer2Graphs | Layer3Windows, strategy: SplitStrategy | str,
           labels: np.ndarray, times: np.ndarray, groups: np.ndarray | None,
           ratios: tuple[float, float, float], options: dict) -> dict:
    """The container's parts: `plan_splits` rows, each cut out with `subset`."""
    rows = plan_splits(strategy, labels, timestamps=times, groups=groups, train_ratio=ratios[0],
                       val_ratio=ratios[1], test_ratio=ratios[2], **options)
    return {name: [container.subset(r) for r in part] if isinstance(part, list)
            else container.subset(part) for name, part in rows.items()}


def save_window_splits(splits: dict, folder: str | Path, prefix: str) -> dict[str, Path]:
    """Write each part with its class's own `save` to `folder/<prefix>_<name>.npz`."""
    paths = {}
    for name, part in splits.items():
        parts = part if isinstance(part, list) else [part]
        for i, one in enumerate(parts):
            label = f"fold{i}_{name}" if isinstance(part, list) else name
            paths[label] = one.save(Path(folder) / f"{prefix}_{label}.npz")
    return paths
