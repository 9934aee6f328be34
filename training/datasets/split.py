"""One split of a dataset (train, val or test) and its file.

A split file is the preprocessed-samples format of `training.features.preprocessor.LayerArrays`
(.npz, no pickle) plus `indices`, the rows of the dataset the split was cut from:

| key | meaning |
|---|---|
| features | (rows, ...) float32 |
| labels | (rows,) is_threat: 1 threat, 0 benign, -1 unknown |
| sample_ids | (rows,) text |
| indices | (rows,) int64, row numbers in the dataset before splitting |
| attack_type, timestamps, entity, ... | every other per-row column the dataset had |
| feature_spec | the FeatureSpec JSON, when the dataset had one |
| layer | e.g. "layer1_sensory", when known |

So `np.load(path)["features"]` and `["labels"]` work as in the original README, and a
preprocessed file loads as a split too (its `indices` are then 0..n-1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from training.artifacts.npz import read_arrays, write_arrays
from training.errors import ConfigError, SchemaError
from training.features.encoding import SPEC_FIELD, FeatureSpec

RESERVED = ("features", "labels", "sample_ids", "indices", SPEC_FIELD, "layer", "split_set")


def as_column(values: object) -> np.ndarray:
    """A per-row column as an array that saves without pickle (objects become text)."""
    array = np.asarray(values)
    return array.astype(str) if array.dtype == object else array


def as_labels(labels: object, n: int) -> np.ndarray:
    """Labels as an integer array of n values (whole floats and booleans are converted)."""
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ConfigError(f"labels must have one value per row ({n}), got shape {labels.shape}")
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise SchemaError("labels must be whole numbers (-1 unknown, 0 benign, 1 threat)")
        labels = labels.astype(np.int64)
    elif labels.dtype.kind == "b":
        labels = labels.astype(np.int8)
    elif labels.dtype.kind not in "iu":
        raise SchemaError(f"labels must be integers (-1 unknown, 0 benign, 1 threat), got "
                          f"dtype {labels.dtype}")
    return labels


@dataclass
class DatasetSplit:
    """Rows of a dataset chosen for one purpose, with every column they had.

    Attributes:
        name: "train", "val", "test" (or e.g. "fold2_val").
        features: (rows, ...) model inputs.
        labels: (rows,) integers; -1 unknown, 0 benign, 1 threat for is_threat labels.
        sample_ids: (rows,) identifiers.
        indices: (rows,) int64 row numbers in the dataset the split came from.
        columns: other per-row arrays (attack_type, timestamps, entity, ...).
        spec: the FeatureSpec of the features, when known.
        layer: the layer name (e.g. "layer1_sensory"), when known.
        split_set: the id `save_splits` gave every file of one cut, when saved by it.
    """

    name: str
    features: np.ndarray
    labels: np.ndarray
    sample_ids: np.ndarray
    indices: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    spec: FeatureSpec | None = None
    layer: str | None = None
    split_set: str | None = None

    def __post_init__(self) -> None:
        self.sample_ids = as_column(self.sample_ids)
        self.indices = np.asarray(self.indices, dtype=np.int64)
        self.columns = {k: as_column(v) for k, v in self.columns.items()}
        n = len(self.features)
        sized = {"labels": self.labels, "sample_ids": self.sample_ids, "indices": self.indices,
                 **self.columns}
        wrong = {k: np.shape(v)[:1] for k, v in sized.items() if np.shape(v)[:1] != (n,)}
        if wrong:
            raise SchemaError(f"split {self.name!r}: every column needs one value per row "
                              f"({n} rows), but {wrong}")
        clash = sorted(set(self.columns) & set(RESERVED))
        if clash:
            raise SchemaError(f"split {self.name!r}: extra columns may not be named {clash}")

    def __len__(self) -> int:
        return len(self.features)

    def get_class_distribution(self) -> dict[int, int]:
        """Rows per label value, e.g. {-1: 3, 0: 90, 1: 7}."""
        values, counts = np.unique(self.labels, return_counts=True)
        return {int(v): int(c) for v, c in zip(values, counts)}

    def take(self, rows: np.ndarray, name: str | None = None) -> DatasetSplit:
        """The split restricted to `rows` (positions in this split), as a new split."""
        rows = np.asarray(rows, dtype=np.int64)
        return DatasetSplit(name or self.name, self.features[rows], self.labels[rows],
                            self.sample_ids[rows], self.indices[rows],
                            {k: v[rows] for k, v in self.columns.items()}, self.spec, self.layer)

    def save(self, path: str | Path) -> Path:
        """Write the split to `path` (.npz, no pickle), atomically; returns the path."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        extra: dict[str, np.ndarray] = {}
        if self.spec is not None:
            extra[SPEC_FIELD] = self.spec.to_npz()
        if self.layer is not None:
            extra["layer"] = np.array(self.layer)
        if self.split_set is not None:
            extra["split_set"] = np.array(self.split_set)
        return write_arrays(path, {"features": self.features, "labels": self.labels,
                                   "sample_ids": self.sample_ids, "indices": self.indices,
                                   **self.columns, **extra})

    @classmethod
    def load(cls, path: str | Path, name: str | None = None) -> DatasetSplit:
        """Read a split (or a preprocessed-samples file); nothing in it is ever executed.

        Args:
            path: the .npz file.
            name: the split's name; by default the end of the file name ("layer1_val.npz"
                gives "val").

        Raises:
            SourceError: the file is missing or not an .npz archive of plain arrays.
            SchemaError: it lacks features or labels, or the labels are not integers.
        """
        path = Path(path)
        arrays = read_arrays(path)
        missing = [k for k in ("features", "labels") if k not in arrays]
        if missing:
            raise SchemaError(_not_a_split(path, arrays, missing))
        spec = FeatureSpec.from_npz(arrays, str(path)) if SPEC_FIELD in arrays else None
        arrays.pop(SPEC_FIELD, None)
        layer = str(arrays.pop("layer")) if "layer" in arrays else None
        split_set = str(arrays.pop("split_set")) if "split_set" in arrays else None
        features = arrays.pop("features").astype(np.float32, copy=False)
        labels = arrays.pop("labels")
        if labels.dtype.kind not in "iu":
            raise SchemaError(f"{path}: labels must be integers (-1 unknown, 0 benign, "
                              f"1 threat), got dtype {labels.dtype}")
        n = len(features)
        sample_ids = arrays.pop("sample_ids", np.arange(n).astype(str))
        indices = arrays.pop("indices", np.arange(n, dtype=np.int64))
        if name is None:
            name = path.stem.rsplit("_", 1)[-1]
        try:
            return cls(name, features, labels, sample_ids, indices, arrays, spec, layer, split_set)
        except SchemaError as exc:
            raise SchemaError(f"{path}: {exc}") from None


def _not_a_split(path: Path, arrays: dict[str, np.ndarray], missing: list[str]) -> str:
    """Why `path` is no layer-1 split: the units of another layer (the pipeline's layer-2 and
    layer-3 splits and features, which other commands take), or no dataset file at all."""
    from training.layers.registry import get_layer  # the layers build on splits

    spec = FeatureSpec.from_npz(arrays, str(path)) if SPEC_FIELD in arrays else None
    if spec is None or get_layer(spec.layer).unit == "event":  # event vectors: a broken split
        return (f"{path}: no {' or '.join(missing)} array; it is not a dataset split (keys: "
                f"{sorted(arrays)})")
    return (f"{path} holds {spec.layer} features ({spec.version}), not layer-1 rows: it is a "
            f"{spec.layer} split or features file, as a pipeline writes to WORKDIR/splits/ and "
            f"features/; give it to a {spec.layer} model (maximus-train evaluate --model <a "
            f"{spec.layer} model> --data {path}), to maximus-train train {spec.layer}, or to "
            f"maximus-train validate")
