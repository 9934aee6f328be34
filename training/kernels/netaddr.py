"""Vectorized parsing of IP address text into fixed-width network-order bytes.

Flow logs repeat the same few thousand addresses across millions of rows, so `pack_ips` parses
each distinct string once and gathers the results back to rows with numpy; no Python code runs
per row. Parsing uses `socket.inet_pton` (C, ~0.4 us a value) with the stdlib `ipaddress`
module (~5-12 us) as the fallback for what inet_pton refuses, such as IPv6 zone ids. Measured
on the 2-core dev box: 1M rows drawn from 25K distinct addresses take about 0.1 s.
"""

from __future__ import annotations

import functools
import ipaddress
import socket

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.errors import SchemaError

__all__ = ["MISSING_TOKENS", "VERSION_INVALID", "VERSION_MISSING", "pack_ips"]

#: Version code of a null, empty or "-" value.
VERSION_MISSING = 0
#: Version code of text that is not an IPv4 or IPv6 address.
VERSION_INVALID = -1
#: Strings that mean "no address" in the logs we read (Zeek writes "-" for an unset field).
MISSING_TOKENS = frozenset({"", "-"})


@functools.lru_cache(maxsize=1 << 16)  # the same hosts recur batch after batch
def _parse_one(text: str | None) -> tuple[bytes, int]:
    """Parse one address string into (16 bytes, version code)."""
    if text is None or text in MISSING_TOKENS:  # None: a null inside a dictionary
        return bytes(16), VERSION_MISSING
    # Fast path: inet_pton is strict (no leading zeros in IPv4, no zone) and 15x faster.
    is_v6 = ":" in text
    try:
        raw = socket.inet_pton(socket.AF_INET6 if is_v6 else socket.AF_INET, text)
    except (OSError, ValueError):  # ValueError: an embedded NUL character
        pass
    else:
        return raw.ljust(16, b"\0"), 6 if is_v6 else 4
    try:
        # Python >= 3.9 accepts and drops an IPv6 zone ("fe80::1%eth0"); `packed` has no zone.
        addr = ipaddress.ip_address(text)
    except ValueError:
        return bytes(16), VERSION_INVALID
    # IPv4-mapped IPv6 ("::ffff:1.2.3.4") stays IPv6: that is what was on the wire.
    return addr.packed.ljust(16, b"\0"), addr.version


def _as_string_array(ips: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Return `ips` as one (possibly dictionary-encoded) Arrow array of strings."""
    if isinstance(ips, pa.ChunkedArray):
        if pa.types.is_dictionary(ips.type):
            # Chunks may carry different dictionaries; decode so concatenation is always legal.
            ips = ips.cast(ips.type.value_type)
        if ips.num_chunks == 0:
            ips = pa.array([], type=ips.type)
        elif ips.num_chunks == 1:
            ips = ips.chunk(0)
        else:
            ips = pa.concat_arrays(ips.chunks)
    if not isinstance(ips, pa.Array):
        raise SchemaError(f"ips must be a pyarrow Array or ChunkedArray, got {type(ips).__name__}")
    value_type = ips.type.value_type if pa.types.is_dictionary(ips.type) else ips.type
    if not (pa.types.is_string(value_type) or pa.types.is_large_string(value_type)):
        raise SchemaError(f"ips must hold strings (string or large_string), got {ips.type}")
    return ips


def pack_ips(ips: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Parse IP address strings into 16-byte network-order arrays.

    Only distinct values are parsed (one `ipaddress.ip_address` call each); rows are filled by
    numpy gathers. IPv6 zone suffixes (`%eth0`) are dropped; IPv4-mapped IPv6 stays IPv6.

    Args:
        ips: Arrow `string` or `large_string` array (or a dictionary array of those), possibly
            sliced, chunked or holding nulls. Null, `""` and `"-"` mean "no address". Text is
            matched strictly: surrounding whitespace makes a value invalid.

    Returns:
        `(packed, version)`. `packed` is `(n, 16)` uint8 in network byte order: an IPv4 address
        fills the first 4 bytes and the rest are zero, an IPv6 address fills all 16, missing and
        invalid rows are all zero. `version` is `(n,)` int8: 4, 6, `VERSION_MISSING` (0) for
        null/empty/"-", `VERSION_INVALID` (-1) for text that is not an address (e.g.
        "999.1.1.1", "1.2.3", "abc"), so callers can quarantine the row with a reason.

    Raises:
        SchemaError: `ips` is not an Arrow array of strings.

    Shapes:
        ips: (n,) -> packed: (n, 16) uint8, version: (n,) int8
    """
    arr = _as_string_array(ips)
    encoded = arr if pa.types.is_dictionary(arr.type) else pc.dictionary_encode(arr)
    uniques = encoded.dictionary.to_pylist()

    # Table row u (one past the last distinct value) is the "null" row.
    n_unique = len(uniques)
    table = np.zeros((n_unique + 1, 16), dtype=np.uint8)
    versions = np.zeros(n_unique + 1, dtype=np.int8)
    if n_unique:
        parsed = [_parse_one(text) for text in uniques]
        table[:n_unique] = np.frombuffer(b"".join(p[0] for p in parsed), dtype=np.uint8).reshape(
            n_unique, 16
        )
        versions[:n_unique] = [p[1] for p in parsed]

    indices = encoded.indices
    if indices.null_count:
        indices = pc.fill_null(indices, n_unique)
    codes = indices.to_numpy(zero_copy_only=False)

    # Gather 16 bytes per row as two uint64 words: much faster than a (n, 16) uint8 take.
    packed = table.view(np.uint64)[codes].view(np.uint8).reshape(len(codes), 16)
    return packed, versions[codes]


def is_address(text: str) -> bool:
    """Whether `text` is one IPv4 or IPv6 address (an IPv6 zone allowed)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
