"""Traffic aggregation shared by layer 2 (graphs) and layer 3 (sequences).

Both layers group events by integer keys (window, source, destination) or (entity, bucket) and
reduce each group with numpy: a sort, then `bincount`/`reduceat` over the sorted rows. Nothing
here loops over events in Python.

Connection states are read as classes, so Zeek's `conn_state` and Suricata's `flow.state` land
in the same columns:

| class | states |
|---|---|
| established | SF, S1, S2, S3 (Zeek); established, closed (Suricata) |
| rejected | REJ |
| unanswered | S0, SH, RSTOS0 (Zeek); new (Suricata) |
| reset | RSTO, RSTR |
| partial | OTH, SHR, RSTRH (midstream, or only the responder's side seen) |
| other | anything else, or no state (an alert, a DNS record, a process event) |

A *failed* event is one whose state is rejected or unanswered.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.collection.schema import CANONICAL_SCHEMA
from training.errors import ConfigError, SchemaError
from training.features.encoding import category_codes, column, numbers

CONN_STATE_CLASSES: dict[str, tuple[str, ...]] = {
    "established": ("SF", "S1", "S2", "S3", "established", "closed"),
    "rejected": ("REJ",),
    "unanswered": ("S0", "SH", "RSTOS0", "new"),
    "reset": ("RSTO", "RSTR"),
    "partial": ("OTH", "SHR", "RSTRH"),
}
FAILED_CLASSES = ("rejected", "unanswered")
PROTOCOL_CLASSES: dict[str, tuple[str, ...]] = {
    "tcp": ("tcp",),
    "udp": ("udp",),
    "icmp": ("icmp", "icmpv6", "ipv6-icmp"),
}  # anything else, or none, is "other"

_MAX_KEY = np.iinfo(np.int64).max


def timestamps_us(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Microseconds since the epoch (int64) and a mask of the rows that have a timestamp.

    Raises:
        SchemaError: the timestamp column is not an Arrow timestamp.
    """
    stamps = column(table, "timestamp")
    if not pa.types.is_timestamp(stamps.type):
        raise SchemaError(f"the timestamp column must be an Arrow timestamp (canonical "
                          f"{CANONICAL_SCHEMA.field('timestamp').type}), got {stamps.type}")
    micros = stamps.cast(pa.timestamp("us", stamps.type.tz)).cast(pa.int64())
    valid = micros.is_valid().to_numpy(zero_copy_only=False)
    return micros.fill_null(0).to_numpy(zero_copy_only=False), valid


def amounts(table: pa.Table, name: str) -> np.ndarray:
    """A numeric column as float64 with missing values as 0 (for sums)."""
    return np.nan_to_num(numbers(column(table, name)), nan=0.0)


def labels(table: pa.Table) -> np.ndarray:
    """is_threat as int8, missing as -1 (unknown)."""
    return column(table, "is_threat").cast(pa.int8()).fill_null(-1).to_numpy(zero_copy_only=False)


def classes(table: pa.Table, name: str, groups: dict[str, tuple[str, ...]]) -> np.ndarray:
    """Index of each value's class in `groups` (insertion order); len(groups) for the rest."""
    vocabulary = {value: i for i, values in enumerate(groups.values()) for value in values}
    codes = category_codes(column(table, name), vocabulary)
    return np.where(codes < 0, len(groups), codes)


def value_codes(array: pa.Array) -> np.ndarray:
    """An integer code per distinct value (int64), -1 for null; for distinct counts."""
    if pa.types.is_integer(array.type):
        return array.cast(pa.int64()).fill_null(-1).to_numpy(zero_copy_only=False)
    encoded = pc.dictionary_encode(array)
    return encoded.indices.cast(pa.int64()).fill_null(-1).to_numpy(zero_copy_only=False)


