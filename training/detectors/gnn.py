"""Layer-2 detector: a graph autoencoder over the window graphs (GraphSAGE or GATv2 encoder).

The encoder embeds every node of a window from its features and its neighbourhood (messages
flow both ways along each edge, so a host learns from the peers it contacted and from those that
contacted it). An edge decoder reads each (source, destination) pair of embeddings and
reconstructs the edge in its context: the edge's features together with the features of its
two ends, so an ordinary-looking flow from a host that suddenly has fifty peers is still
poorly explained. A link head scores whether the pair talks at all; it learns from the real
edges against random pairs of the same window (negative sampling). Trained on benign traffic
only, an edge the model cannot explain gets a high score:

    score(edge) = mean squared error of [edge features, source node, destination node]
                  (standardized) + existence_weight * -log sigmoid(link logit)

A node's score is the maximum over its edges (either end). With `supervised=True` a third head
learns P(threat) from the edge labels (0/1; unknown ignored) next to the autoencoder, and the
score becomes that probability.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.nn import GATv2Conv, SAGEConv

from training.detectors.base import Detector, register_detector
from training.errors import ConfigError, NotSupportedError

CONVOLUTIONS = ("gat", "sage")


def _check(name: str, value: Any, kind: type, low: float, high: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, kind) or value < low or (
            high is not None and value > high):
        rule = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigError(f"{name} must be a{'n integer' if kind is int else ' number'} {rule}, "
                          f"got {value!r}")


@register_detector
class Layer2GNN(Detector):
    """Graph autoencoder scoring the edges of layer-2 window graphs.

    Args:
        node_dim: node features (13, or 141 with the mean layer-1 vectors).
        edge_dim: edge features (18).
        hidden_dim: width of the embeddings and heads.
        num_layers: message-passing layers (1..6).
        conv: "gat" (GATv2: attention whose messages also carry the edge features; it did
            better on every development set, see BENCHMARKS.md) or "sage" (GraphSAGE, mean
            aggregation of the neighbours' node features only, about twice as fast).
        dropout: dropout after every layer, in [0, 1).
        directed: the decoder reads (source, destination) in order; False makes the decoder
            and the reconstructed context symmetric (which end started is ignored).
        existence_weight: weight of the link loss and score against the feature error (>= 0).
        supervised: add the P(threat) head, trained on labeled edges; it then gives the score.

    Shapes:
        batch.x: (nodes, node_dim); batch.edge_index: (2, edges); batch.edge_attr:
        (edges, edge_dim); batch.fit_mask: (edges,) bool, edges the loss counts (optional).
        anomaly_score: (edges,); node_scores: (nodes,).
    """

    # feature error (its target depends on `directed`) + weight * link loss (+ the head's)
    loss_args = ("directed", "existence_weight", "supervised")

    def __init__(self, *, node_dim: int = 13, edge_dim: int = 18, hidden_dim: int = 64,
                 num_layers: int = 2, conv: str = "gat", dropout: float = 0.1,
                 directed: bool = True, existence_weight: float = 1.0,
                 supervised: bool = False) -> None:
        _check("node_dim", node_dim, int, 1)
        _check("edge_dim", edge_dim, int, 1)
        _check("hidden_dim", hidden_dim, int, 1)
        _check("num_layers", num_layers, int, 1, 6)
        if (isinstance(dropout, bool) or not isinstance(dropout, (int, float))
                or not 0 <= dropout < 1):
            raise ConfigError(f"dropout must be a number in [0, 1), got {dropout!r}")
        _check("existence_weight", existence_weight, (int, float), 0.0)
        if conv not in CONVOLUTIONS:
            raise ConfigError(f"conv must be one of {', '.join(CONVOLUTIONS)}, got {conv!r}")
        for name, flag in (("directed", directed), ("supervised", supervised)):
            if not isinstance(flag, bool):
                raise ConfigError(f"{name} must be True or False, got {flag!r}")
        super().__init__(node_dim=node_dim, edge_dim=edge_dim, hidden_dim=hidden_dim,
                         num_layers=num_layers, conv=conv, dropout=dropout, directed=directed,
                         existence_weight=existence_weight, supervised=supervised)
        self.directed = directed
        self.existence_weight = float(existence_weight)
        self.dropout = float(dropout)
        self.conv = conv
        self.embed = nn.Linear(node_dim, hidden_dim)
        self.convs = nn.ModuleList(
            SAGEConv(hidden_dim, hidden_dim) if conv == "sage"
            else GATv2Conv(hidden_dim, hidden_dim, heads=1, edge_dim=edge_dim)
            for _ in range(num_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_dim) for _ in range(num_layers))
        self.pair = nn.Sequential(nn.Linear(2 * hidden_dim, hidden_dim), nn.ReLU())
        self.reconstruct = nn.Linear(hidden_dim, edge_dim + 2 * node_dim)  # edge in context
        self.link = nn.Linear(hidden_dim, 1)
        self.threat = nn.Linear(hidden_dim, 1) if supervised else None

    def encode(self, batch: Batch) -> torch.Tensor:
        """Node embeddings, (nodes, hidden_dim)."""
        edge_index = torch.cat([batch.edge_index, batch.edge_index.flip(0)], dim=1)  # both ways
        edge_attr = torch.cat([batch.edge_attr, batch.edge_attr]) if self.conv == "gat" else None
        h = F.relu(self.embed(batch.x))
        for conv, norm in zip(self.convs, self.norms):
            message = (conv(h, edge_index, edge_attr) if edge_attr is not None
                       else conv(h, edge_index))
            h = norm(h + F.dropout(F.relu(message), self.dropout, self.training))  # residual
        return h

    def decode(self, z: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """Hidden representation of each (source, destination) pair, (pairs, hidden_dim)."""
        src, dst = z[edge_index[0]], z[edge_index[1]]
        pair = torch.cat([src, dst], 1) if self.directed else torch.cat([src + dst, src * dst], 1)
        return self.pair(pair)

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Node embeddings (nodes, hidden_dim) and edge pair representations (edges, hidden_dim)."""
        z = self.encode(batch)
        return z, self.decode(z, batch.edge_index)

    def training_step(self, batch: Batch) -> torch.Tensor:
        z, pair = self(batch)
        recon, logit = self.reconstruct(pair), self.link(pair).squeeze(-1)
        mask = _fit_mask(batch)
        count = mask.sum().clamp(min=1)  # a batch with no edge to fit adds 0 (weight 0)
        feature_loss = ((recon - _target(batch, self.directed)).pow(2).mean(1) * mask).sum() / count
        negative_logit = self.link(self.decode(z, _corrupt(batch))).squeeze(-1)
        link_loss = ((F.softplus(-logit) * mask).sum() / count
                     + (F.softplus(negative_logit) * mask).sum() / count)
        loss = feature_loss + self.existence_weight * link_loss
        if self.threat is not None:
            labeled = batch.edge_y >= 0
            if labeled.any():
                head = self.threat(pair).squeeze(-1)
                loss = loss + F.binary_cross_entropy_with_logits(
                    head[labeled], batch.edge_y[labeled].float())
        return loss

    def anomaly_score(self, batch: Batch) -> torch.Tensor:
        """One score per edge, higher = more anomalous (see the module docstring)."""
        _, pair = self(batch)
        if self.threat is not None:
            return torch.sigmoid(self.threat(pair).squeeze(-1))
        error = (self.reconstruct(pair) - _target(batch, self.directed)).pow(2).mean(1)
        return error + self.existence_weight * F.softplus(-self.link(pair).squeeze(-1))

    def feature_terms(self, batch: Batch) -> torch.Tensor:
        """The score's terms: each reconstructed feature's squared error / features (the edge's,
        then its ends'), then the weighted edge-existence term (how unlikely this peer is).

        Shapes:
            returns (edges, edge_dim + 2 * node_dim + 1).
        """
        if self.threat is not None:
            raise NotSupportedError("a supervised Layer2GNN scores with a threat head: its "
                                    "score does not split into per-feature terms")
        _, pair = self(batch)
        target = _target(batch, self.directed)
        error = (self.reconstruct(pair) - target).pow(2) / target.shape[1]
        existence = self.existence_weight * F.softplus(-self.link(pair))  # (edges, 1)
        return torch.cat([error, existence], 1)

    def score_values(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(observed, expected) per term: the edge in context and its reconstruction
        (standardized); the existence term has none (NaN)."""
        _, pair = self(batch)
        nan = torch.full((batch.edge_index.shape[1], 1), float("nan"))
        return (torch.cat([_target(batch, self.directed), nan], 1),
                torch.cat([self.reconstruct(pair), nan], 1))

    def node_scores(self, batch: Batch) -> torch.Tensor:
        """One score per node: the maximum score over the edges it is an end of, (nodes,)."""
        edge = self.anomaly_score(batch)
        ends = torch.cat([batch.edge_index[0], batch.edge_index[1]])
        out = torch.zeros(batch.num_nodes, dtype=edge.dtype, device=edge.device)
        return out.scatter_reduce(0, ends, edge.repeat(2), "amax", include_self=False)

    def batch_size_of(self, batch: Batch) -> int:
        return int(_fit_mask(batch).sum())


def _fit_mask(batch: Batch) -> torch.Tensor:
    mask = getattr(batch, "fit_mask", None)
    return mask if mask is not None else torch.ones(batch.num_edges, dtype=torch.bool,
                                                    device=batch.edge_index.device)


def _corrupt(batch: Batch) -> torch.Tensor:
    """Negative samples: each edge's source with a random node of the same window, (2, edges).

    Drawn without excluding real edges (in sparse window graphs a random pair is almost never
    one), so it costs two gathers instead of a per-graph loop.
    """
    src = batch.edge_index[0]
    ptr = getattr(batch, "ptr", None)
    if ptr is None:  # a single graph, not a Batch
        low, size = torch.zeros_like(src), torch.full_like(src, batch.num_nodes)
    else:
        graph = batch.batch[src]
        low, size = ptr[graph], ptr[graph + 1] - ptr[graph]
    dst = low + (torch.rand(src.shape, device=src.device) * size).long().clamp(max=size - 1)
    return torch.stack([src, dst])


def _target(batch: Batch, directed: bool) -> torch.Tensor:
    """What the decoder reconstructs: each edge in context, (edges, edge_dim + 2 * node_dim):
    its features, then its ends' (source, destination; undirected: their max and min, which
    do not depend on which end is which)."""
    src, dst = batch.x[batch.edge_index[0]], batch.x[batch.edge_index[1]]
    if not directed:
        src, dst = torch.maximum(src, dst), torch.minimum(src, dst)
    return torch.cat([batch.edge_attr, src, dst], 1)
