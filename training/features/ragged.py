"""Ragged arrays held flat: a values array plus the offsets where each part starts."""

from __future__ import annotations

import numpy as np


def gather_ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Positions starts[0]:ends[0], then starts[1]:ends[1], ... as one int64 array."""
    lengths = np.asarray(ends, dtype=np.int64) - np.asarray(starts, dtype=np.int64)
    firsts = np.cumsum(lengths) - lengths  # where each range begins in the output
    return np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(starts - firsts, lengths)


def offsets_of(lengths: np.ndarray, dtype: np.dtype = np.int64) -> np.ndarray:
    """Offsets (0, l0, l0 + l1, ...) of consecutive parts of the given lengths."""
    return np.concatenate([[0], np.cumsum(lengths)]).astype(dtype)
