"""Layer 1's `l1.v4` identity block: how often training saw each value, not its hash bucket.

A privilege escalation or a lateral move is a command line, a process or a parent process the
hosts never ran; in `l1.v3` such a value is one of 4 hash buckets per field, shared with
everything else that hashes there, so it costs the VAE little more than a common one (demo
events: 68 of 106 privilege-escalation command lines were never seen in benign training,
against 11 of 165 benign ones; BENCHMARKS.md). `l1.v4` gives each identity field three dims:

| dims | field |
|---|---|
| 85-87, 88-90, ... 103-105 | user, host, process, parent process, command line, domain, file: present (1 when the event has the field), rarity, never seen |
| 106-109 | never seen together: parent process and process, user and process, host and process, host and user |

rarity = 1 - log1p(count) / log1p(total): near 0 for the most common value, 1 for one
training never saw (count: the value's events among the `total` training events with the
field; 0 when the field is missing); never seen is 1 for such a value. A graded dim alone costs
the VAE little: its decoder guesses a middling rarity, and an unseen value's 1 is not far
from it (as with volumes, `l1.v3`). Every training value was seen, so the decoder learns to
predict 0 for never seen, and a value outside training costs about 1 there, as a never-seen
category does. The pairs are what endpoint detection watches: a parent that never started
that process (fodhelper.exe starting cmd.exe), an account never seen on that host (lateral
movement). Dims 110-111 stay 0 (`l1.v5` uses 110: below). The counts are learnt by
`ValueCounts.fit` on the training events (the featurizer's `fit`); without them (an unfitted
featurizer) the block keeps `l1.v3`'s hash buckets, and the featurizer's spec says `l1.v3`.
Values are kept as keyed 8-byte BLAKE2b digests, not as text (no command line is written into
a model file): the counts of the `MAX_VALUES` most frequent per field, and the rarer ones (up
to `MAX_SEEN` more) in a Bloom filter (`training.features.seen_filter`), read as seen once: without it a field of many
distinct values (command lines with GUIDs, a week of DNS names) would set never seen on
ordinary events. Past `MAX_SEEN` the rarest read as never seen, and fitting says so.

`l1.v5` adds one never-seen dim for each of three network fields (`SEEN_AT`: connection
state 83, protocol 84, service 110; dims `l1.v4` leaves at 0; 111 stays 0): a one-hot value
training never had costs the VAE about 2 (its own dim and the expected one), under the benign
99th percentile of a squared error summed over 128 dims; the never-seen dim, which every
training event leaves at 0, adds about 1 more, as it does for identities. (A never-seen
destination port was tried in 111 and left out: BENCHMARKS.md, "Layer-1 layout `l1.v5`".)
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.errors import SchemaError
from training.features.encoding import as_array, column
from training.features.seen_filter import SeenFilter

logger = logging.getLogger(__name__)

RARITY_AT, BLOCK_END = 85, 112  # the identity block's dims
WIDTH = 3  # dims per field: present, rarity, never seen
FIELDS = ("user", "host", "process", "parent_process", "command_line", "domain", "file")
PAIRS = (("parent_process", "process"), ("user", "process"), ("host", "process"),
         ("host", "user"))
PAIRS_AT = RARITY_AT + WIDTH * len(FIELDS)  # one never-seen dim per pair
SEEN_AT = {"conn_state": 83, "protocol": 84, "service": 110}  # `l1.v5`
PAIR_JOIN = "\x1f"  # between a pair's two values (the unit separator: in no name)
MAX_VALUES = 10_000  # per field, the most frequent: counted
MAX_SEEN = 2_000_000  # per field, the next most frequent: in a filter (about 3.6 MB)
RARE_COUNT = 1  # the count a value of the filter reads as


def identity_values(table: pa.Table, name: str) -> pa.Array:
    """The text layer 1 reads for identity field `name`: a file is its path, else its hash; a
    process (or parent) its lower-case file name, so that C:\\Windows\\cmd.exe and cmd.exe
    are one value."""
    if name == "file":
        return pc.coalesce(column(table, "file_path", pa.string()),
                           column(table, "file_hash", pa.string()))
    values = column(table, name, pa.string())
    if name in ("process", "parent_process"):
        encoded = pc.dictionary_encode(values)
        values = _basename(encoded.dictionary).take(encoded.indices)
    return values


def pair_name(pair: tuple[str, str]) -> str:
    return ">".join(pair)


def pair_values(table: pa.Table, pair: tuple[str, str]) -> pa.Array:
    """A pair's two identity values joined (null where either is missing)."""
    first, second = (identity_values(table, name) for name in pair)
    return pc.binary_join_element_wise(first, second, PAIR_JOIN)


def _basename(text: pa.Array) -> pa.Array:
    return pc.utf8_lower(pc.replace_substring_regex(text, r"^.*[\\/]", ""))


def value_key(name: str, value: str) -> str:
    """A value's key: its 8-byte BLAKE2b digest keyed by the field, in hex."""
    return hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8,
                           key=name.encode()).hexdigest()


