"""Stable, keyed, vectorized 64-bit hashing of Arrow data.

Used to deduplicate event ids and, later, to bucket hashed features, so a hash must be the same
in every process and on every platform. Python's builtin ``hash()`` is salted per process and
is never used; per-row Python (hashlib per row, ~1.5 µs/row) is too slow. Everything below is
numpy arithmetic on whole columns.

The algorithm is part of the data format: stored dedup state and feature encodings depend on
it, and ``tests/test_hashing.py`` pins it with known answers. Changing any constant or step
changes every hash.

* ``fmix`` is the murmur3 64-bit finalizer, a bijection on uint64.
* Each type family (and internal use) has a seed ``fmix(key ^ fmix(domain * GOLDEN))``. Null is
  one keyed constant for every type.
* Fixed-width values hash as ``fmix(seed ^ value)``: integers by value, whatever their width
  (uint64 values >= 2**63 use their own seed, so they never alias negative ints); floats widened
  to float64 with -0.0 -> 0.0 and every NaN -> one NaN; bools as 0/1; timestamp, date, time and
  duration by their integer value, seeded by type and unit (a timezone does not change it).
* Byte strings: ``h = fmix(seed ^ byte_length)``, then ``h = fmix(h ^ w)`` for each 8-byte
  little-endian word ``w``, the last one zero-padded. A string over 64 words is cut into blocks
  of 64 words, each chained from ``fmix(block_seed ^ words_in_block)``, and the block digests
  are chained from the string's own start state (recursively, if there are over 64 of them).
  This bounds the Python loop at 64 steps per level whatever the longest string.
* Lists chain their element hashes the same way from ``fmix(list_seed ^ length)``.
* Struct rows and table rows: ``fmix(struct_seed ^ sum(fmix(field_hash ^ name_hash)))``, where
  ``name_hash`` hashes the field name like a string under its own seed; the sum makes the field
  order irrelevant. ``hash_rows(t)`` equals ``hash_array`` of a non-null
  struct array of the same columns.

How it is fast: strings are hashed in chunks of at most 1 MiB or 16K rows, so the copy and
every temporary stay in cache. A chunk is copied once into an aligned, zero-padded buffer; rows
are radix-sorted by word count, so step k of the chain is a prefix slice; an unaligned word is
put together from two aligned ones, and each step gathers one new aligned word per row.

Speed on the 2-core dev machine (numpy 2.4, pyarrow 26), best of 7 to 25 runs while other
jobs shared the CPUs, so the ranges are load: ``hash_array`` on 1M strings of 20 bytes
0.03-0.04 s, of 15-25 bytes 0.05-0.06 s, of 150 bytes 0.17-0.25 s, of 100-200 bytes
0.22-0.26 s; one 1 MB string among 200k short ones 0.012 s (peak extra memory 7 MB); 1M int64
0.004 s; ``to_hex`` of 1M hashes 0.016 s. Hashing each row with hashlib costs ~1.5 s per 1M.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.types as pat

from training.errors import ConfigError, SchemaError

DEFAULT_KEY: int = 0x6D6178696D757321  # b"maximus!" as a big-endian integer; fixed forever.

_MASK = (1 << 64) - 1
_C1 = 0xFF51AFD7ED558CCD  # murmur3 fmix64 multipliers
_C2 = 0xC4CEB93FE53EC889
_GOLDEN = 0x9E3779B97F4A7C15
_ALL_ONES = np.uint64(_MASK)
_S33 = np.uint64(33)
_BLOCK = 64  # words per chained block; also keeps the sort key within uint8 (radix sort)
_CHUNK_BYTES, _CHUNK_ROWS = 1 << 20, 16384  # a chunk's data and temporaries fit in L2
_HEX_PAIRS = np.frombuffer("".join(f"{i:02x}" for i in range(256)).encode(), dtype="<u2")
_CANONICAL_NAN = np.uint64(0x7FF8000000000000)

# Domain numbers separate type families and internal uses under one key. Never renumber.
_D_NULL, _D_STRING, _D_BINARY, _D_INT, _D_UINT_HIGH, _D_FLOAT = 1, 2, 3, 4, 5, 6
_D_BOOL, _D_TEMPORAL, _D_LIST, _D_STRUCT, _D_BLOCK, _D_NAME = 7, 8, 9, 10, 11, 12

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


def _hash_bytes(arr: pa.Array, seed: int, key: int) -> np.ndarray:
    """Chain the 8-byte words of each string or binary value (the hot path)."""
    n = len(arr)
    large = pat.is_large_string(arr.type) or pat.is_large_binary(arr.type)
    offset_type = np.int64 if large else np.int32
    _, offset_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offset_buf, offset_type)[arr.offset : arr.offset + n + 1]
    offsets = offsets.astype(np.int64)
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    return _hash_ranges(data, offsets[:-1], offsets[1:], seed, key)


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


def _hash_ranges(data: np.ndarray, starts: np.ndarray, ends: np.ndarray, seed: int,
                 key: int) -> np.ndarray:
    n = len(starts)
    out = np.empty(n, dtype=np.uint64)
    i = 0
    while i < n:  # chunks of at most _CHUNK_BYTES (or one value) keep the work in cache
        j = int(np.searchsorted(ends, starts[i] + _CHUNK_BYTES, side="right"))
        j = min(n, i + _CHUNK_ROWS, max(j, i + 1))
        out[i:j] = _hash_bytes_chunk(starts[i:j], ends[i:j], data, seed, key)
        i = j
    return out


def _hash_bytes_chunk(starts: np.ndarray, ends: np.ndarray, data: np.ndarray, seed: int,
                      key: int) -> np.ndarray:
    first, last = int(starts[0]), int(ends[-1])
    # An aligned, zero-padded copy: every value's words, and the word after, lie inside it.
    # (np.empty, not np.zeros: calloc maps fresh pages, and faulting them in costs more.)
    padded = np.empty(((last - first) // 8 + 2) * 8, dtype=np.uint8)
    padded[: last - first] = data[first:last]
    padded[last - first :] = 0
    lengths = ends - starts
    starts = starts - first
    # Keeps the value's bytes of its last word: all 8 when the length is a multiple of 8.
    tail_mask = _ALL_ONES >> (((-lengths) & 7) * 8).astype(np.uint64)
    h0 = _fmix(lengths.astype(np.uint64) ^ np.uint64(seed))
    words = padded.view("<u8")
    shift = ((starts & 7) * 8).astype(np.uint64)
    return _hash_segments(words, starts >> 3, (lengths + 7) >> 3, h0, key, shift, tail_mask)


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


def _combine_fields(names: list[str], hashes: list[np.ndarray], n: int, key: int,
                    absent: list[np.ndarray | None] | None = None) -> np.ndarray:
    """Order-free combination of named columns: a sum of name-keyed, mixed column hashes.

    Rows flagged in `absent[i]` leave column i out of the sum, as if it were not there.
    """
    total = np.zeros(n, dtype=np.uint64)
    scratch = np.empty(n, dtype=np.uint64)
    for i, (name, column) in enumerate(zip(names, hashes, strict=True)):
        mixed = _fmix(column ^ np.uint64(_name_hash(name, key)), scratch)
        if absent is not None and absent[i] is not None:
            mixed[absent[i]] = 0
        total += mixed
    return _fmix(total ^ np.uint64(_seed(key, _D_STRUCT)), scratch)


def _hash_segments(
    source: np.ndarray, starts: np.ndarray, counts: np.ndarray, h0: np.ndarray, key: int,
    shift: np.ndarray | None = None, tail_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Chain the words ``source[starts[i]:starts[i] + counts[i]]`` into ``h0[i]`` for each i.

    With `shift`, row i's words begin ``shift[i]`` bits into ``source[starts[i]]`` (bytes at
    any alignment) and its last word is ANDed with ``tail_mask[i]``. Segments over `_BLOCK`
    words hash as a tree: their blocks become extra rows of one chain pass, and the block
    digests are chained, as segments of their own, from ``h0``. Consumes its array arguments.
    """
    if counts.size == 0 or counts.max() <= _BLOCK:
        return _chain(h0, starts, counts, source, shift, tail_mask)
    short, long = np.flatnonzero(counts <= _BLOCK), np.flatnonzero(counts > _BLOCK)
    n_blocks = (counts[long] + _BLOCK - 1) // _BLOCK
    owner = np.repeat(long, n_blocks)
    first_block = np.cumsum(n_blocks) - n_blocks
    block = np.arange(owner.size) - np.repeat(first_block, n_blocks)
    block_counts = np.minimum(counts[owner] - block * _BLOCK, _BLOCK)
    block_h0 = _fmix(block_counts.astype(np.uint64) ^ np.uint64(_seed(key, _D_BLOCK)))
    if shift is not None:  # a block keeps its value's alignment; only the last one is partial
        is_last = block == np.repeat(n_blocks, n_blocks) - 1
        shift = np.concatenate([shift[short], shift[owner]])
        block_mask = np.where(is_last, tail_mask[owner], _ALL_ONES)
        tail_mask = np.concatenate([tail_mask[short], block_mask])
    h = np.concatenate([h0[short], block_h0])
    pos = np.concatenate([starts[short], starts[owner] + block * _BLOCK])
    counts = np.concatenate([counts[short], block_counts])
    digests = _chain(h, pos, counts, source, shift, tail_mask)
    out = np.empty_like(h0)
    out[short] = digests[: short.size]
    out[long] = _hash_segments(digests[short.size :], first_block, n_blocks, h0[long], key)
    return out


