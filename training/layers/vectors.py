"""Layers whose unit is one event with one feature vector: everything but the featurizer and
the detector.

A featurizer here turns a canonical event table into (events, dims) float32 (`featurize`) and
has a `spec`. Featurizing gives a `LayerArrays` (features, labels, attack types, event ids,
times, entities); splits and split files are `DatasetSplit`s with the same columns, cut by the
dataset builder's strategies (group = by entity). Each unit maps to its one event.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from training.datasets.builder import DatasetBuilder
from training.datasets.split import DatasetSplit
from training.errors import SchemaError
from training.features.encoding import as_array, text_array
from training.features.vectors import LayerArrays
from training.layers.base import TIME, Layer
from training.layers.samples import PreprocessedSample
from training.trainer.batches import TensorBatches
from training.trainer.config import TrainingConfig


class EventVectorLayer(Layer):
    """One vector per event (see the module docstring); subclasses give the featurizer and
    the detector."""

    unit = "event"
    streams = True
    row_inputs = ("vector",)

    def featurize(self, events: pa.Table) -> LayerArrays:
        timestamps = events["timestamp"].cast(pa.timestamp("us")).to_numpy(zero_copy_only=False)
        entity = pc.coalesce(events["source_ip"], events["host"], events["user"], "")
        arrays = {
            "features": self.featurizer.featurize(events),
            "labels": events["is_threat"].to_numpy(zero_copy_only=False).astype(np.int8),
            "attack_type": _repeated_texts(events["attack_type"]),
            "sample_ids": _texts(events["event_id"]),
            "timestamps": timestamps.astype("datetime64[us]"),
            "entity": _repeated_texts(entity.cast(pa.string())),
        }
        return LayerArrays(self._saved_name, self.featurizer.spec, arrays)

    @property
    def _saved_name(self) -> str:
        """The layer name files record (the original LayerType value where there is one)."""
        return self.layer_type.value if self.layer_type else self.name

    def load_units(self, path: Any) -> DatasetSplit:
        return DatasetSplit.load(path)

    # -- units -----------------------------------------------------------------------------

    def labels(self, units: Any) -> np.ndarray:
        return np.asarray(units.labels).astype(np.int64)

    def split(self, units: Any, strategy: str, ratios: tuple[float, float, float],
              seed: int, **options: Any) -> dict[str, DatasetSplit]:
        builder = DatasetBuilder(units.features, units.labels, units.sample_ids,
                                 random_seed=seed, columns=units.columns, spec=units.spec,
                                 layer=self._saved_name)
        return builder.create_splits(strategy, *ratios, **options)

    def save_splits(self, splits: dict[str, Any], folder: Path) -> dict[str, Path]:
        # As the dataset builder saves them: one set id in every file, so a set left mixed
        # by a crash between two renames is refused when loaded.
        return DatasetBuilder.write_splits(splits, Path(folder), prefix=self.name)

    def unit_features(self, units: Any) -> np.ndarray:
        return np.asarray(units.features)

    def relabeled(self, units: Any, labels: np.ndarray) -> DatasetSplit:
        return DatasetSplit(getattr(units, "name", "all"), units.features, labels,
                            units.sample_ids, getattr(units, "indices", np.arange(len(labels))),
                            units.columns, units.spec, self._saved_name)

    def attack_types(self, units: Any) -> np.ndarray | None:
        return units.columns.get("attack_type")

    def unit_columns(self, units: Any) -> dict[str, pa.Array]:
        ids = text_array(np.asarray(units.sample_ids).astype(str))
        times = units.columns.get("timestamps")
        if times is not None:  # an event without a time (Zeek's loaded_scripts.log) has none
            times = np.asarray(times, "datetime64[us]")
            time = pa.array(times.astype(np.int64), mask=np.isnat(times)).cast(TIME)
        else:
            time = pa.nulls(len(ids), TIME)
        one_each = pa.array(np.arange(len(ids) + 1, dtype=np.int32))
        return {"unit": ids, "time": time, "event_ids": pa.ListArray.from_arrays(one_each, ids)}

    def samples(self, units: Any) -> list[PreprocessedSample]:
        columns = units.columns
        ids, labels, features = units.sample_ids, units.labels, units.features
        attack = columns.get("attack_type", np.full(len(ids), ""))
        times = columns.get("timestamps", np.full(len(ids), np.datetime64("NaT", "us")))
        entity = columns.get("entity", np.full(len(ids), ""))
        return [PreprocessedSample(str(ids[i]), self.layer_type or self.name, features[i],
                                   int(labels[i]), {"attack_type": str(attack[i]) or None,
                                                    "timestamp": times[i],
                                                    "entity": str(entity[i])})
                for i in range(len(ids))]

    def event_sample(self, record: Any) -> PreprocessedSample | None:
        features = self.record_features(record)
        if features is None:
            return None
        values = record.values
        micros = values["timestamp"]
        entity = next((values[k] for k in ("source_ip", "host", "user")
                       if values[k] is not None), "")
        # Texts as `samples` has them: through numpy's str dtype, which drops trailing NULs.
        attack = (values["attack_type"] or "").rstrip("\0")
        return PreprocessedSample(values["event_id"].rstrip("\0"), self.layer_type or self.name,
                                  features[0], int(values["is_threat"]),
                                  {"attack_type": attack or None,
                                   "timestamp": np.datetime64("NaT", "us") if micros is None
                                   else np.datetime64(micros, "us"),
                                   "entity": entity.rstrip("\0")})

    def record_features(self, record: Any) -> np.ndarray | None:
        """(1, dims) features of one canonical record without Arrow, or None where the
        featurizer has no such form (see `event_sample`)."""
        return None

    def from_samples(self, samples: list[PreprocessedSample]) -> LayerArrays:
        meta = [s.metadata or {} for s in samples]
        arrays = {
            "features": np.stack([s.features for s in samples]).astype(np.float32),
            "labels": np.array([-1 if s.label is None else s.label for s in samples], np.int8),
            "attack_type": np.array([m.get("attack_type") or "" for m in meta], dtype=str),
            "sample_ids": np.array([s.sample_id for s in samples], dtype=str),
            "timestamps": np.array([m.get("timestamp") for m in meta], dtype="datetime64[us]"),
            "entity": np.array([m.get("entity") or "" for m in meta], dtype=str),
        }
        return LayerArrays(self._saved_name, self.featurizer.spec, arrays)

    # -- models ----------------------------------------------------------------------------

    def row_width(self, units: Any, inputs: str) -> int:
        return int(np.shape(units.features)[-1])

    def batches(self, units: Any, batch_size: int, *, fit_only: bool = False,
                shuffle: bool = False, **sharding: Any) -> TensorBatches:
        features = _checked(units.features)
        if fit_only:
            features = features[self.fit_rows(self.labels(units))]
        return TensorBatches(torch.from_numpy(features), batch_size=batch_size, shuffle=shuffle,
                             **sharding)

    def train_with(self, train_fn: Any, train: Any, val: Any, config: TrainingConfig
                   ) -> tuple[Any, dict[str, Any]]:
        # The original train functions take arrays of the rows to learn from:
        # train_layer1_vae(x, y, val_x, val_y, ...); rows marked threats are left out.
        keep = np.asarray(train.labels) == 0
        return train_fn(train.features[keep], train.labels[keep], val.features, val.labels,
                        config=config, feature_spec=train.spec)


def _checked(features: Any) -> np.ndarray:
    features = np.ascontiguousarray(features, dtype=np.float32)
    if features.ndim != 2 or not len(features):
        raise SchemaError(f"event features must be (rows, dims) with rows, got {features.shape}")
    # A finite sum means every value is finite (NaN and inf propagate): one pass without a
    # (rows, dims) mask. Only a non-finite sum (or an overflow of finite values) looks further.
    with np.errstate(over="ignore", invalid="ignore"):  # the overflow is the answer, no warning
        total = features.sum()
    if np.isfinite(total):
        return features
    bad = np.flatnonzero(~np.isfinite(features).all(axis=1))
    if len(bad):
        raise SchemaError(f"the features have NaN or infinite values in {len(bad)} rows (first: "
                          f"row {bad[0]}); clean or re-featurize the data")
    return features


def _texts(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(as_array(column), "").to_numpy(zero_copy_only=False), dtype=str)


def _repeated_texts(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """`_texts` for a column of few distinct values (attack types, entities): each distinct
    value is converted once, then gathered, ~4x faster than converting every row (the same
    array: the widest value, hence the dtype, is among the distinct ones)."""
    encoded = pc.fill_null(as_array(column), "").dictionary_encode()
    return _texts(encoded.dictionary)[encoded.indices.to_numpy()]
