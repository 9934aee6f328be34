"""Per-feature summaries of large matrices in one chunked pass (bounded memory, float64 sums)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK_ROWS = 1 << 16


@dataclass
class Moments:
    """Per-feature counts and moments over the finite values (NaN and +-Inf left out).

    Attributes:
        rows: rows seen.
        nan, inf: (features,) counts of NaN and of +-Inf.
        count: (features,) finite values.
        mean, std, min, max: (features,) over the finite values (NaN where there are none).
    """

    rows: int
    nan: np.ndarray
    inf: np.ndarray
    count: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray


def moments(features: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> Moments:
    """Counts, mean, population std, min and max of every column of a (rows, features) matrix.

    Sums run in float64 over row chunks, around a per-feature shift (the first finite value),
    so the variance of large, offset columns keeps its precision.
    """
    rows, width = features.shape
    nan = np.zeros(width, np.int64)
    inf = np.zeros(width, np.int64)
    count = np.zeros(width, np.int64)
    total = np.zeros(width)
    squares = np.zeros(width)
    low = np.full(width, np.inf)
    high = np.full(width, -np.inf)
    shift = _first_finite(features)
    for start in range(0, rows, chunk_rows):
        block = features[start:start + chunk_rows].astype(np.float64) - shift
        finite = np.isfinite(block)
        if not finite.all():
            nan += np.isnan(block).sum(axis=0)
            inf += np.isinf(block).sum(axis=0)
            count += finite.sum(axis=0)
            low = np.minimum(low, np.where(finite, block, np.inf).min(axis=0))
            high = np.maximum(high, np.where(finite, block, -np.inf).max(axis=0))
            block = np.where(finite, block, 0.0)
        else:
            count += len(block)
            low = np.minimum(low, block.min(axis=0))
            high = np.maximum(high, block.max(axis=0))
        total += block.sum(axis=0)
        squares += np.einsum("ij,ij->j", block, block)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        var = np.maximum(squares / count - mean**2, 0.0)
    empty = count == 0
    low[empty], high[empty] = np.nan, np.nan
    return Moments(rows, nan, inf, count, mean + shift, np.sqrt(var), low + shift, high + shift)


def _first_finite(features: np.ndarray) -> np.ndarray:
    head = features[:CHUNK_ROWS].astype(np.float64)
    finite = np.isfinite(head)
    first = np.argmax(finite, axis=0)
    shift = head[first, np.arange(head.shape[1])]
    return np.where(finite.any(axis=0), shift, 0.0)


def feature_summary(features: np.ndarray) -> dict[str, list]:
    """JSON-able per-feature mean, std, min and max (None where a feature has no finite value)."""
    m = moments(features)
    return {f"feature_{k}": [None if np.isnan(x) else float(x) for x in getattr(m, k)]
            for k in ("mean", "std", "min", "max")}