def entity_codes(*arrays: pa.Array) -> tuple[list[np.ndarray], pa.StringArray]:
    """One shared, name-sorted code space for the entities of several string columns.

    Returns:
        codes: per input array, int64 codes (-1 for null), equal values giving equal codes,
            and code order equal to name order; `names`: the entity names, indexed by code.
    """
    lengths = [len(a) for a in arrays]
    combined = pa.concat_arrays([a.cast(pa.string()) for a in arrays])
    encoded = pc.dictionary_encode(combined)
    dictionary = encoded.dictionary
    order = pc.array_sort_indices(dictionary).to_numpy(zero_copy_only=False)
    rank = np.empty(len(order) + 1, dtype=np.int64)
    rank[order] = np.arange(len(order))
    rank[-1] = -1
    indices = encoded.indices.fill_null(len(order)).to_numpy(zero_copy_only=False)
    codes = rank[indices]
    bounds = np.cumsum([0, *lengths])
    names = dictionary.take(pa.array(order, type=pa.int64()))
    return [codes[bounds[i]:bounds[i + 1]] for i in range(len(arrays))], names


def floor_div(values: np.ndarray, size: int) -> np.ndarray:
    """floor(values / size) on int64, exact for negative values too."""
    return np.floor_divide(values, size)


def check_period(name: str, seconds: float) -> int:
    """A window or bucket length in seconds, validated, as whole microseconds."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ConfigError(f"{name} must be a number of seconds > 0, got {seconds!r}")
    micros = round(seconds * 1_000_000)
    if micros < 1:
        raise ConfigError(f"{name} must be at least one microsecond, got {seconds!r}")
    return micros


class Groups:
    """Rows grouped by keys they are already sorted by.

    Args:
        keys: int64 arrays of equal length, sorted lexicographically (first key outermost).

    Attributes:
        starts: index of the first row of each group, shape (groups,).
        of_row: group of every row, shape (rows,).
        size: number of groups.
    """

    def __init__(self, *keys: np.ndarray) -> None:
        n = len(keys[0])
        change = np.zeros(n, dtype=bool)
        if n:
            change[0] = True
            for key in keys:
                change[1:] |= key[1:] != key[:-1]
        self.starts = np.flatnonzero(change)
        self.of_row = np.cumsum(change) - 1
        self.size = len(self.starts)

    def count(self) -> np.ndarray:
        """Rows per group (int64)."""
        return np.diff(np.append(self.starts, len(self.of_row)))

    def sum(self, values: np.ndarray) -> np.ndarray:
        """Sum of `values` (rows in sorted order) per group, float64."""
        return np.bincount(self.of_row, weights=values, minlength=self.size)

    def max(self, values: np.ndarray) -> np.ndarray:
        """Maximum of `values` per group (same dtype)."""
        if not self.size:
            return values[:0]
        return np.maximum.reduceat(values, self.starts)

    def count_distinct(self, codes: np.ndarray) -> np.ndarray:
        """Distinct non-negative codes per group (int64); negative codes (null) are not counted."""
        return count_distinct(self.of_row, codes, self.size)


def count_distinct(group: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Distinct non-negative `codes` within each group 0..n_groups-1 (int64 counts)."""
    keep = codes >= 0
    group, codes = group[keep].astype(np.int64), codes[keep].astype(np.int64)
    if not len(codes):
        return np.zeros(n_groups, dtype=np.int64)
    span = int(codes.max()) + 1
    if n_groups and span > _MAX_KEY // max(n_groups, 1):
        pairs = np.unique(np.stack([group, codes], axis=1), axis=0)
        return np.bincount(pairs[:, 0], minlength=n_groups)
    return np.bincount(unique(group * span + codes) // span, minlength=n_groups)


def unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values. A sort and a compare: numpy 2.4's `np.unique` takes a hash path
    that is ~50x slower on a million int64 keys."""
    ordered = np.sort(values)
    keep = np.ones(len(ordered), dtype=bool)
    keep[1:] = ordered[1:] != ordered[:-1]
    return ordered[keep]


def unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values, and the index of each value among them (int64)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    change = np.ones(len(ordered), dtype=bool)
    change[1:] = ordered[1:] != ordered[:-1]
    inverse = np.empty(len(values), dtype=np.int64)
    inverse[order] = np.cumsum(change) - 1
    return ordered[change], inverse


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0."""
    out = np.zeros(len(numerator), dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out
