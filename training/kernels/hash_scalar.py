"""One value's `hash_array` hash in plain Python, for paths that hash one event at a time.

`hash_array` pays some 20 numpy calls per array whatever its length; an event's content id
(`training.collection.canonical_record`) hashes a few dozen single values, where that fixed cost
is all there is. This is the same algorithm (`training.kernels._hash_kernels`: fmix of the value
under its type's seed; text as fmix(seed ^ byte length) chained over zero-padded little-endian
8-byte words; lists as fmix(seed ^ length) chained over their elements' hashes) on Python ints,
for the types a JSON value takes. Text and lists longer than one block (`_BLOCK` words or
elements, hashed as a tree there) are left to `hash_array`. `tests/test_hash_scalar.py`
pins every case to `hash_array`.
"""

from __future__ import annotations

import struct

from training.kernels._hash_kernels import (
    _BLOCK, _D_BOOL, _D_FLOAT, _D_INT, _D_LIST, _D_NULL, _D_STRING, _D_TEMPORAL, _MASK, _fmix_int,
    _name_hash, _seed,
)

_MAX_TEXT_BYTES = _BLOCK * 8
_ABS = 0x7FFFFFFFFFFFFFFF
_INF_BITS = 0x7FF0000000000000
_CANONICAL_NAN = 0x7FF8000000000000
_DOUBLE = struct.Struct("<d")
_UINT64 = struct.Struct("<Q")


def hash_text(text: str, key: int) -> int | None:
    """`hash_array(pa.array([text]))`, or None for text over 512 UTF-8 bytes."""
    data = text.encode("utf-8")
    n = len(data)
    if n > _MAX_TEXT_BYTES:
        return None
    h = _fmix_int(_seed(key, _D_STRING) ^ n)
    padded = data + bytes(-n % 8)
    for at in range(0, n, 8):
        h = _fmix_int(h ^ int.from_bytes(padded[at:at + 8], "little"))
    return h


def hash_int(value: int, key: int) -> int:
    """`hash_array` of an int64 value."""
    return _fmix_int((value & _MASK) ^ _seed(key, _D_INT))


def hash_float(value: float, key: int) -> int:
    """`hash_array` of a float64 value (-0.0 as 0.0, every NaN as one)."""
    bits = _UINT64.unpack(_DOUBLE.pack(value))[0]
    magnitude = bits & _ABS
    if magnitude == 0:
        bits = 0
    elif magnitude > _INF_BITS:
        bits = _CANONICAL_NAN
    return _fmix_int(bits ^ _seed(key, _D_FLOAT))


def hash_bool(value: bool, key: int) -> int:
    return _fmix_int(int(value) ^ _seed(key, _D_BOOL))


def hash_timestamp_us(micros: int, key: int) -> int:
    """`hash_array` of a timestamp[us] value (any timezone) given in epoch microseconds."""
    seed = _fmix_int(_seed(key, _D_TEMPORAL) ^ _name_hash("timestamp[us]", key))
    return _fmix_int((micros & _MASK) ^ seed)


def hash_null(key: int) -> int:
    """`hash_array` of a null (of any type)."""
    return _seed(key, _D_NULL)


def hash_list(element_hashes: list[int], key: int) -> int | None:
    """`hash_array` of a list value from its elements' hashes (in the list's element type),
    or None for a list over `_BLOCK` elements (hashed as a tree there)."""
    n = len(element_hashes)
    if n > _BLOCK:
        return None
    h = _fmix_int(_seed(key, _D_LIST) ^ n)
    for element in element_hashes:
        h = _fmix_int(h ^ element)
    return h
