"""Turning events into model inputs for each layer (the original `DataPreprocessor` API).

Every entry point runs the same vectorized path: events (a canonical table, or event dicts
mapped onto one) -> the layer's `featurize` (`training.layers`) -> its units. `preprocess_batch`
wraps the units as `PreprocessedSample`s; `featurize` returns the units themselves, which is
what large datasets should use. `preprocess_event` is that path on a single event, except where
a layer has a per-event form of it (`Layer.event_sample`; layer 1: `canonical_record` and
`layer1_record`, pinned bit for bit to the batch path by `tests/test_event_fast_path.py`),
which skips the batch path's per-call setup (~5 ms an event; ~0.1 ms this way).

`featurize` returns, per layer:

| layer | result | unit of one sample |
|---|---|---|
| 1 sensory | `LayerArrays` (128-dim vectors, `training.features.vectors`) | an event |
| 2 behavioral | `Layer2Graphs` (window graphs, `training.features.layer2`) | a time window's graph |
| 3 operational | `Layer3Windows` (per-entity histories, `training.features.layer3`) | an entity's window |

Each has `save(path)`: one .npz without pickle, the FeatureSpec inside.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from training.artifacts.npz import read_arrays
from training.collection.canonical_record import canonical_record
from training.collection.event_dicts import EVENT_SOURCE, events_table
from training.errors import ConfigError, NotSupportedError, SchemaError
from training.features.encoding import SPEC_FIELD, FeatureSpec
from training.layers.base import Layer
from training.layers.registry import get_layer, layer_names
from training.layers.samples import LayerType, PreprocessedSample
from training.paths import preprocessed_dir

__all__ = ["DataPreprocessor", "LayerType", "PreprocessedSample"]


class DataPreprocessor:
    """Events in, model inputs out, for each layer.

    Args:
        output_dir: where `save_samples` writes (default training/data/preprocessed).
        layers: layers with non-default featurizers (e.g. `Layer2(Layer2GraphBuilder(
            window_seconds=60))`); every other layer uses its default.
    """

    def __init__(self, output_dir: str | Path | None = None, *,
                 layers: Sequence[Layer] = ()) -> None:
        self.output_dir = Path(output_dir) if output_dir is not None else preprocessed_dir()
        self._layers = {layer.name: layer for layer in layers}

    def layer(self, name: LayerType | str) -> Layer:
        """The layer `name` refers to (canonical name, alias or LayerType), as configured."""
        cls = get_layer(name)
        if cls.name not in self._layers:
            self._layers[cls.name] = cls()
        return self._layers[cls.name]

    def featurize(self, events: Iterable[Mapping] | pa.Table, layer: LayerType | str) -> Any:
        """The vectorized path every other method uses (see the module docstring)."""
        return self.layer(layer).featurize(events_table(events))

    def preprocess_batch(self, events: Iterable[Mapping] | pa.Table,
                         layer: LayerType | str = LayerType.LAYER1_SENSORY
                         ) -> list[PreprocessedSample]:
        """Samples for many events (see `featurize` for the arrays without the objects).

        One sample per unit: an event (layer 1), a window graph (layer 2: `features` are the
        node features; edges, entities and event ids in `metadata`), or an entity window
        (layer 3: `features` is the (T, F) history; the target bucket in `metadata`).
        """
        chosen = self.layer(layer)
        units = chosen.featurize(events_table(events))
        return FeaturizedSamples(chosen.samples(units), units)

    def preprocess_event(self, event: Mapping,
                         layers: str | LayerType | Sequence[LayerType] = "all",
                         ) -> PreprocessedSample | list[PreprocessedSample]:
        """One event's samples: one sample for one layer (a list of one, or the layer
        itself: `layers=LayerType.LAYER1_SENSORY`), a list for several.

        "all" means every layer the event can feed: layer 1 always; layer 2 when it has both
        ends of its graph's edge and a timestamp; layer 3 when it has the builder's entity (the
        source address by default) and a timestamp.

        Raises:
            SchemaError: an explicitly requested layer cannot be built from this event.
        """
        explicit = layers != "all"
        if explicit and isinstance(layers, str):  # one layer (a LayerType is a str): itself
            layers = [layers]
        chosen = [self.layer(x) for x in layers] if explicit else \
            [self.layer(name) for name in layer_names() if get_layer(name).layer_type]
        if not chosen:
            raise ConfigError("layers must name at least one LayerType or be 'all', got []")
        # A layer with a per-event path makes its sample from the canonical record; the rest
        # (and events the record cannot map exactly) featurize a one-row table.
        record = canonical_record(event, EVENT_SOURCE)
        table = None
        samples = []
        for layer in chosen:
            sample = layer.event_sample(record) if record is not None else None
            if sample is not None:
                samples.append(sample)
                continue
            table = events_table([event]) if table is None else table
            built = layer.samples(layer.featurize(table))
            if built:
                samples.append(built[0])
            elif explicit:
                raise SchemaError(f"the event cannot feed {layer.name}: it lacks a timestamp or "
                                  "the entities that layer is built on (see the build statistics "
                                  "of featurize for the reason)")
        return samples[0] if len(samples) == 1 else samples

    def save_samples(self, samples: Sequence[PreprocessedSample] | Any,
                     filename: str | Path) -> Path:
        """Write samples to `output_dir/<filename>.npz` (no pickle) and return the path.

        `samples`: what `featurize` returned, or a list of samples of one layer. Layer-1
        samples are packed back into vectors. A layer-2 or layer-3 sample (a window's graph,
        an entity's history) cannot be packed back into that layer's file: its list is saved
        as the units `preprocess_batch` made it from, when it is that unchanged list.

        Raises:
            NotSupportedError: layer-2 or layer-3 samples other than an unchanged
                `preprocess_batch` result (the message names the call that saves them).
        """
        name = str(filename)
        path = self.output_dir / (name if name.endswith(".npz") else f"{name}.npz")
        if isinstance(samples, list | tuple):  # a list of samples is packed by its layer
            if not samples:
                raise ConfigError("samples must hold at least one PreprocessedSample, got none")
            kinds = {sample.layer for sample in samples}
            if len(kinds) != 1:
                raise ConfigError(f"samples of one file must be of one layer, got "
                                  f"{sorted(str(getattr(k, 'value', k)) for k in kinds)}")
            layer = self.layer(kinds.pop())
            try:
                samples = layer.from_samples(list(samples))
            except NotSupportedError:
                units = samples.units_if_unchanged(layer) \
                    if isinstance(samples, FeaturizedSamples) else None
                if units is None:
                    raise NotSupportedError(
                        f"{layer.name} samples cannot be packed back one by one, and these are "
                        "not the unchanged list preprocess_batch returned: save the units "
                        f"whole: units = preprocessor.featurize(events, {_named(layer)}) "
                        "(DataPreprocessor.featurize), then preprocessor.save_samples(units, "
                        "filename)") from None
                samples = units
        return samples.save(path)

    def load_samples(self, path: str | Path) -> list[PreprocessedSample]:
        """The samples of a file written by `save_samples`, whichever layer made it."""
        spec = FeatureSpec.from_npz(read_arrays(path, only=[SPEC_FIELD]), str(path))
        layer = self.layer(spec.layer)
        return layer.samples(layer.load_units(path))


class FeaturizedSamples(list):
    """What `preprocess_batch` returns: a list of `PreprocessedSample`s that also holds the
    units they were made from (`units`), so that `save_samples` can save layer-2 and layer-3
    samples, which cannot be packed back, as those units. A slice or copy is a plain list."""

    def __init__(self, samples: list[PreprocessedSample], units: Any) -> None:
        super().__init__(samples)
        self.units = units

    def units_if_unchanged(self, layer: Layer) -> Any:
        """`units` while this list holds the samples they give, as they give them (ids,
        labels, features, metadata), else None: saving the units would lose the changes."""
        again = layer.samples(self.units)
        fields = ("sample_id", "label", "features", "metadata")
        if len(self) != len(again) or not all(
                _same(getattr(a, f), getattr(b, f)) for a, b in zip(self, again) for f in fields):
            return None
        return self.units


def _same(a: Any, b: Any) -> bool:
    """Equal values of a sample's fields: arrays bit for bit (NaN and NaT equal themselves),
    dicts key by key."""
    if isinstance(a, dict) or isinstance(b, dict):
        return (isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys()
                and all(_same(a[k], b[k]) for k in a))
    if isinstance(a, np.ndarray | np.generic) or isinstance(b, np.ndarray | np.generic):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype == object or b.dtype == object:
            return a.shape == b.shape and a.tolist() == b.tolist()
        return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()
    return bool(a == b)


def _named(layer: Layer) -> str:
    """How a caller names `layer` to `featurize`: its LayerType member, else its name."""
    member = layer.layer_type
    return f"LayerType.{member.name}" if member is not None else repr(layer.name)
