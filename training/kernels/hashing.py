"""Stable, keyed, vectorized 64-bit hashing of Arrow data.

Used to deduplicate event ids and, later, to bucket hashed features, so a hash must be the same
in every process and on every platform. Python's builtin ``hash()`` is salted per process and
is never used; per-row Python (hashlib per row, ~1.5 µs/row) is too slow. Everything below is
numpy arithmetic on whole columns.

The algorithm is part of the data format: stored dedup state and feature encodings depend on
it, and ``tests/test_hashing.py`` pins it with known answers. Changing any constant or step
changes every hash.

This module holds the public API and the dispatch on Arrow type. In short: every value is mixed
with the murmur3 finalizer ``fmix`` under a keyed seed per type family; byte strings and lists
chain 8-byte words or element hashes; struct and table rows sum name-keyed field hashes. The
full description (fmix, seeds, chaining, struct rows) and how it is made fast are in
`training.kernels._hash_kernels`, with the kernels. Here:

* Fixed-width values hash as ``fmix(seed ^ value)``: integers by value, whatever their width
  (uint64 values >= 2**63 use their own seed, so they never alias negative ints); floats widened
  to float64 with -0.0 -> 0.0 and every NaN -> one NaN; bools as 0/1; timestamp, date, time and
  duration by their integer value, seeded by type and unit (a timezone does not change it).
* Null is one keyed constant for every type; dictionaries hash by decoded value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.types as pat

from training.errors import ConfigError, SchemaError
from training.kernels._hash_kernels import (
    _D_BINARY, _D_BOOL, _D_FLOAT, _D_INT, _D_LIST, _D_NULL, _D_STRING, _D_STRUCT, _D_TEMPORAL,
    _D_UINT_HIGH,
    _MASK, _combine_fields, _fmix, _fmix_int, _hash_bytes, _hash_ranges, _hash_segments, _name_hash,
    _seed,
)

DEFAULT_KEY: int = 0x6D6178696D757321  # b"maximus!" as a big-endian integer; fixed forever.

_HEX_PAIRS = np.frombuffer("".join(f"{i:02x}" for i in range(256)).encode(), dtype="<u2")
_CANONICAL_NAN = np.uint64(0x7FF8000000000000)

_LEAF_TYPES = (
    pat.is_null, pat.is_string, pat.is_large_string, pat.is_binary, pat.is_large_binary,
    pat.is_boolean, pat.is_integer, pat.is_floating, pat.is_timestamp, pat.is_date,
    pat.is_time, pat.is_duration,
)


def hash_array(array: pa.Array | pa.ChunkedArray, key: int = DEFAULT_KEY) -> np.ndarray:
    """Hash every element of an Arrow array.

    Args:
        array: Strings and binaries (normal and large), ints, floats, bools, timestamp, date,
            time, duration, null, dictionary (hashed by decoded value), list and large_list
            (order-sensitive), struct (fields keyed by name, order-free); nested freely.
        key: 64-bit key; a different key gives unrelated hashes.

    Returns:
        uint64 array, one per element. Equal values give equal hashes in every process and on
        every platform, whether the array is sliced, chunked or dictionary-encoded; string and
        large_string hash alike, as do binary and large_binary, but text never hashes like the
        same bytes as binary. Null hashes to one fixed value per key, for every type, different
        from the hashes of "" and 0.

    Shapes:
        array: (n,) -> (n,)

    Raises:
        ConfigError: the type (or a nested type) is unsupported, or the key is out of range.
    """
    key = _check_key(key)
    if isinstance(array, pa.ChunkedArray):
        _check_type(array.type)
        chunks = array.chunks or [pa.chunked_array([], type=array.type).combine_chunks()]
        return np.concatenate([_hash(chunk, key) for chunk in chunks])
    if isinstance(array, pa.Array):
        _check_type(array.type)
        return _hash(array, key)
    raise ConfigError(f"array must be a pyarrow Array or ChunkedArray, got {type(array).__name__}")


def hash_rows(
    table: pa.Table, key: int = DEFAULT_KEY, columns: Sequence[str] | None = None,
    nulls_as_absent: bool = False,
) -> np.ndarray:
    """Hash every row of a table over some columns, independent of their order.

    Each column hash is keyed by the column name, so the same record read from JSON and from
    CSV with its columns in another order hashes the same when values and types match.

    Args:
        table: The rows.
        key: 64-bit key.
        columns: Names of the columns to hash; all columns when None.
        nulls_as_absent: A null value counts as if its column were not in the table, so a
            record hashes alike whether or not other records of its batch added columns.

    Returns:
        uint64 array, one per row.

    Raises:
        ConfigError: columns is empty, a str or has duplicates; a column type is unsupported.
        SchemaError: a named column is not in the table.
    """
    key = _check_key(key)
    if not isinstance(table, pa.Table):
        raise ConfigError(f"table must be a pyarrow Table, got {type(table).__name__}")
    if isinstance(columns, str):
        raise ConfigError(f"columns must be a sequence of names, got the str {columns!r}")
    names = list(table.column_names if columns is None else columns)
    if not names:
        raise ConfigError("columns must name at least one column, got none")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"columns must be unique, got duplicates {duplicates}")
    missing = [name for name in names if name not in table.column_names]
    if missing:
        raise SchemaError(f"table has no column {missing}; it has {table.column_names}")
    hashes = [hash_array(table.column(name), key) for name in names]
    absent = None
    if nulls_as_absent:
        absent = [table.column(name).is_null().to_numpy(zero_copy_only=False)
                  if table.column(name).null_count else None for name in names]
    return _combine_fields(names, hashes, table.num_rows, key, absent)


def hash_one_row(names: Sequence[str], hashes: np.ndarray, key: int = DEFAULT_KEY) -> int:
    """`hash_rows(..., nulls_as_absent=True)` of a one-row table, from its non-null columns'
    names and value hashes (`hash_array` of each value, computed in any grouping: values of
    one type can be hashed as one array), without building the table.

    Shapes:
        hashes: (len(names),) uint64 -> one int
    """
    key = _check_key(key)
    named = np.array([_name_hash(name, key) for name in names], dtype=np.uint64)
    mixed = _fmix(np.asarray(hashes, dtype=np.uint64) ^ named)  # as _combine_fields mixes
    total = np.array([mixed.sum(dtype=np.uint64)], dtype=np.uint64)  # wraps, as its += does
    return int(_fmix(total ^ np.uint64(_seed(key, _D_STRUCT)))[0])


def to_hex(hashes: np.ndarray) -> pa.StringArray:
    """Format hashes as 16 lowercase hex digits each, built from buffers without a row loop.

    Args:
        hashes: 1-D uint64 array.

    Returns:
        StringArray (LargeStringArray past 2**31 bytes of text), ``f"{h:016x}"`` per hash.

    Raises:
        ConfigError: hashes is not a 1-D uint64 array.
    """
    if not isinstance(hashes, np.ndarray) or hashes.dtype != np.uint64 or hashes.ndim != 1:
        got = type(hashes).__name__
        if isinstance(hashes, np.ndarray):
            got = f"a {hashes.ndim}-D {hashes.dtype} array"
        raise ConfigError(f"hashes must be a 1-D uint64 numpy array, got {got}")
    n = hashes.size
    octets = hashes.astype(">u8").view(np.uint8)  # most significant byte first
    text = _HEX_PAIRS[octets]  # two ASCII digits per byte, as one little-endian uint16
    large = 16 * n >= 2**31
    offsets = np.arange(0, 16 * n + 1, 16, dtype=np.int64 if large else np.int32)
    cls = pa.LargeStringArray if large else pa.StringArray
    return cls.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text.view(np.uint8)))


def _hash(arr: pa.Array, key: int) -> np.ndarray:
    """Dispatch on type; the type was already checked by `_check_type`."""
    t = arr.type
    if len(arr) == 0:
        return np.empty(0, dtype=np.uint64)
    if pat.is_dictionary(t):
        return _hash_dictionary(arr, key)
    if pat.is_null(t):
        return np.full(len(arr), _seed(key, _D_NULL), dtype=np.uint64)
    if pat.is_string(t) or pat.is_large_string(t):
        out = _hash_bytes(arr, _seed(key, _D_STRING), key)
    elif pat.is_binary(t) or pat.is_large_binary(t):
        out = _hash_bytes(arr, _seed(key, _D_BINARY), key)
    elif pat.is_boolean(t):
        bits = _bits(arr.buffers()[1], arr.offset, len(arr)).astype(np.uint64)
        out = _fmix(bits ^ np.uint64(_seed(key, _D_BOOL)))
    elif pat.is_integer(t):
        out = _hash_ints(arr, key)
    elif pat.is_floating(t):
        out = _hash_floats(arr, key)
    elif pat.is_timestamp(t) or pat.is_date(t) or pat.is_time(t) or pat.is_duration(t):
        values = _values(arr, np.int64 if t.bit_width == 64 else np.int32)
        tag = f"timestamp[{t.unit}]" if pat.is_timestamp(t) else str(t)  # timezone left out
        seed = _fmix_int(_seed(key, _D_TEMPORAL) ^ _name_hash(tag, key))
        out = _fmix(values.astype(np.int64).view(np.uint64) ^ np.uint64(seed))
    elif pat.is_list(t) or pat.is_large_list(t):
        out = _hash_list(arr, key)
    elif pat.is_struct(t):
        names = [t.field(i).name for i in range(t.num_fields)]
        fields = [_hash(arr.field(i), key) for i in range(t.num_fields)]  # field() applies offset
        out = _combine_fields(names, fields, len(arr), key)
    else:  # unreachable: hash_array checked the type
        raise ConfigError(f"cannot hash Arrow type {t}")
    if arr.null_count:
        out[~_bits(arr.buffers()[0], arr.offset, len(arr))] = _seed(key, _D_NULL)
    return out


def _hash_ints(arr: pa.Array, key: int) -> np.ndarray:
    values = _values(arr, arr.type.to_pandas_dtype())
    if pat.is_signed_integer(arr.type):
        return _fmix(values.astype(np.int64).view(np.uint64) ^ np.uint64(_seed(key, _D_INT)))
    values = values.astype(np.uint64)
    # Unsigned values below 2**63 hash like the equal signed value; above, a seed of their own.
    high, low = np.uint64(_seed(key, _D_UINT_HIGH)), np.uint64(_seed(key, _D_INT))
    return _fmix(values ^ np.where(values >> np.uint64(63), high, low))


def _hash_floats(arr: pa.Array, key: int) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # a signalling NaN flags; every NaN is replaced below
        bits = _values(arr, arr.type.to_pandas_dtype()).astype(np.float64).view(np.uint64)
    magnitude = bits & np.uint64(0x7FFFFFFFFFFFFFFF)
    bits[magnitude == 0] = 0  # -0.0 -> 0.0
    bits[magnitude > np.uint64(0x7FF0000000000000)] = _CANONICAL_NAN
    return _fmix(bits ^ np.uint64(_seed(key, _D_FLOAT)))


def hash_byte_ranges(data: bytes, starts: np.ndarray, ends: np.ndarray,
                     key: int = DEFAULT_KEY) -> np.ndarray:
    """Hash ``data[starts[i]:ends[i]]`` for every i, without copying the ranges out.

    The result equals ``hash_array`` of a binary array holding those byte strings; this is how
    raw log lines are hashed straight from the block they were read in.

    Args:
        data: The buffer.
        starts, ends: Range bounds, ascending and not overlapping (the lines of a block).
        key: 64-bit key.

    Returns:
        uint64 array, one per range.

    Shapes:
        starts, ends: (n,) -> (n,)
    """
    key = _check_key(key)
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    buffer = np.frombuffer(data, np.uint8) if len(data) else np.empty(0, np.uint8)
    return _hash_ranges(buffer, starts, ends, _seed(key, _D_BINARY), key)


def _hash_list(arr: pa.Array, key: int) -> np.ndarray:
    n = len(arr)
    offset_type = np.int64 if pat.is_large_list(arr.type) else np.int32
    offsets = np.frombuffer(arr.buffers()[1], offset_type)[arr.offset : arr.offset + n + 1]
    offsets = offsets.astype(np.int64)
    first = int(offsets[0])
    # `values` ignores the slice; hash only the child range this slice uses.
    elements = _hash(arr.values.slice(first, int(offsets[-1]) - first), key)
    lengths = np.diff(offsets)
    h0 = _fmix(lengths.astype(np.uint64) ^ np.uint64(_seed(key, _D_LIST)))
    return _hash_segments(elements, offsets[:-1] - first, lengths, h0, key)


def _hash_dictionary(arr: pa.Array, key: int) -> np.ndarray:
    indices = arr.indices  # already sliced like arr; nulls of arr are nulls of indices
    positions = _values(indices, indices.type.to_pandas_dtype()).astype(np.int64)
    nulls = None
    if indices.null_count:
        nulls = ~_bits(indices.buffers()[0], indices.offset, len(indices))
        positions[nulls] = 0  # the index behind a null is undefined, maybe out of range
    values = _hash(arr.dictionary, key)
    if values.size == 0:  # possible only when every index is null
        return np.full(len(arr), _seed(key, _D_NULL), dtype=np.uint64)
    out = values[positions]
    if nulls is not None:
        out[nulls] = _seed(key, _D_NULL)
    return out


def _values(arr: pa.Array, dtype: np.dtype | type) -> np.ndarray:
    """Zero-copy view of a fixed-width array's values; what lies behind nulls is undefined."""
    return np.frombuffer(arr.buffers()[1], dtype=dtype)[arr.offset : arr.offset + len(arr)]


