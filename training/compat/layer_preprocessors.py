"""The original per-layer preprocessors: `LayerPreprocessor(layer)` and its three subclasses.

Each runs the same vectorized path as `DataPreprocessor` (one event is a table of one row), so
a sample made here equals the one the batch path makes for that event:

| original | `preprocess(event)` returns | `get_feature_dim()` |
|---|---|---|
| `Layer1Preprocessor()` | the event's 128-dim vector | 128 |
| `Layer2Preprocessor()` | the graph of the event's 5-minute window, of this event alone: `features` are its node features, edges in `metadata` | 13 (node features) |
| `Layer3Preprocessor(window_size=10)` | the window of the event's entity ending in the event's minute bucket, over the `window_size` buckets before it, built from the events given so far (the original's rolling buffer) | 11 (features per bucket) |

`features` of a layer-3 sample has shape (window_size, 11): the history, oldest first.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from training.collection.event_dicts import events_table
from training.collection.schema_union import concat_tables
from training.errors import ConfigError, SchemaError
from training.layers.base import Layer
from training.layers.samples import LayerType, PreprocessedSample


class LayerPreprocessor(ABC):
    """One layer's per-event preprocessing (the original abstract base).

    Args:
        layer: the layer this preprocessor makes samples for.
    """

    def __init__(self, layer: LayerType) -> None:
        self.layer = LayerType(layer)

    @abstractmethod
    def preprocess(self, event: Mapping[str, Any]) -> PreprocessedSample:
        """The sample of one event (a flat dict, or `CollectedEvent.to_dict()`)."""

    @abstractmethod
    def get_feature_dim(self) -> int:
        """The width of the last axis of a sample's `features`."""

    def preprocess_batch(self, events: list[Mapping[str, Any]]) -> list[PreprocessedSample]:
        """`preprocess` of each event, in order."""
        return [self.preprocess(event) for event in events]


class _OneEvent(LayerPreprocessor):
    """A layer whose sample of one event is built from that event alone."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer.layer_type)
        self._layer = layer

    def preprocess(self, event: Mapping[str, Any]) -> PreprocessedSample:
        samples = self._layer.samples(self._layer.featurize(events_table([event])))
        if not samples:
            raise SchemaError(f"the event cannot feed {self._layer.name}: it lacks a timestamp "
                              "or the two ends of a connection (source and destination)")
        return samples[0]


class Layer1Preprocessor(_OneEvent):
    """Layer 1 (sensory): one event, one 128-dim vector in [0, 1]."""

    def __init__(self) -> None:
        from training.layers.layer1 import Layer1

        super().__init__(Layer1())

    def get_feature_dim(self) -> int:
        from training.features.layer1 import DIM

        return DIM


class Layer2Preprocessor(_OneEvent):
    """Layer 2 (behavioral): the window graph of one event (two nodes, one edge)."""

    def __init__(self) -> None:
        from training.layers.layer2 import Layer2

        super().__init__(Layer2())

    def get_feature_dim(self) -> int:
        return len(self._layer.featurizer.node_features)


class Layer3Preprocessor(LayerPreprocessor):
    """Layer 3 (operational): per-entity bucket histories, from the events seen so far.

    Args:
        window_size: buckets of history before the event's own bucket (1..10000).
    """

    def __init__(self, window_size: int = 10) -> None:
        from training.features.layer3 import Layer3WindowBuilder
        from training.layers.layer3 import Layer3

        if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 1:
            raise ConfigError(f"window_size must be an integer >= 1, got {window_size!r}")
        super().__init__(LayerType.LAYER3_OPERATIONAL)
        self.window_size = window_size
        self._layer = Layer3(Layer3WindowBuilder(history=window_size))
        self._buffer: pa.Table | None = None

    def get_feature_dim(self) -> int:
        from training.features.layer3 import FEATURES

        return len(FEATURES)

    def preprocess(self, event: Mapping[str, Any]) -> PreprocessedSample:
        row = events_table([event])
        if row["timestamp"][0].as_py() is None:
            raise SchemaError("the event cannot feed layer3: it has no timestamp")
        event_id = row["event_id"][0].as_py()
        table = row if self._buffer is None else concat_tables([self._buffer, row])
        self._buffer = self._recent(table)
        for sample in self._layer.samples(self._layer.featurize(self._buffer)):
            if event_id in sample.metadata["event_ids"]:
                return sample
        raise SchemaError(f"the event cannot feed layer3: it has no "
                          f"{self._layer.featurizer.entity} (the entity its windows follow)")

    def _recent(self, table: pa.Table) -> pa.Table:
        """The events a window ending now can still use: those within `window_size` buckets
        (plus the current one) of the newest event; older ones leave the buffer."""
        # (every buffered event has a timestamp: `preprocess` refuses the others)
        times = pc.cast(table["timestamp"], pa.int64()).to_numpy(zero_copy_only=False)
        span = int((self.window_size + 1) * self._layer.featurizer.bucket_seconds * 1e6)
        return table.filter(pa.array(times >= times.max() - span))
