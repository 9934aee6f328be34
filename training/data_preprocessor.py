"""Turning events into model inputs for each layer (the original `DataPreprocessor` API).

Every entry point runs the same vectorized path: events (a canonical table, or event dicts
mapped onto one) -> the layer's featurizer -> arrays. `preprocess_event` is that path on a
single event; `preprocess_batch` wraps the arrays as `PreprocessedSample`s; `featurize` returns
the arrays themselves, which is what large datasets should use.

`featurize` returns, per layer:

| layer | result | unit of one sample |
|---|---|---|
| 1 sensory | `LayerArrays` (128-dim vectors) | an event |
| 2 behavioral | `Layer2Graphs` (window graphs, `training.features.layer2`) | a time window's graph |
| 3 operational | `Layer3Windows` (per-entity histories, `training.features.layer3`) | an entity's window |

Each has `save(path)`: one .npz without pickle, the FeatureSpec inside. Layer-1 files hold
`features`, `labels` (is_threat: -1 unknown, 0 benign, 1 threat), `attack_type`, `sample_ids`,
`timestamps` (datetime64[us]), `entity` (the host the sample belongs to, for group splits) and
`feature_spec` (JSON).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.errors import ConfigError, NotSupportedError, SchemaError
from training.features.encoding import SPEC_FIELD, FeatureSpec
from training.features.events import events_table
from training.features.layer1 import Layer1Featurizer
from training.features.layer3_windows import Layer3Windows
from training.fileio import atomic_write
from training.paths import preprocessed_dir

if TYPE_CHECKING:  # layer 2 needs torch-geometric, imported on first use (seconds of start-up)
    from training.features.layer2 import Layer2GraphBuilder
    from training.features.layer2_graphs import Layer2Graphs
    from training.features.layer3 import Layer3WindowBuilder

# What np.load raises on a damaged or hostile file: truncated (EOFError, BadZipFile), bit-flipped
# (BadZipFile: bad CRC), a member that is not an array (ValueError), or one declaring an absurd
# size (MemoryError when allocating it).
_UNREADABLE = (OSError, EOFError, ValueError, KeyError, MemoryError, zipfile.BadZipFile)


class LayerType(str, Enum):
    """The five layers of the original design; 4 and 5 have no featurizer yet."""

    LAYER1_SENSORY = "layer1_sensory"
    LAYER2_BEHAVIORAL = "layer2_behavioral"
    LAYER3_OPERATIONAL = "layer3_operational"
    LAYER4_TACTICAL = "layer4_tactical"
    LAYER5_STRATEGIC = "layer5_strategic"


@dataclass
class PreprocessedSample:
    """One model input (the original per-sample API)."""

    sample_id: str
    layer: LayerType
    features: np.ndarray
    label: int | None = None
    metadata: dict | None = None


@dataclass
class LayerArrays:
    """A layer's inputs for many samples, row-aligned, with the spec that made them."""

    layer: LayerType
    spec: FeatureSpec
    arrays: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.arrays["labels"])

    def samples(self) -> list[PreprocessedSample]:
        a = self.arrays
        return [
            PreprocessedSample(str(a["sample_ids"][i]), self.layer, a["features"][i],
                               int(a["labels"][i]),
                               {"attack_type": str(a["attack_type"][i]) or None,
                                "timestamp": a["timestamps"][i], "entity": str(a["entity"][i])})
            for i in range(len(self))
        ]

    def save(self, path: Path) -> Path:
        """Write the arrays and the spec to `path` (.npz, no pickle), atomically."""
        with atomic_write(path) as handle:
            np.savez(handle, **self.arrays, layer=np.array(self.layer.value),
                     **{SPEC_FIELD: self.spec.to_npz()})
        return path

    @classmethod
    def load(cls, path: str | Path) -> LayerArrays:
        """Read a file written by `save`; no code in it is ever run (allow_pickle=False)."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                spec = FeatureSpec.from_npz(data, str(path))
                layer = LayerType(str(data["layer"]))
                arrays = {k: data[k] for k in data.files if k not in (SPEC_FIELD, "layer")}
        except _UNREADABLE as exc:
            raise SchemaError(f"{path}: not a readable preprocessed-samples file "
                              f"({type(exc).__name__}: {exc})") from exc
        return cls(layer, spec, arrays)


def _entity(table: pa.Table) -> pa.Array:
    """The host a sample belongs to: source address, else host name, else user."""
    return pc.coalesce(table["source_ip"], table["host"], table["user"], "").cast(pa.string())


def _texts(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(column, "").to_numpy(zero_copy_only=False), dtype=str)




class DataPreprocessor:
    """Events in, model inputs out, for each layer.

    Args:
        output_dir: where `save_samples` writes (default training/data/preprocessed).
        layer1: the layer-1 featurizer (default: the data-free `Layer1Featurizer()`).
        layer2: the layer-2 graph builder (default: 5-minute windows of IP graphs).
        layer3: the layer-3 window builder (default: 60-second buckets, 30 of history).
    """

    def __init__(self, output_dir: str | Path | None = None,
                 layer1: Layer1Featurizer | None = None,
                 layer2: Layer2GraphBuilder | None = None,
                 layer3: Layer3WindowBuilder | None = None) -> None:
        self.output_dir = Path(output_dir) if output_dir is not None else preprocessed_dir()
        self.layer1 = layer1 or Layer1Featurizer()
        self._layer2, self._layer3 = layer2, layer3

    @property
    def layer2(self) -> Layer2GraphBuilder:
        if self._layer2 is None:
            from training.features.layer2 import Layer2GraphBuilder
            self._layer2 = Layer2GraphBuilder()
        return self._layer2

    @property
    def layer3(self) -> Layer3WindowBuilder:
        if self._layer3 is None:
            from training.features.layer3 import Layer3WindowBuilder
            self._layer3 = Layer3WindowBuilder()
        return self._layer3

    def featurize(self, events: Iterable[Mapping] | pa.Table, layer: LayerType | str) -> LayerArrays | Layer2Graphs | Layer3Windows:
        """The vectorized path every other method uses (see the module docstring)."""
        layer = _layer(layer)
        table = events_table(events)
        if layer is LayerType.LAYER2_BEHAVIORAL:
            return self.layer2.build(table)
        if layer is LayerType.LAYER3_OPERATIONAL:
            return self.layer3.build(table)
        timestamps = table["timestamp"].cast(pa.timestamp("us")).to_numpy(zero_copy_only=False)
        arrays = {
            "features": self.layer1.transform(table),
            "labels": table["is_threat"].to_numpy(zero_copy_only=False).astype(np.int8),
            "attack_type": _texts(table["attack_type"]),
            "sample_ids": _texts(table["event_id"]),
            "timestamps": timestamps.astype("datetime64[us]"),
            "entity": _texts(_entity(table)),
        }
        return LayerArrays(layer, self.layer1.spec, arrays)

    def preprocess_batch(self, events: Iterable[Mapping] | pa.Table,
                         layer: LayerType | str = LayerType.LAYER1_SENSORY) -> list[PreprocessedSample]:
        """Samples for many events (see `featurize` for the arrays without the objects).

        One sample per unit: an event (layer 1), a window graph (layer 2: `features` are the
        node features; edges, entities and event ids in `metadata`), or an entity window
        (layer 3: `features` is the (T, F) history; the target bucket in `metadata`).
        """
        result = self.featurize(events, layer)
        if isinstance(result, LayerArrays):
            return result.samples()
        if isinstance(result, Layer3Windows):
            return _window_samples(result)
        return _graph_samples(result)

    def preprocess_event(self, event: Mapping, layers: str | Sequence[LayerType] = "all"
                         ) -> PreprocessedSample | list[PreprocessedSample]:
        """One event's samples: one sample for one layer, a list for several.

        "all" means every layer the event can feed: layer 1 always; layer 2 when it has both
        ends of its graph's edge and a timestamp; layer 3 when it has the builder's entity (the
        source address by default) and a timestamp.

        Raises:
            SchemaError: an explicitly requested layer cannot be built from this event.
        """
        explicit = layers != "all"
        chosen = [_layer(x) for x in layers] if explicit else list(FEATURIZED)
        if not chosen:
            raise ConfigError("layers must name at least one LayerType or be 'all', got []")
        samples = []
        for layer in chosen:
            built = self.preprocess_batch([event], layer)
            if built:
                samples.append(built[0])
            elif explicit:
                raise SchemaError(f"the event cannot feed {layer.value}: it lacks a timestamp or "
                                  "the entities that layer is built on (see the build statistics "
                                  "of featurize for the reason)")
        return samples[0] if len(samples) == 1 else samples

    def save_samples(self, samples: Sequence[PreprocessedSample] | LayerArrays | Layer2Graphs
                     | Layer3Windows, filename: str) -> Path:
        """Write samples to `output_dir/<filename>.npz` (no pickle) and return the path.

        Layer-2 and layer-3 results are saved whole: pass what `featurize` returned.
        """
        path = self.output_dir / (filename if filename.endswith(".npz") else f"{filename}.npz")
        # a list of samples is packed; what featurize returned saves itself
        arrays = self._from_samples(samples) if isinstance(samples, list | tuple) else samples
        return arrays.save(path)

    def load_samples(self, path: str | Path) -> list[PreprocessedSample]:
        """The samples of a file written by `save_samples`, whichever layer made it."""
        try:
            with np.load(path, allow_pickle=False) as data:
                layer = FeatureSpec.from_npz(data, str(path)).layer
        except _UNREADABLE as exc:
            raise SchemaError(f"{path}: not a readable samples file "
                              f"({type(exc).__name__}: {exc})") from exc
        if layer == "layer2":
            from training.features.layer2_graphs import Layer2Graphs
            return _graph_samples(Layer2Graphs.load(path))
        if layer == "layer3":
            return _window_samples(Layer3Windows.load(path))
        return LayerArrays.load(path).samples()

    def _from_samples(self, samples: Sequence[PreprocessedSample]) -> LayerArrays:
        if not samples:
            raise ConfigError("samples must hold at least one PreprocessedSample, got none")
        layers = {s.layer for s in samples}
        if layers != {LayerType.LAYER1_SENSORY}:
            raise NotSupportedError(f"saving {sorted(x.value for x in layers)} samples one by "
                                    "one is not available; save what featurize(...) returned")
        meta = [s.metadata or {} for s in samples]
        arrays = {
            "features": np.stack([s.features for s in samples]).astype(np.float32),
            "labels": np.array([-1 if s.label is None else s.label for s in samples], np.int8),
            "attack_type": np.array([m.get("attack_type") or "" for m in meta], dtype=str),
            "sample_ids": np.array([s.sample_id for s in samples], dtype=str),
            "timestamps": np.array([m.get("timestamp") for m in meta], dtype="datetime64[us]"),
            "entity": np.array([m.get("entity") or "" for m in meta], dtype=str),
        }
        return LayerArrays(LayerType.LAYER1_SENSORY, self.layer1.spec, arrays)


def _layer(value: LayerType | str) -> LayerType:
    try:
        layer = LayerType(value)
    except ValueError:
        valid = ", ".join(t.value for t in LayerType)
        raise ConfigError(f"layer must be one of {valid}, got {value!r}") from None
    if layer in (LayerType.LAYER4_TACTICAL, LayerType.LAYER5_STRATEGIC):
        raise NotSupportedError(f"{layer.value} is not available: this release has "
                                "featurizers for layers 1 to 3")
    return layer


FEATURIZED = (LayerType.LAYER1_SENSORY, LayerType.LAYER2_BEHAVIORAL, LayerType.LAYER3_OPERATIONAL)


def _graph_samples(graphs: Layer2Graphs) -> list[PreprocessedSample]:
    samples = []
    for graph in graphs:
        start = int(graph.window_start[0])
        samples.append(PreprocessedSample(
            f"window:{start}", LayerType.LAYER2_BEHAVIORAL, graph.x.numpy(),
            int(graph.edge_y.max()) if graph.edge_y.numel() else -1,
            {"window_start": np.datetime64(start, "us"), "entity": graph.entity,
             "edge_index": graph.edge_index.numpy(), "edge_attr": graph.edge_attr.numpy(),
             "edge_labels": graph.edge_y.numpy(), "edge_event_ptr": graph.edge_event_ptr.numpy(),
             "event_ids": graph.event_id}))
    return samples


def _window_samples(windows: Layer3Windows) -> list[PreprocessedSample]:
    entity, attack = _texts(windows.entity), _texts(windows.attack_type)
    event_ids, ptr = _texts(windows.event_id), windows.event_ptr
    return [
        PreprocessedSample(
            f"{entity[i]}@{windows.time[i]}", LayerType.LAYER3_OPERATIONAL, windows.X[i],
            int(windows.labels[i]),
            {"entity": str(entity[i]), "time": windows.time[i], "target": windows.target[i],
             "attack_type": str(attack[i]) or None, "event_ids": event_ids[ptr[i]:ptr[i + 1]]})
        for i in range(len(windows))
    ]
