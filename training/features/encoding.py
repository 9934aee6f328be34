"""Pieces shared by the featurizers: stable hashed buckets, fixed scalers, and the FeatureSpec.

Everything here is deterministic across processes and machines: categories are hashed with
`training.kernels.hashing` under a fixed key (never Python's salted `hash()`), and scalers use fixed
caps, so one event gives the same vector wherever it is featurized.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.collection.schema import CANONICAL_SCHEMA
from training.errors import ConfigError, SchemaError
from training.kernels.hashing import hash_array

FEATURE_KEY = 0x6D61_7869_6D75_7346  # fixed forever: stored models depend on the buckets
T = TypeVar("T")
SPEC_FIELD = "feature_spec"  # name of the FeatureSpec entry in saved .npz files


def as_array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous Arrow array (chunks combined)."""
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column


def text_array(values: np.ndarray | Sequence[str]) -> pa.Array:
    """Text (a numpy str array: ids, unit names) as one Arrow string array. pyarrow converts a
    fixed-width numpy array of more than 16 MiB into chunks, which `ListArray.from_arrays` and
    `index_in` refuse: 730,000 event ids of 23 characters failed a pipeline so."""
    return as_array(pa.array(values, pa.string()))


def column(table: pa.Table, name: str, type_: pa.DataType | None = None) -> pa.Array:
    """A column as one array, or nulls (of `type_`, by default its canonical type) when the
    table lacks it: featurizers accept partial tables."""
    index = table.schema.get_field_index(name)
    if index >= 0:
        return as_array(table.column(index))
    return pa.nulls(table.num_rows, type_ or CANONICAL_SCHEMA.field(name).type)


_BUCKETS: dict[tuple[str, int, object], int] = {}  # memo of bucket(value); a pure function
_MAX_MEMO = 1 << 18
_MEMO_DISTINCT = 4096


def buckets(column: pa.Array | pa.ChunkedArray, n_buckets: int, salt: str = "") -> np.ndarray:
    """Hashed bucket 0..n_buckets-1 of every value (-1 for null), hashing distinct values once.

    `salt` separates fields, so the same text in two fields lands in unrelated buckets. Buckets
    of recently seen values are remembered, which is what keeps one-event calls cheap.
    """
    encoded = pc.dictionary_encode(as_array(column))
    distinct = encoded.dictionary
    codes = encoded.indices.fill_null(len(distinct)).to_numpy(zero_copy_only=False)
    if len(distinct) > _MEMO_DISTINCT:  # many values: hash them all at once, no memo
        hashed = _hash_buckets(distinct, n_buckets, salt).astype(np.int64)
        return np.append(hashed, -1)[codes]
    keys = [(salt, n_buckets, v) for v in distinct.to_pylist()]
    new = [i for i, k in enumerate(keys) if k not in _BUCKETS]
    if new:
        hashed = _hash_buckets(distinct.take(pa.array(new, pa.int64())), n_buckets, salt)
        if len(_BUCKETS) + len(new) > _MAX_MEMO:
            _BUCKETS.clear()
        _BUCKETS.update({keys[i]: int(h) for i, h in zip(new, hashed)})
    return np.array([_BUCKETS[k] for k in keys] + [-1], dtype=np.int64)[codes]


def bucket_of(value: object, n_buckets: int, salt: str = "",
              type_: pa.DataType = pa.string()) -> int:
    """`buckets` of one value (not None) of Arrow type `type_`, from the same memo."""
    hit = _BUCKETS.get((salt, n_buckets, value))
    if hit is None:
        hit = int(buckets(pa.array([value], type_), n_buckets, salt)[0])
    return hit


def _hash_buckets(values: pa.Array, n_buckets: int, salt: str) -> np.ndarray:
    if salt:
        values = pc.binary_join_element_wise(salt, values.cast(pa.string()), "=")
    return hash_array(values, key=FEATURE_KEY) % np.uint64(n_buckets)


def category_codes(column: pa.Array | pa.ChunkedArray, vocabulary: dict[str, int]) -> np.ndarray:
    """Index of each value in `vocabulary` (-1 when absent or null), looking up distinct values once."""
    encoded = pc.dictionary_encode(as_array(column))
    known = np.array([vocabulary.get(v, -1) for v in encoded.dictionary.to_pylist()] + [-1],
                     dtype=np.int64)
    codes = encoded.indices.fill_null(len(known) - 1).to_numpy(zero_copy_only=False)
    return known[codes]


