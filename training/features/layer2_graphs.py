"""The layer-2 output: a sequence of window graphs held as concatenated arrays.

Like PyG's `InMemoryDataset`, the graphs live in a few large arrays with per-graph offsets,
and `graphs[i]` slices them into a `torch_geometric.data.Data` (views, no copies of the
tensors). That keeps building fast however many windows there are, and lets saving write the
arrays as they are: one .npz, no pickle, the FeatureSpec inside.

Each `Data` has:

| attribute | shape / type | meaning |
|---|---|---|
| x | (nodes, node features) float32 | node features |
| edge_index | (2, edges) int64 | source and destination node of every edge |
| edge_attr | (edges, 18) float32 | edge features |
| y | (nodes,) int64 | node label: 1 threat, 0 benign, -1 unknown |
| edge_y | (edges,) int64 | edge label, same coding |
| edge_event_ptr | (edges + 1,) int64 | edge e was formed by events edge_event_ptr[e]:edge_event_ptr[e+1] |
| event_row | (events,) int64 | those events as row numbers of the table the graphs were built from |
| event_id | (events,) numpy str | those events' `event_id` |
| entity | (nodes,) numpy str | the entity (IP, host or user name) of every node |
| window_start | (1,) int64 | start of the window, microseconds since the epoch (UTC) |

`edge_event_ptr` indexes its own graph's events; after batching, map scores back per graph with
`Batch.get_example(i)` or `to_data_list()`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from torch_geometric.data import Data

from training.artifacts.npz import load_npz, save_npz
from training.errors import SchemaError
from training.features.encoding import FeatureSpec
from training.features.ragged import gather_ranges, offsets_of

ARRAYS = ("x", "y", "node_ptr", "edge_index", "edge_attr", "edge_y", "edge_ptr", "event_ptr",
          "event_row", "window_start")
STRINGS = ("entity", "event_id")


class Layer2Graphs(Sequence[Data]):
    """Window graphs built by `Layer2GraphBuilder` (or loaded from its .npz).

    Args:
        spec: the FeatureSpec that made them.
        arrays: the concatenated arrays named in `ARRAYS` (see `Layer2GraphBuilder.build`).
        entity: the name of every node, all graphs together.
        event_id: the id of every event, in `event_row` order.
        stats: build statistics (events used, left out, graphs, nodes, edges).
    """

    def __init__(self, spec: FeatureSpec, arrays: dict[str, np.ndarray], entity: pa.Array,
                 event_id: pa.Array, stats: dict | None = None) -> None:
        missing = [name for name in ARRAYS if name not in arrays]
        if missing:
            raise SchemaError(f"layer-2 graphs lack the arrays {', '.join(missing)}")
        self.spec = spec
        self.arrays = arrays
        self.entity = entity
        self.event_id = event_id
        self.stats = dict(stats or {})
        self._check()
        # One tensor per array (sharing memory); graphs are views into these.
        self._t = {name: torch.from_numpy(np.ascontiguousarray(arrays[name])) for name in
                   ("x", "edge_index", "edge_attr", "event_row", "event_ptr", "window_start")}
        self._t["y"] = torch.from_numpy(arrays["y"].astype(np.int64))
        self._t["edge_y"] = torch.from_numpy(arrays["edge_y"].astype(np.int64))
        self._node_ptr = arrays["node_ptr"].tolist()
        self._edge_ptr = arrays["edge_ptr"].tolist()
        self._event_ptr = arrays["event_ptr"].tolist()
        self._text: dict[str, np.ndarray] = {}  # numpy str copies of the text, made on first use

    def _check(self) -> None:
        a = self.arrays
        nodes, edges, events = len(a["x"]), a["edge_index"].shape[1], len(a["event_row"])
        consistent = (len(a["node_ptr"]) == len(a["edge_ptr"]) == len(a["window_start"]) + 1
                      and a["node_ptr"][-1] == nodes == len(a["y"]) == len(self.entity)
                      and a["edge_ptr"][-1] == edges == len(a["edge_attr"]) == len(a["edge_y"])
                      and len(a["event_ptr"]) == edges + 1 and a["event_ptr"][-1] == events
                      == len(self.event_id))
        if not consistent:
            raise SchemaError("layer-2 arrays do not fit together (offsets and lengths differ); "
                              "the file is damaged or was not written by Layer2Graphs.save")

    def __len__(self) -> int:
        return len(self.arrays["window_start"])

    def __getitem__(self, index: int | slice) -> Data | list[Data]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(f"graph index {index} out of range for {len(self)} graphs")
        index %= len(self)
        t = self._t
        n0, n1 = self._node_ptr[index], self._node_ptr[index + 1]
        e0, e1 = self._edge_ptr[index], self._edge_ptr[index + 1]
        v0, v1 = self._event_ptr[e0], self._event_ptr[e1]
        return Data(
            x=t["x"][n0:n1], edge_index=t["edge_index"][:, e0:e1], edge_attr=t["edge_attr"][e0:e1],
            y=t["y"][n0:n1], edge_y=t["edge_y"][e0:e1], edge_event_ptr=t["event_ptr"][e0:e1 + 1] - v0,
            event_row=t["event_row"][v0:v1], event_id=self.strings("event_id")[v0:v1],
            entity=self.strings("entity")[n0:n1], window_start=t["window_start"][index:index + 1],
        )

    def strings(self, name: str) -> np.ndarray:
        """A text column as one numpy str array (converted once: slicing it is then free)."""
        if name not in self._text:
            values = getattr(self, name).to_numpy(zero_copy_only=False)
            self._text[name] = values.astype(str) if len(values) else np.zeros(0, dtype="<U1")
        return self._text[name]

    def __iter__(self) -> Iterator[Data]:
        return (self[i] for i in range(len(self)))

    def subset(self, indices: np.ndarray) -> Layer2Graphs:
        """The graphs at `indices` (in that order) with their nodes, edges and events; spec and
        stats kept. Node numbers in `edge_index` are per graph, so they stay as they are."""
        graphs = np.asarray(indices, dtype=np.int64)
        a = self.arrays
        node_lo, node_hi = a["node_ptr"][graphs], a["node_ptr"][graphs + 1]
        edge_lo, edge_hi = a["edge_ptr"][graphs], a["edge_ptr"][graphs + 1]
        nodes, edges = gather_ranges(node_lo, node_hi), gather_ranges(edge_lo, edge_hi)
        event_lo, event_hi = a["event_ptr"][edges], a["event_ptr"][edges + 1]
        events = gather_ranges(event_lo, event_hi)
        arrays = {
            "x": a["x"][nodes], "y": a["y"][nodes], "edge_index": a["edge_index"][:, edges],
            "edge_attr": a["edge_attr"][edges], "edge_y": a["edge_y"][edges],
            "node_ptr": offsets_of(node_hi - node_lo, a["node_ptr"].dtype),
            "edge_ptr": offsets_of(edge_hi - edge_lo, a["edge_ptr"].dtype),
            "event_ptr": offsets_of(event_hi - event_lo, a["event_ptr"].dtype),
            "event_row": a["event_row"][events], "window_start": a["window_start"][graphs],
        }
        return Layer2Graphs(self.spec, arrays, self.entity.take(pa.array(nodes)),
                            self.event_id.take(pa.array(events)), self.stats)

    def save(self, path: str | Path) -> Path:
        """Write every graph to one .npz (no pickle, spec and statistics inside)."""
        return save_npz(path, self.arrays, self.spec, self.stats,
                        {name: getattr(self, name) for name in STRINGS})

    @classmethod
    def load(cls, path: str | Path, spec: FeatureSpec | None = None) -> Layer2Graphs:
        """Read graphs written by `save`.

        Args:
            path: the .npz file.
            spec: when given, the file must have been made with exactly this spec.

        Raises:
            SourceError: the file cannot be read.
            SchemaError: it holds no layer-2 graphs, or they were made with another spec.
        """
        values, file_spec, stats = load_npz(path, "layer2", spec, ARRAYS, STRINGS)
        return cls(file_spec, {k: values[k] for k in ARRAYS}, values["entity"],
                   values["event_id"], stats)

