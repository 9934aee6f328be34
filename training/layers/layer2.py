"""Layer 2 (behavioral): host graphs per time window, every edge scored by a graph autoencoder.

Units are the edges of `Layer2Graphs` (`training.features.layer2` documents the graphs); each
edge maps to the events between its two hosts in its window. `fit` learns the node and edge
standardizers from the training graphs' benign edges (`training.layers.layer2_batches`).
Splits cut whole window graphs (a graph holds many hosts, so "group" splits by time instead).
torch-geometric is imported on first use, not when the layer is named.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import pyarrow as pa

from training.detectors.base import Detector
from training.features.encoding import FeatureSpec, text_array
from training.layers.base import TIME
from training.layers.registry import register_layer
from training.layers.samples import LayerType, PreprocessedSample
from training.layers.scaled import ScaledLayer
from training.trainer.config import TrainingConfig

@register_layer
class Layer2(ScaledLayer):
    """Window graphs of hosts, for the layer-2 GNN (see the module docstring)."""

    name = "layer2"
    layer_type = LayerType.LAYER2_BEHAVIORAL
    aliases = (LayerType.LAYER2_BEHAVIORAL.value, "behavioral", "2")
    unit = "edge"
    feature_names_key = "edge_features"
    model_name = "layer2_gnn"
    detector_name = "gnn"
    row_inputs = ("edge", "edge_context")
    features_file = "layer2_graphs.npz"
    score_batch = 64  # windows per model call
    min_units = 20
    model_options = {
        "hidden_dim": {"type": int, "default": 64, "help": "width of the embeddings and heads"},
        "num_layers": {"type": int, "default": 2, "help": "message-passing layers"},
        "conv": {"choices": ("gat", "sage"), "default": "gat",
                 "help": "GATv2 attention that also reads the edge features, or GraphSAGE"},
        "dropout": {"type": float, "default": 0.1, "help": "dropout after every layer"},
        "existence_weight": {"type": float, "default": 1.0,
                             "help": "weight of the link-existence loss and score"},
        "directed": {"action": argparse.BooleanOptionalAction, "default": True,
                     "help": "tell which end started a connection (--no-directed: symmetric)"},
        "supervised": {"action": argparse.BooleanOptionalAction, "default": False,
                       "help": "add a P(threat) head trained on the edge labels; it gives the "
                               "score"},
    }

    @classmethod
    def featurizer_class(cls) -> type:
        from training.features.layer2 import Layer2GraphBuilder

        return Layer2GraphBuilder

    @classmethod
    def units_class(cls) -> type:
        from training.features.layer2_graphs import Layer2Graphs

        return Layer2Graphs

    def fit_spec(self, train: Any) -> FeatureSpec:
        from training.layers.layer2_batches import fit_layer2_scaling

        return fit_layer2_scaling(train, benign_only=self.benign_only_)

    # -- units -----------------------------------------------------------------------------

    def shortfall(self, units: Any, strategy: str = "temporal") -> str | None:
        short = super().shortfall(units, strategy)
        if short is None and len(units) < 3:  # splits cut whole window graphs
            return (f"{len(self.labels(units)):,} edges in {len(units)} window graph(s), fewer "
                    "than the 3 windows a train/val/test split needs")
        return short

    def labels(self, units: Any) -> np.ndarray:
        return units.arrays["edge_y"].astype(np.int64)

    def split(self, units: Any, strategy: str, ratios: tuple[float, float, float],
              seed: int, **options: Any) -> dict[str, Any]:
        from training.datasets.window_splits import split_layer2

        by_time = "temporal" if strategy == "group" else strategy  # a graph holds many hosts
        return split_layer2(units, by_time, *ratios, seed=seed, **options)

    def unit_features(self, units: Any) -> np.ndarray:
        return units.arrays["edge_attr"]

    def relabeled(self, units: Any, labels: np.ndarray) -> Any:
        return type(units)(units.spec, {**units.arrays, "edge_y": np.asarray(labels)},
                           units.entity, units.event_id, units.stats)

    @property
    def window_seconds(self) -> float:
        return float(self.featurizer.window_seconds)

    def unit_columns(self, units: Any) -> dict[str, pa.Array]:
        a = units.arrays
        edges = len(a["edge_y"])
        window = np.searchsorted(a["edge_ptr"], np.arange(edges), side="right") - 1
        base, start = a["node_ptr"][window], a["window_start"][window]
        names = units.strings("entity")
        ends = np.char.add(np.char.add(names[base + a["edge_index"][0]], "->"),
                           names[base + a["edge_index"][1]])
        text = np.char.add(ends, np.char.add("@", start.astype("datetime64[us]").astype(str)))
        events = pa.ListArray.from_arrays(pa.array(a["event_ptr"].astype(np.int32)),
                                          units.event_id.cast(pa.string()))
        return {"unit": text_array(text),
                "time": pa.array(start.astype(np.int64)).cast(TIME), "event_ids": events}

    def samples(self, units: Any) -> list[PreprocessedSample]:
        samples = []
        for graph in units:
            start = int(graph.window_start[0])
            samples.append(PreprocessedSample(
                f"window:{start}", self.layer_type, graph.x.numpy(),
                int(graph.edge_y.max()) if graph.edge_y.numel() else -1,
                {"window_start": np.datetime64(start, "us"), "entity": graph.entity,
                 "edge_index": graph.edge_index.numpy(), "edge_attr": graph.edge_attr.numpy(),
                 "edge_labels": graph.edge_y.numpy(),
                 "edge_event_ptr": graph.edge_event_ptr.numpy(), "event_ids": graph.event_id}))
        return samples

    # -- models ----------------------------------------------------------------------------

    def term_names(self, model: Detector, units: Any) -> list[str]:
        """The GNN's terms: the edge's features, its ends' node features (source and
        destination; for an undirected decoder the larger and smaller of each), the peer."""
        from training.features.layer2 import EDGE_FEATURES

        ends = ("source", "dest") if getattr(model, "directed", True) else ("end_max", "end_min")
        nodes = self.featurizer.node_features
        return [*EDGE_FEATURES, *(f"{end}.{name}" for end in ends for name in nodes),
                "peer (edge existence)"]

    def explain(self, model: Detector, units: Any, rows: np.ndarray,
                events: pa.Table | None = None) -> list[list[Any]]:
        """As `Layer.explain`, each edge and node feature observed and reconstructed in its
        real unit (`training.features.layer2_readout`; the layer-1 node dims and the peer
        term have none)."""
        from training.features.layer2_readout import edge_readout
        from training.layers.reasons import explain_terms

        # Only the graphs holding `rows` are run (an edge's terms depend on its graph alone):
        # running every graph of a large batch to explain a thousand edges took minutes.
        rows = np.asarray(rows, np.int64)
        edge_ptr = units.arrays["edge_ptr"]
        graph = np.searchsorted(edge_ptr, rows, side="right") - 1
        graphs = np.unique(graph)
        part = units.subset(graphs)
        local = part.arrays["edge_ptr"][np.searchsorted(graphs, graph)] + rows - edge_ptr[graph]
        return explain_terms(model, self.batches(part, self.score_batch), local,
                             self.term_names(model, part), edge_readout(self.spec).texts)

    def default_detector(self, units: Any, **model_args: Any) -> Detector:
        from training.detectors.gnn import Layer2GNN

        a = units.arrays
        return Layer2GNN(node_dim=int(a["x"].shape[1]), edge_dim=int(a["edge_attr"].shape[1]),
                         **model_args)

    def row_width(self, units: Any, inputs: str) -> int:
        a = units.arrays
        edge, node = int(a["edge_attr"].shape[1]), int(a["x"].shape[1])
        return edge if inputs == "edge" else edge + 2 * node

    def default_config(self, **changes: Any) -> TrainingConfig:
        base = TrainingConfig(model_name=self.model_name, layer_name=self.name, seed=42,
                              batch_size=32, num_epochs=50, learning_rate=3e-3)
        return base.replace(**changes)

    def search_space(self, trial: Any) -> dict[str, Any]:
        return {
            "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
            "batch_size": trial.suggest_categorical("batch_size", [8, 16, 32, 64]),
            "hidden_dim": trial.suggest_categorical("hidden_dim", [32, 64, 128]),
            "num_layers": trial.suggest_int("num_layers", 1, 3),
            "conv": trial.suggest_categorical("conv", ["sage", "gat"]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        }

    def batches(self, units: Any, batch_size: int, *, fit_only: bool = False,
                shuffle: bool = False, **sharding: Any) -> Any:
        from training.layers.layer2_batches import Layer2Data

        data = Layer2Data(units, self.spec, benign_only=self.benign_only_ is not False)
        return data.batches(batch_size, shuffle=shuffle, training=fit_only, **sharding)
