"""Turning events into model inputs for each layer (the original `DataPreprocessor` API).

Every entry point runs the same vectorized path: events (a canonical table, or event dicts
mapped onto one) -> the layer's featurizer -> arrays. `preprocess_event` is that path on a
single event; `preprocess_batch` wraps the arrays as `PreprocessedSample`s; `featurize` returns
the arrays themselves, which is what large datasets should use.

Saved files (`save_samples`) are .npz without pickle: `features`, `labels` (is_threat: -1
unknown, 0 benign, 1 threat), `attack_type`, `sample_ids`, `timestamps` (datetime64[us]),
`entity` (the host the sample belongs to, for group splits) and `feature_spec` (JSON).
"""

from __future__ import annotations

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
from training.fileio import atomic_write
from training.paths import preprocessed_dir


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
        except (OSError, ValueError, KeyError) as exc:
            raise SchemaError(f"{path}: not a readable preprocessed-samples file ({exc})") from exc
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
    """

    def __init__(self, output_dir: str | Path | None = None,
                 layer1: Layer1Featurizer | None = None) -> None:
        self.output_dir = Path(output_dir) if output_dir is not None else preprocessed_dir()
        self.layer1 = layer1 or Layer1Featurizer()

    def featurize(self, events: Iterable[Mapping] | pa.Table, layer: LayerType | str) -> LayerArrays:
        """The vectorized path every other method uses."""
        layer = _layer(layer)
        table = events_table(events)
        if layer is LayerType.LAYER1_SENSORY:
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
        raise NotSupportedError(f"{layer.value} features are not available yet")

    def preprocess_batch(self, events: Iterable[Mapping] | pa.Table,
                         layer: LayerType | str = LayerType.LAYER1_SENSORY) -> list[PreprocessedSample]:
        """Samples for many events (see `featurize` for the arrays without the objects)."""
        return self.featurize(events, layer).samples()

    def preprocess_event(self, event: Mapping, layers: str | Sequence[LayerType] = "all"
                         ) -> PreprocessedSample | list[PreprocessedSample]:
        """One event's samples: one sample for one layer, a list for several ("all" means
        every layer a single event can feed: layer 1)."""
        chosen = [LayerType.LAYER1_SENSORY] if layers == "all" else [_layer(x) for x in layers]
        if not chosen:
            raise ConfigError("layers must name at least one LayerType or be 'all', got []")
        samples = [self.preprocess_batch([event], layer)[0] for layer in chosen]
        return samples[0] if len(samples) == 1 else samples

    def save_samples(self, samples: Sequence[PreprocessedSample] | LayerArrays, filename: str) -> Path:
        """Write samples to `output_dir/<filename>.npz` (no pickle) and return the path."""
        path = self.output_dir / (filename if filename.endswith(".npz") else f"{filename}.npz")
        arrays = samples if isinstance(samples, LayerArrays) else self._from_samples(samples)
        return arrays.save(path)

    def load_samples(self, path: str | Path) -> list[PreprocessedSample]:
        return LayerArrays.load(path).samples()

    def _from_samples(self, samples: Sequence[PreprocessedSample]) -> LayerArrays:
        if not samples:
            raise ConfigError("samples must hold at least one PreprocessedSample, got none")
        layers = {s.layer for s in samples}
        if layers != {LayerType.LAYER1_SENSORY}:
            raise NotSupportedError(f"saving {sorted(x.value for x in layers)} samples one by "
                                    "one is not available; use featurize(...).save(...)")
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
