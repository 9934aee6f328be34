"""Per-event feature vectors with their columns: what a vector layer's featurizer gives.

One .npz without pickle holds `features` (events, dims) float32, `labels` (is_threat: -1
unknown, 0 benign, 1 threat), `attack_type`, `sample_ids` (the event ids), `timestamps`
(datetime64[us]), `entity` (the host each event belongs to, for group splits), `layer` (the
name the file was made for) and `feature_spec` (JSON). `DatasetSplit.load` reads the same file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.artifacts.npz import read_arrays, write_arrays
from training.errors import SchemaError
from training.features.encoding import SPEC_FIELD, FeatureSpec

MAIN = ("features", "labels", "sample_ids")


@dataclass
class LayerArrays:
    """A layer's vectors for many events, row-aligned, with the spec that made them.

    Attributes:
        layer: the layer name saved with the file (the original `LayerType` value).
        spec: the FeatureSpec of the features.
        arrays: features, labels, sample_ids and the other per-event columns.
    """

    layer: str
    spec: FeatureSpec
    arrays: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.arrays["labels"])

    @property
    def features(self) -> np.ndarray:
        return self.arrays["features"]

    @property
    def labels(self) -> np.ndarray:
        return self.arrays["labels"]

    @property
    def sample_ids(self) -> np.ndarray:
        return self.arrays["sample_ids"]

    @property
    def columns(self) -> dict[str, np.ndarray]:
        """The per-event columns beside features, labels and ids (timestamps, entity, ...)."""
        return {k: v for k, v in self.arrays.items() if k not in MAIN}

    def save(self, path: str | Path) -> Path:
        """Write the arrays and the spec to `path` (.npz, no pickle), atomically."""
        return write_arrays(path, {**self.arrays, "layer": np.array(str(self.layer)),
                                   SPEC_FIELD: self.spec.to_npz()})

    @classmethod
    def load(cls, path: str | Path) -> LayerArrays:
        """Read a file written by `save`; no code in it is ever run (allow_pickle=False)."""
        path = Path(path)
        arrays = read_arrays(path)
        spec = FeatureSpec.from_npz(arrays, str(path))
        missing = [k for k in (*MAIN, "layer") if k not in arrays]
        if missing:
            raise SchemaError(f"{path}: no {', '.join(missing)} entry; it is not a "
                              "preprocessed-samples file")
        layer = str(arrays.pop("layer"))
        arrays.pop(SPEC_FIELD)
        return cls(layer, spec, arrays)