def _chain(
    h: np.ndarray, pos: np.ndarray, counts: np.ndarray, source: np.ndarray,
    shift: np.ndarray | None, tail_mask: np.ndarray | None,
) -> np.ndarray:
    """``h = fmix(h ^ word)`` over each row's words (at most `_BLOCK`); see `_hash_segments`."""
    n = h.size
    if n == 0:
        return h
    top = int(counts.max())
    order = None
    if top != int(counts.min()):
        # Most words first, so the rows still having word k are always a prefix slice.
        order = np.argsort((_BLOCK - counts).astype(np.uint8), kind="stable")  # radix sort
        h, pos, counts = h[order], pos[order], counts[order]
        if shift is not None:
            shift, tail_mask = shift[order], tail_mask[order]
    active = n - np.cumsum(np.bincount(counts, minlength=top + 1))  # rows with > k words
    scratch = np.empty(n, dtype=np.uint64)
    if shift is not None:
        # An unaligned word is (lo >> s) | (hi << (64 - s)), and one step's hi is the next
        # step's lo, so each step gathers one aligned word. Shifting left by 1 and then by
        # 63 - s avoids a shift by 64 when s is 0.
        left = np.uint64(63) - shift
        low = source[pos]
        pos += 1
    for k in range(top):
        m, ending = int(active[k]), int(active[k + 1])  # rows [ending:m] end at word k
        word = source[pos[:m]]
        if shift is not None:
            high, word = word, low[:m]
            word >>= shift[:m]
            np.left_shift(high, np.uint64(1), out=scratch[:m])
            scratch[:m] <<= left[:m]
            word |= scratch[:m]
            word[ending:m] &= tail_mask[ending:m]
            low = high
        state = h[:m]
        state ^= word
        _fmix(state, scratch[:m])
        pos[:m] += 1
    if order is None:
        return h
    out = np.empty_like(h)
    out[order] = h
    return out


