"""JSON Lines outputs with long lines, read by pyarrow.

pyarrow's JSON reader parses in blocks (1 MiB by default) and refuses a line that spans more
than two ("straddling object straddles two block boundaries"): a window unit of a port scan, a
quarter million event ids, is such a line, and `score --output scores.jsonl` failed when it
read its own output back for the incidents. `with_long_lines` reads again with blocks as long as
the longest line, which costs a pass over the file only when a line is that long.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.json as pj

T = TypeVar("T")
_CHUNK = 16 << 20


def with_long_lines(read: Callable[[pj.ReadOptions], T], source: Path | bytes) -> T:
    """`read(options)` (a pyarrow JSON read of `source`, a file or its bytes), read again with
    blocks longer than `source`'s longest line when one is longer than a block."""
    try:
        return read(pj.ReadOptions())
    except pa.ArrowInvalid as exc:
        if "straddl" not in str(exc):
            raise
    return read(pj.ReadOptions(block_size=longest_line(source) + 2))


def longest_line(source: Path | bytes) -> int:
    """The length in bytes of the longest line of `source` (a file or its bytes)."""
    if isinstance(source, (bytes, bytearray)):
        return max(len(line) for line in bytes(source).split(b"\n"))
    longest, current = 0, 0
    with open(source, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            ends = np.flatnonzero(np.frombuffer(chunk, np.uint8) == 10)
            if not len(ends):
                current += len(chunk)
                continue
            lengths = np.diff(ends, prepend=-1) - 1
            lengths[0] += current
            longest = max(longest, int(lengths.max()))
            current = len(chunk) - int(ends[-1]) - 1
    return max(longest, current)
