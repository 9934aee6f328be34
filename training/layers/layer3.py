"""Layer 3 (operational): per-entity minute buckets, each window scored by a TCN's forecast error.

Units are the windows of `Layer3Windows` (`training.features.layer3` documents them): T
buckets of an entity's history and the bucket after it, the target, whose events the window
maps to. `fit` learns the bucket-feature standardizer from the benign training targets
(`training.layers.layer3_batches`). Splits keep each entity's windows together for "group".
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa

from training.detectors.base import Detector
from training.features.encoding import FeatureSpec, as_array, text_array
from training.layers.base import TIME
from training.layers.featurizer_options import FEATURIZER_OPTIONS
from training.layers.registry import register_layer
from training.layers.samples import LayerType, PreprocessedSample
from training.layers.scaled import ScaledLayer
from training.trainer.config import TrainingConfig

@register_layer
class Layer3(ScaledLayer):
    """Entity windows of bucket aggregates, for the layer-3 TCN (see the module docstring)."""

    name = "layer3"
    layer_type = LayerType.LAYER3_OPERATIONAL
    aliases = (LayerType.LAYER3_OPERATIONAL.value, "operational", "3")
    unit = "window"
    feature_names_key = "features"
    model_name = "layer3_tcn"
    detector_name = "tcn"
    row_inputs = ("target", "window")
    features_file = "layer3_windows.npz"
    score_batch = 1024
    min_units = 20
    model_options = {
        "channels": {"type": int, "nargs": "+", "default": [16, 16, 16, 16],
                     "help": "output channels of each residual block"},
        "kernel_size": {"type": int, "default": 3, "help": "convolution width"},
        "dilations": {"type": int, "nargs": "+", "default": None,
                      "help": "dilation of each block (default 1, 2, 4, ...)"},
        "dropout": {"type": float, "default": 0.1, "help": "dropout inside the blocks"},
    }
    featurizer_options = FEATURIZER_OPTIONS["layer3"]

    @classmethod
    def featurizer_class(cls) -> type:
        from training.features.layer3 import Layer3WindowBuilder

        return Layer3WindowBuilder

    @classmethod
    def for_labels(cls, *, alert_labels: bool = False, **options: Any) -> Layer3:
        # With labels from alerts the alert events only label windows (layout l3.v2).
        return cls(cls.featurizer_class()(alert_labels=alert_labels, **options))

    def circular(self, alert_labels: bool) -> str | None:
        if getattr(self.featurizer, "alert_labels", False):
            return None  # l3.v2: the alerts are no input, they only label
        return super().circular(alert_labels)

    @classmethod
    def units_class(cls) -> type:
        from training.features.layer3_windows import Layer3Windows

        return Layer3Windows

    def fit_spec(self, train: Any) -> FeatureSpec:
        from training.layers.layer3_batches import fit_layer3_scaling

        return fit_layer3_scaling(train, benign_only=self.benign_only_)

    # -- units -----------------------------------------------------------------------------

    def labels(self, units: Any) -> np.ndarray:
        return np.asarray(units.labels).astype(np.int64)

    def split(self, units: Any, strategy: str, ratios: tuple[float, float, float],
              seed: int, **options: Any) -> dict[str, Any]:
        from training.datasets.window_splits import split_layer3

        return split_layer3(units, strategy, *ratios, seed=seed, **options)

    def unit_features(self, units: Any) -> np.ndarray:
        return units.target

    def relabeled(self, units: Any, labels: np.ndarray) -> Any:
        return replace(units, labels=np.asarray(labels, dtype=units.labels.dtype))

    def attack_types(self, units: Any) -> np.ndarray | None:
        return _texts(units.attack_type)

    @property
    def window_seconds(self) -> float:
        return float(self.featurizer.bucket_seconds)

    def carried_history(self) -> Any:
        from training.layers.layer3_history import BucketHistory

        return BucketHistory(self.featurizer.history, self.featurizer.bucket_seconds)

    def unit_columns(self, units: Any) -> dict[str, pa.Array]:
        entity = units.entity.cast(pa.string()).to_numpy(zero_copy_only=False).astype(str)
        when = units.time.astype("datetime64[us]")
        text = np.char.add(np.char.add(entity, "@"), when.astype(str))
        events = pa.ListArray.from_arrays(pa.array(units.event_ptr.astype(np.int32)),
                                          units.event_id.cast(pa.string()))
        return {"unit": text_array(text),
                "time": pa.array(when.astype(np.int64)).cast(TIME), "event_ids": events}

    def samples(self, units: Any) -> list[PreprocessedSample]:
        entity, attack = _texts(units.entity), _texts(units.attack_type)
        event_ids, ptr = _texts(units.event_id), units.event_ptr
        return [
            PreprocessedSample(
                f"{entity[i]}@{units.time[i]}", self.layer_type, units.X[i], int(units.labels[i]),
                {"entity": str(entity[i]), "time": units.time[i], "target": units.target[i],
                 "attack_type": str(attack[i]) or None,
                 "event_ids": event_ids[ptr[i]:ptr[i + 1]]})
            for i in range(len(units))
        ]

    # -- models ----------------------------------------------------------------------------

    def term_names(self, model: Detector, units: Any) -> list[str]:
        """The TCN's terms: each bucket aggregate's forecast error."""
        return list(self.featurizer.features)

    def explain(self, model: Detector, units: Any, rows: np.ndarray,
                events: pa.Table | None = None) -> list[list[Any]]:
        """As `Layer.explain`, each aggregate observed and forecast in its real unit (a count
        of distinct ports, bytes, seconds: `training.features.layer3_readout`)."""
        from training.features.layer3_readout import bucket_readout
        from training.layers.reasons import explain_terms

        # Only the windows of `rows` are run (each window's terms are its own).
        windows = np.unique(np.asarray(rows, np.int64))
        part = units.subset(windows)
        return explain_terms(model, self.batches(part, self.score_batch),
                             np.searchsorted(windows, rows), self.term_names(model, part),
                             bucket_readout(self.spec).texts)

    def default_detector(self, units: Any, **model_args: Any) -> Detector:
        from training.detectors.tcn import Layer3TCN

        return Layer3TCN(input_dim=int(units.target.shape[1]), **model_args)

    def row_width(self, units: Any, inputs: str) -> int:
        width = int(units.target.shape[1])
        return width if inputs == "target" else (int(units.X.shape[1]) + 1) * width

    def default_config(self, **changes: Any) -> TrainingConfig:
        base = TrainingConfig(model_name=self.model_name, layer_name=self.name, seed=42,
                              batch_size=128, num_epochs=50, learning_rate=3e-3)
        return base.replace(**changes)

    def search_space(self, trial: Any) -> dict[str, Any]:
        learning_rate = trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
        batch_size = trial.suggest_categorical("batch_size", [32, 64, 128, 256])
        width = trial.suggest_categorical("channels", [16, 32, 64])
        blocks = trial.suggest_int("num_blocks", 2, 5)  # dilations 1, 2, 4, ...
        return {"learning_rate": learning_rate, "batch_size": batch_size,
                "channels": [width] * blocks,
                "kernel_size": trial.suggest_categorical("kernel_size", [2, 3, 5]),
                "dropout": trial.suggest_float("dropout", 0.0, 0.5)}

    def batches(self, units: Any, batch_size: int, *, fit_only: bool = False,
                shuffle: bool = False, **sharding: Any) -> Any:
        from training.layers.layer3_batches import Layer3Data

        data = Layer3Data(units, self.spec, benign_only=self.benign_only_ is not False)
        return data.batches(batch_size, shuffle=shuffle, training=fit_only, **sharding)


def _texts(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(as_array(values).fill_null("").to_numpy(zero_copy_only=False), dtype=str)
