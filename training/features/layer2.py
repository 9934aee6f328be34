"""Layer 2 (behavioral): one communication graph per time window, for the GNN.

Events are cut into fixed windows (`floor(timestamp / window)`, default 5 minutes, aligned to
the epoch). In each window every entity is a node and every communicating pair one directed
edge (source -> destination), aggregated over the window's events. Entity kinds:

| entity | edge | meaning |
|---|---|---|
| ip (default) | source_ip -> dest_ip | who talked to whom on the network |
| host | host -> dest_ip | the machine that logged the event to the address it contacted |
| user | user -> host | the account to the machine it acted on (logons, process starts) |

Events without both ends (a process event in an ip graph, a flow without a host name in a host
graph) or without a timestamp are left out and counted in the build statistics.

Edge features `l2.v1` (18 dims; "log" is log1p(x) / log1p(cap), clipped to [0, 1]):

| dim | name | value |
|---|---|---|
| 0 | flows | log of the number of events (cap 1e6) |
| 1-2 | bytes_sent, bytes_received | log of the summed bytes from the source / from the destination (cap 1e12) |
| 3-4 | packets_sent, packets_received | log of the summed packets each way (cap 1e9) |
| 5 | dest_ports | log of the distinct destination ports (cap 65536) |
| 6 | duration_mean | log of the mean duration in seconds, over events that have one (cap 86400) |
| 7-10 | proto_tcp, proto_udp, proto_icmp, proto_other | share of events per protocol (icmp includes icmpv6) |
| 11-16 | state_established, state_rejected, state_unanswered, state_reset, state_partial, state_other | share of events per connection-state class (see `training.features.traffic`) |
| 17 | failure_ratio | share of events rejected or unanswered |

Node features (13 dims, then optionally the 128-dim mean layer-1 vector of the events the node
took part in, as either end; a self-loop event counts once):

| dim | name | value |
|---|---|---|
| 0-1 | out_degree, in_degree | log of outgoing / incoming edges (cap 1e5) |
| 2 | peers | log of distinct entities it talked to, either direction (cap 1e5) |
| 3-4 | flows_out, flows_in | log of events it started / received (cap 1e6) |
| 5-6 | bytes_out, bytes_in | log of bytes it sent / received, either role (cap 1e12) |
| 7-8 | packets_out, packets_in | as bytes (cap 1e9) |
| 9 | ports_out | log of distinct destination ports it contacted (cap 65536) |
| 10 | ports_in | log of distinct ports of its own that were contacted (cap 65536) |
| 11-12 | failure_out, failure_in | share of its outgoing / incoming events rejected or unanswered |

Labels (`edge_y`, node `y`): 1 if any contributing event is a threat, else 0 if any is benign,
else -1 (all unknown), i.e. the maximum of `is_threat`. All transforms are data-free.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pyarrow as pa
from scipy import sparse

from training.errors import ConfigError
from training.features.encoding import FeatureSpec, log_scale, numbers
from training.features.layer1 import DIM as LAYER1_DIM
from training.features.layer1 import Layer1Featurizer
from training.features.layer2_graphs import Layer2Graphs
from training.features.traffic import (
    CONN_STATE_CLASSES, FAILED_CLASSES, PROTOCOL_CLASSES, Groups, amounts, check_period, classes,
    column, count_distinct, entity_codes, floor_div, labels, ratio, timestamps_us, unique_inverse,
    value_codes,
)

logger = logging.getLogger(__name__)

VERSION = "l2.v1"
ENTITIES: dict[str, tuple[str, str]] = {
    "ip": ("source_ip", "dest_ip"),
    "host": ("host", "dest_ip"),
    "user": ("user", "host"),
}
CAPS = {"count": 1e6, "bytes": 1e12, "packets": 1e9, "ports": 65536.0, "degree": 1e5,
        "duration": 86_400.0}
EDGE_FEATURES = (
    "flows", "bytes_sent", "bytes_received", "packets_sent", "packets_received", "dest_ports",
    "duration_mean", *(f"proto_{p}" for p in (*PROTOCOL_CLASSES, "other")),
    *(f"state_{s}" for s in (*CONN_STATE_CLASSES, "other")), "failure_ratio",
)
NODE_FEATURES = (
    "out_degree", "in_degree", "peers", "flows_out", "flows_in", "bytes_out", "bytes_in",
    "packets_out", "packets_in", "ports_out", "ports_in", "failure_out", "failure_in",
)
_FAILED = [list(CONN_STATE_CLASSES).index(c) for c in FAILED_CLASSES]


# The spec field of the optional layer-1 node vectors (its name is part of saved fingerprints).
NODE_VECTORS = "layer1"


class Layer2GraphBuilder:
    """Canonical event table -> one `torch_geometric.data.Data` graph per time window.

    Args:
        window_seconds: window length in seconds (> 0).
        entity: what a node is: "ip", "host" or "user" (see the module docstring).
        layer1: when given, node features end with the mean of this layer-1 featurizer's
            vectors over the node's events (128 more dims).

    Raises:
        ConfigError: an argument breaks its rule.
    """

    def __init__(self, *, window_seconds: float = 300.0, entity: str = "ip",
                 layer1: Layer1Featurizer | None = None) -> None:
        self._window_us = check_period("window_seconds", window_seconds)
        if entity not in ENTITIES:
            raise ConfigError(f"entity must be one of {', '.join(ENTITIES)}, got {entity!r}")
        if layer1 is not None and not isinstance(layer1, Layer1Featurizer):
            raise ConfigError("layer1 must be a Layer1Featurizer or None, got "
                              f"{type(layer1).__name__}")
        self.window_seconds = window_seconds
        self.entity = entity
        self.layer1 = layer1

    @property
    def unit_fields(self) -> tuple[str, ...]:
        """The event fields an edge needs: an event without one of them is in no edge."""
        return ("timestamp", *ENTITIES[self.entity])

    @property
    def node_features(self) -> tuple[str, ...]:
        extra = tuple(f"l1_{i:03d}" for i in range(LAYER1_DIM)) if self.layer1 is not None else ()
        return NODE_FEATURES + extra

    @property
    def spec(self) -> FeatureSpec:
        """The recipe: window, entity kind, caps, feature names, and the layer-1 spec if any."""
        config = {
            "window_seconds": float(self.window_seconds),
            "entity": self.entity,
            "endpoints": list(ENTITIES[self.entity]),
            "caps": dict(CAPS),
            "conn_state_classes": {k: list(v) for k, v in CONN_STATE_CLASSES.items()},
            "edge_features": list(EDGE_FEATURES),
            "node_features": list(self.node_features),
            NODE_VECTORS: (json.loads(self.layer1.spec.to_json()) if self.layer1 is not None
                           else None),
        }
        return FeatureSpec("layer2", VERSION, config)

    @classmethod
    def from_spec(cls, spec: FeatureSpec) -> Layer2GraphBuilder:
        """Rebuild the exact transform a spec describes.

        Raises:
            SchemaError: the spec is for another layer or version, or differs from what this
                code would produce with its settings.
        """
        def make(config: dict) -> Layer2GraphBuilder:
            vectors = config.get(NODE_VECTORS)
            return cls(window_seconds=config["window_seconds"], entity=config["entity"],
                       layer1=(Layer1Featurizer.from_spec(FeatureSpec.from_json(
                           json.dumps(vectors))) if vectors else None))

        return spec.rebuild("layer2", VERSION, "the layer-2 graph builder", make)

    def featurize(self, table: pa.Table) -> Layer2Graphs:
        """Build every window's graph.

        Args:
            table: canonical events (`training.collection.schema.CANONICAL_SCHEMA`; missing columns
                read as null). Not modified.

        Returns:
            the graphs, in window order; nodes sorted by entity name, edges by (source,
            destination) name; each edge's events in table order.
        """
        source, dest = ENTITIES[self.entity]
        micros, has_time = timestamps_us(table)
        (src, dst), names = entity_codes(column(table, source), column(table, dest))
        has_ends = (src >= 0) & (dst >= 0)
        rows = np.flatnonzero(has_ends & has_time)
        window = floor_div(micros[rows], self._window_us)
        order = np.lexsort((dst[rows], src[rows], window))  # stable: table order within an edge
        rows, window = rows[order], window[order]
        src, dst = src[rows], dst[rows]
        edges = Groups(window, src, dst)
        sums = _edge_sums(table, rows, edges)
        graph = _Graph(window[edges.starts], src[edges.starts], dst[edges.starts], len(names))

        x = _node_features(graph, edges, sums)
        if self.layer1 is not None:
            x = np.concatenate([x, _mean_layer1(self.layer1, table, rows, edges, graph)], axis=1)
        edge_y = edges.max(labels(table)[rows])
        y = np.full(graph.n_nodes, -1, dtype=np.int8)
        np.maximum.at(y, graph.src_node, edge_y)
        np.maximum.at(y, graph.dst_node, edge_y)

        stats = {"events": table.num_rows, "used": len(rows),
                 "without_endpoints": int((~has_ends).sum()),
                 "without_timestamp": int((has_ends & ~has_time).sum()),
                 "graphs": len(graph.windows), "nodes": graph.n_nodes, "edges": edges.size}
        logger.info("layer 2: %(graphs)d graphs, %(nodes)d nodes, %(edges)d edges from %(used)d "
                    "of %(events)d events", stats)
        arrays = {
            "x": x.astype(np.float32), "y": y, "node_ptr": graph.node_ptr,
            "edge_index": graph.edge_index, "edge_attr": _edge_features(sums), "edge_y": edge_y,
            "edge_ptr": graph.edge_ptr,
            "event_ptr": np.append(edges.starts, len(rows)).astype(np.int64),
            "event_row": rows.astype(np.int64),
            "window_start": graph.windows * self._window_us,
        }
        take = pa.array(rows, type=pa.int64())
        return Layer2Graphs(self.spec, arrays,
                            names.take(pa.array(graph.node_entity, type=pa.int64())),
                            column(table, "event_id").take(take).fill_null(""), stats)


class _Graph:
    """The nodes of every window, and each edge's ends as node numbers.

    Nodes are the distinct (window, entity) pairs among the edge ends; numbering them in
    (window, entity code) order keeps each window's nodes together, in name order.
    """

    def __init__(self, edge_window: np.ndarray, edge_src: np.ndarray, edge_dst: np.ndarray,
                 n_entities: int) -> None:
        self.edge_src, self.edge_dst = edge_src, edge_dst
        self.windows, rank = unique_inverse(edge_window)
        span = max(n_entities, 1)
        keys, ends = unique_inverse(np.concatenate([rank * span + edge_src, rank * span + edge_dst]))
        self.n_nodes = len(keys)
        self.src_node, self.dst_node = ends[:len(edge_src)], ends[len(edge_src):]
        self.node_entity = keys % span
        bounds = np.arange(len(self.windows) + 1)
        self.node_ptr = np.searchsorted(keys // span, bounds).astype(np.int64)
        self.edge_ptr = np.searchsorted(rank, bounds).astype(np.int64)
        # (2, edges), numbered within each graph
        self.edge_index = np.stack([self.src_node, self.dst_node]) - self.node_ptr[rank]


def _edge_sums(table: pa.Table, rows: np.ndarray, edges: Groups) -> dict[str, np.ndarray]:
    """Raw per-edge aggregates (float64), plus the destination port of every row."""
    sums = {name: edges.sum(amounts(table, name)[rows])
            for name in ("bytes_sent", "bytes_received", "packets_sent", "packets_received")}
    sums["flows"] = edges.count().astype(np.float64)
    sums["port_of_row"] = value_codes(column(table, "dest_port"))[rows]
    sums["dest_ports"] = edges.count_distinct(sums["port_of_row"])
    duration = numbers(column(table, "duration"))[rows]
    timed = ~np.isnan(duration)
    sums["duration_mean"] = ratio(edges.sum(np.where(timed, duration, 0.0)),
                                  edges.sum(timed.astype(float)))
    protocol = classes(table, "protocol", PROTOCOL_CLASSES)[rows]
    sums["protocols"] = np.stack([edges.sum((protocol == k).astype(float))
                                  for k in range(len(PROTOCOL_CLASSES) + 1)], axis=1)
    state = classes(table, "conn_state", CONN_STATE_CLASSES)[rows]
    sums["states"] = np.stack([edges.sum((state == k).astype(float))
                               for k in range(len(CONN_STATE_CLASSES) + 1)], axis=1)
    sums["failed"] = sums["states"][:, _FAILED].sum(axis=1)
    return sums


def _edge_features(sums: dict[str, np.ndarray]) -> np.ndarray:
    """(edges, 18) float32 (see the module docstring)."""
    flows = sums["flows"]
    columns = [
        log_scale(flows, CAPS["count"]),
        log_scale(sums["bytes_sent"], CAPS["bytes"]),
        log_scale(sums["bytes_received"], CAPS["bytes"]),
        log_scale(sums["packets_sent"], CAPS["packets"]),
        log_scale(sums["packets_received"], CAPS["packets"]),
        log_scale(sums["dest_ports"], CAPS["ports"]),
        log_scale(sums["duration_mean"], CAPS["duration"]),
        *(sums["protocols"] / flows[:, None]).T, *(sums["states"] / flows[:, None]).T,
        sums["failed"] / flows,
    ]
    return np.stack(columns, axis=1).astype(np.float32).reshape(len(flows), len(EDGE_FEATURES))


def _node_features(graph: _Graph, edges: Groups, sums: dict[str, np.ndarray]) -> np.ndarray:
    """(nodes, 13) float64 from the edge sums (see the module docstring)."""
    n = graph.n_nodes

    def out_in(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per node: `values` summed over its outgoing edges, and over its incoming ones."""
        return (np.bincount(graph.src_node, weights=values, minlength=n),
                np.bincount(graph.dst_node, weights=values, minlength=n))

    out_degree, in_degree = out_in(np.ones(edges.size))
    peers = count_distinct(np.concatenate([graph.src_node, graph.dst_node]),
                           np.concatenate([graph.edge_dst, graph.edge_src]), n)
    flows_out, flows_in = out_in(sums["flows"])
    failed_out, failed_in = out_in(sums["failed"])
    # What a node sent: the "sent" side of its outgoing edges, the "received" side of incoming.
    sent_src, sent_dst = out_in(sums["bytes_sent"])
    recv_src, recv_dst = out_in(sums["bytes_received"])
    psent_src, psent_dst = out_in(sums["packets_sent"])
    precv_src, precv_dst = out_in(sums["packets_received"])
    ports = sums["port_of_row"]
    ports_out = count_distinct(graph.src_node[edges.of_row], ports, n)
    ports_in = count_distinct(graph.dst_node[edges.of_row], ports, n)
    degree, count = CAPS["degree"], CAPS["count"]
    columns = [
        log_scale(out_degree, degree), log_scale(in_degree, degree), log_scale(peers, degree),
        log_scale(flows_out, count), log_scale(flows_in, count),
        log_scale(sent_src + recv_dst, CAPS["bytes"]),
        log_scale(recv_src + sent_dst, CAPS["bytes"]),
        log_scale(psent_src + precv_dst, CAPS["packets"]),
        log_scale(precv_src + psent_dst, CAPS["packets"]),
        log_scale(ports_out, CAPS["ports"]), log_scale(ports_in, CAPS["ports"]),
        ratio(failed_out, flows_out), ratio(failed_in, flows_in),
    ]
    return np.stack(columns, axis=1).reshape(n, len(NODE_FEATURES))


def _mean_layer1(layer1: Layer1Featurizer, table: pa.Table, rows: np.ndarray, edges: Groups,
                 graph: _Graph) -> np.ndarray:
    """(nodes, 128) mean layer-1 vector over each node's events, as a sparse averaging product."""
    vectors = layer1.featurize(table.take(pa.array(rows, type=pa.int64())))  # (events, 128)
    as_src, as_dst = graph.src_node[edges.of_row], graph.dst_node[edges.of_row]
    other = as_dst != as_src  # a self-loop event counts once for its node
    node = np.concatenate([as_src, as_dst[other]])
    event = np.concatenate([np.arange(len(rows)), np.flatnonzero(other)])
    weight = (1.0 / np.bincount(node, minlength=graph.n_nodes)[node]).astype(np.float32)
    averaging = sparse.csr_matrix((weight, (node, event)), shape=(graph.n_nodes, len(rows)))
    return np.asarray(averaging @ vectors, dtype=np.float32).reshape(graph.n_nodes, LAYER1_DIM)
