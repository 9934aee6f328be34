"""Layer-2 window graphs as GNN batches, and GNN scores back to the events that formed them.

`fit_layer2_scaling(graphs)` fits the node and edge standardizers on the training graphs and
returns the model's FeatureSpec (the builder's spec plus that fitted state). `Layer2Data(graphs,
spec)` applies it: scaled features and a `fit_mask` of the edges the autoencoder learns from
(benign ones: Background/unknown is never benign), cut into PyG `Batch`es of windows by
`batches()` (`data[i]` is window i alone). Scores come back in the graphs' own edge order, so
`edge_events(scores)` maps every edge score to its events (DESIGN.md principle 5).

Each model `Data` has x (nodes, node features), edge_index (2, edges), edge_attr (edges, 18),
edge_y (edges,), y (nodes,), fit_mask (edges,) bool, and window (graphs,): the
windows' numbers in the graphs.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from training.detectors.base import Detector, model_device
from training.errors import ConfigError
from training.features.encoding import FeatureSpec
from training.features.layer2_graphs import Layer2Graphs
from training.features.scaling import (
    Standardizer,
    data_spec,
    require_finite,
    scaling_of,
    with_scaling,
)
from training.trainer.batches import EpochOrder


def fit_layer2_scaling(graphs: Layer2Graphs, *, benign_only: bool = True) -> FeatureSpec:
    """The model spec for `graphs` (the training split): node and edge standardizers.

    Args:
        graphs: training graphs.
        benign_only: fit on the benign edges (edge_y 0) and their end nodes only.

    Raises:
        ConfigError: no edge to fit on.
    """
    a = graphs.arrays
    edges = a["edge_y"] == 0 if benign_only else np.ones(len(a["edge_y"]), bool)
    if not edges.any():
        raise ConfigError(f"the training graphs have no {'benign ' if benign_only else ''}edge "
                          f"({len(edges)} edges); pass benign_only=False to learn from unlabeled "
                          "traffic as if it were benign")
    window = np.repeat(np.arange(len(graphs)), np.diff(a["edge_ptr"]))
    ends = a["edge_index"][:, edges] + a["node_ptr"][window[edges]]  # global node numbers
    nodes = np.unique(ends)
    return with_scaling(graphs.spec, {"node": Standardizer.fit(a["x"][nodes], "node"),
                                      "edge": Standardizer.fit(a["edge_attr"][edges], "edge")})


class Layer2Data:
    """Scaled model graphs of `graphs`, under the model spec `spec`.

    The windows stay in the graphs' concatenated arrays (scaled once); a batch of windows is
    cut out of them with index arithmetic, without building a `Data` per window.

    Args:
        graphs: window graphs built with the spec `spec` was fitted on.
        spec: the model's FeatureSpec (from `fit_layer2_scaling`, or a model's sidecar).
        benign_only: the edges the training loss counts are the benign ones; else all of them.

    Raises:
        SchemaError: `graphs` were built with another transform than `spec`'s, or `spec` has
            no fitted scaling.
    """

    def __init__(self, graphs: Layer2Graphs, spec: FeatureSpec, *,
                 benign_only: bool = True) -> None:
        data_spec(spec).require(graphs.spec, "the layer-2 graphs")
        a = graphs.arrays
        scaling = scaling_of(spec, {"node": a["x"].shape[1], "edge": a["edge_attr"].shape[1]})
        require_finite(a["x"], "the layer-2 node features (x)")
        require_finite(a["edge_attr"], "the layer-2 edge features (edge_attr)")
        self.graphs = graphs
        self.spec = spec
        edge_y = a["edge_y"].astype(np.int64)
        fit = edge_y == 0 if benign_only else np.ones(len(edge_y), bool)
        self.tensors = {
            "x": torch.from_numpy(scaling["node"].transform(a["x"])),
            "edge_attr": torch.from_numpy(scaling["edge"].transform(a["edge_attr"])),
            "edge_index": torch.from_numpy(a["edge_index"]),  # numbered within each window
            "edge_y": torch.from_numpy(edge_y),
            "fit_mask": torch.from_numpy(fit),
            "y": torch.from_numpy(a["y"].astype(np.int64)),
        }
        self.node_ptr, self.edge_ptr = a["node_ptr"], a["edge_ptr"]
        window = np.repeat(np.arange(len(graphs)), np.diff(self.edge_ptr))
        self.fit_windows = np.flatnonzero(np.bincount(window[fit], minlength=len(graphs)))
        self.fit_edges = int(fit.sum())

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index: int) -> Data:
        """Window `index` as the model sees it (for provenance see `graphs[index]`)."""
        return self.batch(np.array([index]))

    @property
    def node_dim(self) -> int:
        return int(self.tensors["x"].shape[1])

    @property
    def edge_dim(self) -> int:
        return int(self.tensors["edge_attr"].shape[1])

    def batch(self, windows: np.ndarray) -> Batch:
        """The windows `windows` (graph numbers, in that order) as one PyG Batch."""
        nodes, node_graph, node_ptr = _ranges(self.node_ptr, windows)
        edges, edge_graph, _ = _ranges(self.edge_ptr, windows)
        t = self.tensors
        edge_index = t["edge_index"][:, edges] + torch.from_numpy(node_ptr[edge_graph])
        return Batch(x=t["x"][nodes], edge_index=edge_index, edge_attr=t["edge_attr"][edges],
                     edge_y=t["edge_y"][edges], fit_mask=t["fit_mask"][edges], y=t["y"][nodes],
                     batch=torch.from_numpy(node_graph), ptr=torch.from_numpy(node_ptr),
                     window=torch.from_numpy(np.asarray(windows, dtype=np.int64)))

    def batches(self, batch_size: int, *, shuffle: bool = False, training: bool = False,
                **sharding: int | None) -> GraphBatches:
        """Batches of `batch_size` windows; `training` leaves out windows with no edge to fit.

        `sharding`: seed, rank and world_size for multi-process training (see GraphBatches).
        """
        windows = self.fit_windows if training else np.arange(len(self))
        if training and not len(windows):
            raise ConfigError("no window has an edge to train on (all edges are threats or "
                              "unknown); train on benign traffic or pass benign_only=False")
        return GraphBatches(self, windows, batch_size, shuffle=shuffle, **sharding)

    def labels(self) -> np.ndarray:
        """Every edge's label, in the order of `batches()` (unshuffled): the graphs' order."""
        return self.graphs.arrays["edge_y"].astype(np.int64)

    @torch.no_grad()
    def edge_scores(self, model: Detector, batch_size: int = 256) -> np.ndarray:
        """`model.anomaly_score` of every edge, in the graphs' edge order (float64, (edges,))."""
        return _scores(model, self.batches(batch_size), model.anomaly_score)

    @torch.no_grad()
    def node_scores(self, model: Detector, batch_size: int = 256) -> np.ndarray:
        """`model.node_scores` of every node (the maximum over its edges), in node order."""
        return _scores(model, self.batches(batch_size), model.node_scores)

    def edge_events(self, edge_scores: np.ndarray) -> dict[str, np.ndarray]:
        """Every event of the graphs with the score of the edge it formed.

        Returns:
            {"event_row": rows of the table the graphs were built from, "event_id", "score",
            "edge": global edge number}, each (events,).
        """
        a = self.graphs.arrays
        edge_scores = np.asarray(edge_scores)
        if edge_scores.shape != (len(a["edge_y"]),):
            raise ConfigError(f"edge_scores has shape {edge_scores.shape}; the graphs have "
                              f"{len(a['edge_y'])} edges")
        edge = np.repeat(np.arange(len(edge_scores)), np.diff(a["event_ptr"]))
        event_id = self.graphs.event_id.to_numpy(zero_copy_only=False)
        return {"event_row": a["event_row"], "event_id": event_id, "score": edge_scores[edge],
                "edge": edge}


