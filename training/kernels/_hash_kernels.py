"""The numpy kernels of `training.kernels.hashing`: fmix, seeds, and chained word hashing.

The algorithm is part of the data format (see `training.kernels.hashing`); ``tests/test_hashing.py``
pins it with known answers. Changing any constant or step changes every hash.

* ``fmix`` is the murmur3 64-bit finalizer, a bijection on uint64.
* Each type family (and internal use) has a seed ``fmix(key ^ fmix(domain * GOLDEN))``. Null is
  one keyed constant for every type.
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

import numpy as np
import pyarrow as pa
import pyarrow.types as pat

_MASK = (1 << 64) - 1
_C1 = 0xFF51AFD7ED558CCD  # murmur3 fmix64 multipliers
_C2 = 0xC4CEB93FE53EC889
_GOLDEN = 0x9E3779B97F4A7C15
_ALL_ONES = np.uint64(_MASK)
_S33 = np.uint64(33)
_BLOCK = 64  # words per chained block; also keeps the sort key within uint8 (radix sort)
_CHUNK_BYTES, _CHUNK_ROWS = 1 << 20, 16384  # a chunk's data and temporaries fit in L2

# Domain numbers separate type families and internal uses under one key. Never renumber.
_D_NULL, _D_STRING, _D_BINARY, _D_INT, _D_UINT_HIGH, _D_FLOAT = 1, 2, 3, 4, 5, 6
_D_BOOL, _D_TEMPORAL, _D_LIST, _D_STRUCT, _D_BLOCK, _D_NAME = 7, 8, 9, 10, 11, 12


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
