"""Event ids and times of one event record in plain Python, as the batch path computes them
for a one-row table (`training.collection.canonical_record`'s helpers).

An event without an id of its own gets the batch path's content id: `hash_rows` of its
record's one-row table with nulls left out (`canonical._content_ids`). Here each value is
hashed on its own (`training.kernels.hash_scalar`, pinned to `hash_array`) and the row hash is
put together from them (`hashing.hash_one_row`), which is the same number without building the
table. Values of the types a JSON value takes; lists of objects and long text go through
`hash_array` itself.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from training.collection.canonical import _CONTENT_KEY
from training.kernels.hash_scalar import (
    hash_bool, hash_float, hash_int, hash_list, hash_null, hash_text, hash_timestamp_us,
)
from training.kernels.hashing import hash_array, hash_one_row
from training.sources.jsonparse import _column

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def epoch_micros(moment: datetime) -> int:
    """Epoch microseconds of a datetime (naive: UTC), as Arrow stores it."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_SCALAR_HASH = {"int": hash_int, "float": hash_float, "bool": hash_bool}


def _value_hash(kind: str, value: object) -> int:
    """`hash_array` of the one-value column the batch path reads `value` into."""
    if kind in _SCALAR_HASH:
        return _SCALAR_HASH[kind](value, _CONTENT_KEY)
    if kind == "time":
        return hash_timestamp_us(epoch_micros(value), _CONTENT_KEY)
    if kind == "text":
        hashed = _TEXT_HASHES.get(value)
        if hashed is None:
            hashed = hash_text(value, _CONTENT_KEY)
            if hashed is None:  # longer than one block
                hashed = int(hash_array(pa.array([value], pa.string()), _CONTENT_KEY)[0])
            if len(_TEXT_HASHES) >= 1 << 16:
                _TEXT_HASHES.clear()
            _TEXT_HASHES[value] = hashed
        return hashed
    # A list of one scalar type (`canonical_record._kind` refused mixed ones)
    if all(v is None or type(v) in _ELEMENT_KIND for v in value):
        hashed = hash_list([hash_null(_CONTENT_KEY) if v is None else
                            _value_hash(_ELEMENT_KIND[type(v)], v) for v in value], _CONTENT_KEY)
        if hashed is not None:
            return hashed
    return int(hash_array(_column([value]), _CONTENT_KEY)[0])  # objects: Arrow's own type


_ELEMENT_KIND = {str: "text", int: "int", float: "float", bool: "bool"}
_TEXT_HASHES: dict[str, int] = {}  # addresses, protocols, services recur event after event


def content_id(read: dict[str, object], kinds: list[str]) -> str:
    """The batch path's id of an event without one: `hash_rows` of its one-row table with
    nulls left out, from each value's hash.

    Args:
        read: the record's flat fields as read (before `raw_data.` prefixes are dropped).
        kinds: each field's kind (`canonical_record._kind`), in the same order.
    """
    names, hashes = [], []
    for (name, value), kind in zip(read.items(), kinds):
        if kind != "null":
            names.append(name)
            hashes.append(_value_hash(kind, value))
    return f"{hash_one_row(names, np.array(hashes, dtype=np.uint64), _CONTENT_KEY):016x}"