def _fmix(h: np.ndarray, scratch: np.ndarray | None = None) -> np.ndarray:
    """murmur3 fmix64 in place on a uint64 array (wrapping multiply), returned for chaining."""
    tmp = np.empty_like(h) if scratch is None else scratch
    np.right_shift(h, _S33, out=tmp)
    h ^= tmp
    h *= np.uint64(_C1)
    np.right_shift(h, _S33, out=tmp)
    h ^= tmp
    h *= np.uint64(_C2)
    np.right_shift(h, _S33, out=tmp)
    h ^= tmp
    return h


def _fmix_int(x: int) -> int:
    """`_fmix` on one Python int, for seeds."""
    x ^= x >> 33
    x = (x * _C1) & _MASK
    x ^= x >> 33
    x = (x * _C2) & _MASK
    return x ^ (x >> 33)


@functools.lru_cache(maxsize=1024)
def _seed(key: int, domain: int) -> int:
    return _fmix_int(key ^ _fmix_int(domain * _GOLDEN & _MASK))


@functools.lru_cache(maxsize=4096)
def _name_hash(name: str, key: int) -> int:
    """Keyed hash of a field or type name; it keys a column's contribution to a row hash."""
    return int(_hash_bytes(pa.array([name], pa.string()), _seed(key, _D_NAME), key)[0])


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