@dataclass(frozen=True)
class ValueCounts:
    """Per identity field: how many training events had each value (by key), and in all; the
    rarer values past `MAX_VALUES` in `seen` (module docstring)."""

    counts: dict[str, dict[str, int]]
    totals: dict[str, int]
    seen: dict[str, SeenFilter] = field(default_factory=dict)

    @classmethod
    def fit(cls, table: pa.Table, max_values: int = MAX_VALUES, max_seen: int = MAX_SEEN,
            network: bool = False) -> ValueCounts:
        """Count `table`'s identity values, and with `network` (`l1.v5`) its `SEEN_AT` ones."""
        counts, totals, seen = {}, {}, {}
        named = [(name, identity_values(table, name))
                 for name in FIELDS + (tuple(SEEN_AT) if network else ())] + [
            (pair_name(pair), pair_values(table, pair)) for pair in PAIRS]
        for name, values in named:
            found = pc.value_counts(values.drop_null())
            counted = found.field("counts").to_numpy(zero_copy_only=False)
            order = np.argsort(-counted, kind="stable")  # hash the kept ones only
            top, rarer = order[:max_values], order[max_values:max_values + max_seen]
            kept = found.field("values").take(pa.array(top, pa.int64())).to_pylist()
            counts[name] = {value_key(name, v): int(n) for v, n in zip(kept, counted[top])}
            totals[name] = int(len(values) - values.null_count)
            if len(rarer):
                rare = found.field("values").take(pa.array(rarer, pa.int64())).to_pylist()
                seen[name] = SeenFilter.of(np.array([int(value_key(name, v), 16) for v in rare],
                                                    np.uint64))
            if len(order) > max_values + max_seen:
                logger.warning("%s has %d distinct training values; the %d rarest will "
                               "read as never seen", name, len(order),
                               len(order) - max_values - max_seen)
        return cls(counts, totals, seen)

    def _counts_of(self, name: str, keys: list[str]) -> np.ndarray:
        """(n,) the training count of each key: its own, `RARE_COUNT` in the filter, else 0."""
        known = self.counts.get(name, {})
        found = np.array([known.get(key, 0) for key in keys], np.float64)
        if name in self.seen and len(keys):
            unknown = found == 0
            as_ints = np.array([int(key, 16) for key in keys], np.uint64)
            found[unknown & self.seen[name].contains(as_ints)] = RARE_COUNT
        return found

    def rarity(self, name: str, values: pa.Array) -> np.ndarray:
        """(n,) rarity of each value (0 where missing)."""
        encoded = pc.dictionary_encode(as_array(values))
        keys = [value_key(name, v) for v in encoded.dictionary.to_pylist()]
        scale = math.log1p(max(self.totals.get(name, 0), 1))
        per_value = np.append(1.0 - np.log1p(self._counts_of(name, keys)) / scale,
                              0.0).astype(np.float32)
        codes = encoded.indices.fill_null(len(per_value) - 1).to_numpy(zero_copy_only=False)
        return np.clip(per_value[codes], 0.0, 1.0)

    def value_rarity(self, name: str, value: str) -> float:
        """`rarity` of one value (the per-event path)."""
        seen = float(self._counts_of(name, [value_key(name, value)])[0])
        return 1.0 - math.log1p(seen) / math.log1p(max(self.totals.get(name, 0), 1))

    def to_dict(self) -> dict[str, dict]:
        out: dict[str, dict] = {"counts": self.counts, "totals": self.totals}
        if self.seen:  # fields of more than `MAX_VALUES` values only
            out["seen"] = {name: kept.to_dict() for name, kept in self.seen.items()}
        return out

    @classmethod
    def from_dict(cls, data: object) -> ValueCounts:
        try:
            counts = {str(f): {str(k): int(n) for k, n in v.items()}
                      for f, v in data["counts"].items()}
            totals = {str(f): int(n) for f, n in data["totals"].items()}
            seen = {str(f): SeenFilter.from_dict(v) for f, v in data.get("seen", {}).items()}
            return cls(counts, totals, seen)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise SchemaError(f"a layer-1 spec's value counts are damaged: {exc}") from None


def write_rarity(out: np.ndarray, table: pa.Table, counts: ValueCounts) -> None:
    """The `l1.v4` identity dims of `out` (n, 128), in place of the hash buckets."""
    out[:, RARITY_AT:BLOCK_END] = 0.0
    for k, name in enumerate(FIELDS):
        values = identity_values(table, name)
        at = RARITY_AT + WIDTH * k
        out[:, at] = pc.is_valid(values).to_numpy(zero_copy_only=False)
        rarity = counts.rarity(name, values)
        out[:, at + 1] = rarity
        out[:, at + 2] = rarity >= 1.0
    for j, pair in enumerate(PAIRS):
        values = pair_values(table, pair)
        seen = pc.is_valid(values).to_numpy(zero_copy_only=False)
        out[:, PAIRS_AT + j] = seen & (counts.rarity(pair_name(pair), values) >= 1.0)
    for name, at in SEEN_AT.items():
        if name in counts.totals:  # counted: `l1.v5`
            values = identity_values(table, name)
            seen = pc.is_valid(values).to_numpy(zero_copy_only=False)
            out[:, at] = seen & (counts.rarity(name, values) >= 1.0)


def record_rarity(row: np.ndarray, values: dict[str, str | None], counts: ValueCounts) -> None:
    """`write_rarity` of one event's identity values (already read as `identity_values`)."""
    row[RARITY_AT:BLOCK_END] = 0.0
    for k, name in enumerate(FIELDS):
        value = values.get(name)
        at = RARITY_AT + WIDTH * k
        if value is not None:
            rarity = np.float32(min(max(counts.value_rarity(name, value), 0.0), 1.0))
            row[at], row[at + 1], row[at + 2] = 1.0, rarity, rarity >= 1.0
    for j, (first, second) in enumerate(PAIRS):
        if values.get(first) is not None and values.get(second) is not None:
            joined = values[first] + PAIR_JOIN + values[second]
            row[PAIRS_AT + j] = counts.value_rarity(pair_name((first, second)), joined) >= 1.0
    for name, at in SEEN_AT.items():
        if name in counts.totals and values.get(name) is not None:  # counted: `l1.v5`
            row[at] = counts.value_rarity(name, values[name]) >= 1.0