def _bits(buf: pa.Buffer, offset: int, n: int) -> np.ndarray:
    """Unpack ``n`` bits of an Arrow bitmap (validity or bool values) from bit ``offset``."""
    first, stop = offset // 8, (offset + n + 7) // 8
    raw = np.frombuffer(buf, dtype=np.uint8, count=stop - first, offset=first)
    shift = offset % 8
    return np.unpackbits(raw, bitorder="little")[shift : shift + n].astype(bool)


def _check_key(key: int) -> int:
    if isinstance(key, bool) or not isinstance(key, int | np.integer) or not 0 <= key <= _MASK:
        raise ConfigError(f"key must be an int in [0, 2**64), got {key!r}")
    return int(key)


def _check_type(t: pa.DataType, outer: pa.DataType | None = None) -> None:
    """Reject an unsupported type before any work, even in an empty or nested array."""
    outer = t if outer is None else outer
    if pat.is_dictionary(t) or pat.is_list(t) or pat.is_large_list(t):
        _check_type(t.value_type, outer)
    elif pat.is_struct(t):
        for i in range(t.num_fields):
            _check_type(t.field(i).type, outer)
    elif not any(is_leaf(t) for is_leaf in _LEAF_TYPES):
        where = "" if t == outer else f" (inside {outer})"
        raise ConfigError(
            f"cannot hash Arrow type {t}{where}: supported are string, binary, int, float, bool, "
            "timestamp, date, time, duration, null, dictionary, list and struct"
        )