def log_scale(values: np.ndarray, cap: float) -> np.ndarray:
    """log1p(x) / log1p(cap), clipped to [0, 1]; missing (NaN) and negative values give 0."""
    with np.errstate(invalid="ignore"):
        scaled = np.log1p(np.clip(np.nan_to_num(values, nan=0.0), 0.0, None)) / np.log1p(cap)
    return np.clip(scaled, 0.0, 1.0)


def numbers(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """float64 values, NaN where missing (integers beyond 2**53 rounded, not refused)."""
    return (as_array(column).cast(pa.float64(), safe=False).fill_null(np.nan)
            .to_numpy(zero_copy_only=False))


def cyclic(fraction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A position on a cycle (0..1) as sine and cosine moved into [0, 1]."""
    angle = 2.0 * np.pi * fraction
    return (np.sin(angle) + 1.0) / 2.0, (np.cos(angle) + 1.0) / 2.0


def _canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class FeatureSpec:
    """Everything needed to reproduce a feature transform: travels with datasets and models.

    Attributes:
        layer: "layer1", "layer2" or "layer3".
        version: layout version; a change of layout is a new version.
        config: the transform's settings (JSON-able).
        fitted: state learned from the training split (JSON-able), None when data-free.
    """

    layer: str
    version: str
    config: dict = field(default_factory=dict)
    fitted: dict | None = None

    @property
    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of layer, version, config and fitted state."""
        recipe = {"layer": self.layer, "version": self.version, "config": self.config,
                  "fitted": self.fitted}
        return hashlib.sha256(_canonical_json(recipe).encode()).hexdigest()

    def to_json(self) -> str:
        return _canonical_json({"layer": self.layer, "version": self.version,
                                "config": self.config, "fitted": self.fitted,
                                "fingerprint": self.fingerprint})

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        """Parse a spec, refusing one whose content does not match its fingerprint."""
        try:
            data = json.loads(text)
            spec = cls(data["layer"], data["version"], data["config"], data["fitted"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SchemaError(f"not a FeatureSpec: {exc}") from exc
        if data.get("fingerprint") != spec.fingerprint:
            raise SchemaError(f"FeatureSpec for {spec.layer} {spec.version} was altered: its "
                              f"fingerprint {data.get('fingerprint')} does not match its content")
        return spec

    def to_npz(self) -> np.ndarray:
        """The spec as a 0-d text array, storable in an .npz without pickle."""
        return np.array(self.to_json())

    @classmethod
    def from_npz(cls, data: object, source: str) -> FeatureSpec:
        """The spec stored in a loaded .npz (`np.load` result); `source` names it in errors."""
        if SPEC_FIELD not in data:
            raise SchemaError(f"{source}: no {SPEC_FIELD!r} entry; it was not written by "
                              "this package's featurizers")
        return cls.from_json(str(data[SPEC_FIELD]))

    def require_kind(self, layer: str, version: str, what: str) -> None:
        """Raise unless this spec is for `layer` at layout `version` (`what` reads it)."""
        if (self.layer, self.version) != (layer, version):
            raise SchemaError(f"a {self.layer} {self.version} spec cannot drive {what} "
                              f"({layer} {version})")

    def rebuild(self, layer: str, version: str, what: str, make: Callable[[dict], T]) -> T:
        """`make(config)` for a spec of `layer` at `version`, checked to reproduce this spec
        exactly (a featurizer's `from_spec`).

        Raises:
            SchemaError: another layer or version, a config `make` cannot use, or a
                featurizer whose spec differs (other code or settings than the spec's).
        """
        self.require_kind(layer, version, what)
        try:
            featurizer = make(self.config)
        except (KeyError, TypeError, ConfigError) as exc:
            raise SchemaError(f"the {layer} spec has an invalid config: {exc}") from exc
        featurizer.spec.require(self, "the spec given")
        return featurizer

    def require(self, other: FeatureSpec, what: str) -> None:
        """Raise unless `other` is the same transform (same fingerprint)."""
        if other.fingerprint != self.fingerprint:
            raise SchemaError(
                f"{what} was made with another feature transform ({other.layer} "
                f"{other.version}, fingerprint {other.fingerprint[:12]}) than this one "
                f"({self.layer} {self.version}, {self.fingerprint[:12]}); featurize the data "
                "again with the model's FeatureSpec"
            )