class GraphBatches(EpochOrder):
    """Re-iterable batches of the windows `windows` of a `Layer2Data`.

    Args:
        data: the scaled graphs.
        windows: the graph numbers to batch.
        batch_size: windows per batch (>= 1).
        shuffle, seed, rank, world_size: the order of the windows (see `EpochOrder`).
    """

    def __init__(self, data: Layer2Data, windows: np.ndarray, batch_size: int, *,
                 shuffle: bool = False, seed: int | None = None, rank: int = 0,
                 world_size: int = 1) -> None:
        super().__init__(batch_size, shuffle=shuffle, seed=seed, rank=rank,
                         world_size=world_size)
        self.data = data
        self.windows = np.asarray(windows, dtype=np.int64)

    def __len__(self) -> int:
        return -(-self.share(len(self.windows)) // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        windows = self.windows
        order = self.epoch_order(len(windows))
        if order is not None:
            windows = windows[order.numpy()]
        for start in range(0, len(windows), self.batch_size):
            yield self.data.batch(windows[start:start + self.batch_size])


def _ranges(ptr: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The items of `groups` (ranges ptr[g]:ptr[g + 1]), concatenated in that order.

    Returns:
        item numbers (items,), the position of each item's group in `groups` (items,), and
        the offsets of each group's items in the result (len(groups) + 1,).
    """
    starts, counts = ptr[groups], ptr[groups + 1] - ptr[groups]
    offsets = np.zeros(len(groups) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    group = np.repeat(np.arange(len(groups)), counts)
    items = np.arange(offsets[-1]) - offsets[group] + starts[group]
    return items, group, offsets


def _scores(model: Detector, batches: GraphBatches, fn) -> np.ndarray:
    was_training = model.training
    model.eval()
    device = model_device(model)
    try:
        parts = [fn(batch.to(device)).double().cpu().numpy() for batch in batches]
    finally:
        model.train(was_training)
    return np.concatenate(parts) if parts else np.zeros(0)
