"""Layer-2 edge and node features back in their real units, for the GNN's reasons.

Each feature of `training.features.layer2` (its module docstring has the tables) with the
inverse of its data-free transform: counts (flows, dest_ports, degrees, peers, ports), bytes
and packets as integers, `duration_mean` in seconds, the protocol and state shares and failure
ratios as they are. The optional mean layer-1 vector dims of a node (`l1_000` ...) have no
unit of their own and stay standardized, as does the edge-existence term (no value: None).
A change of a feature's transform there is a change here.
"""

from __future__ import annotations

import numpy as np

from training.features.encoding import FeatureSpec
from training.features.layer2 import CAPS, EDGE_FEATURES
from training.features.readout import Dim, LogCount, LogSeconds, Readout, Share, Standardized
from training.features.scaling import scaling_of

_SHARES = [name for name in EDGE_FEATURES if name.startswith(("proto_", "state_"))]
DIMS: dict[str, Dim] = {
    "flows": LogCount(CAPS["count"]),
    "bytes_sent": LogCount(CAPS["bytes"]),
    "bytes_received": LogCount(CAPS["bytes"]),
    "packets_sent": LogCount(CAPS["packets"]),
    "packets_received": LogCount(CAPS["packets"]),
    "dest_ports": LogCount(CAPS["ports"]),
    "duration_mean": LogSeconds(CAPS["duration"]),
    **{name: Share() for name in _SHARES},
    "failure_ratio": Share(),
}
NODE_DIMS: dict[str, Dim] = {
    "out_degree": LogCount(CAPS["degree"]),
    "in_degree": LogCount(CAPS["degree"]),
    "peers": LogCount(CAPS["degree"]),
    "flows_out": LogCount(CAPS["count"]),
    "flows_in": LogCount(CAPS["count"]),
    "bytes_out": LogCount(CAPS["bytes"]),
    "bytes_in": LogCount(CAPS["bytes"]),
    "packets_out": LogCount(CAPS["packets"]),
    "packets_in": LogCount(CAPS["packets"]),
    "ports_out": LogCount(CAPS["ports"]),
    "ports_in": LogCount(CAPS["ports"]),
    "failure_out": Share(),
    "failure_in": Share(),
}


def edge_readout(spec: FeatureSpec) -> Readout:
    """The readout of a layer-2 GNN's terms: the edge features, both ends' node features (each
    end in the spec's node order), then the edge-existence term; with the edge and node
    standardizers of the model spec `spec`.

    Raises:
        SchemaError: `spec` has no fitted scaling (a data file's spec, not a model's).
    """
    edges, nodes = spec.config["edge_features"], spec.config["node_features"]
    scaling = scaling_of(spec, {"edge": len(edges), "node": len(nodes)})
    # The layer-1 vector dims (`l1_000` ...) have no unit: they stay standardized.
    node_dims = tuple(Standardized() if name.startswith("l1_") else NODE_DIMS[name]
                      for name in nodes)
    dims = (*(DIMS[name] for name in edges), *node_dims, *node_dims, Standardized())
    node, edge = scaling["node"], scaling["edge"]
    mean = np.concatenate([edge.mean, node.mean, node.mean, [0.0]])
    std = np.concatenate([edge.std, node.std, node.std, [1.0]])
    return Readout(dims, mean, std)
