"""Whether a 64-bit key was among a set, in about 14 bits a key: a Bloom filter.

Layer 1 keeps the counts of each identity field's most frequent training values; the rarer ones
(command lines with GUIDs, a week of DNS names) would otherwise read as never seen and set the
never-seen dims of ordinary events. The filter remembers them all for a false-positive rate of
`ERROR` (a never-seen value read as seen once in a thousand) and no false negatives.

The keys are uniform (keyed BLAKE2b digests), so the `hashes` bit positions come from one key by
double hashing (Kirsch and Mitzenmacher): position i = (low + i * high) mod m, with low and
high its two 32-bit halves (high made odd).
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass

import numpy as np

ERROR = 1e-3  # the false-positive rate a filter is sized for


@dataclass(frozen=True)
class SeenFilter:
    bits: np.ndarray  # uint8, m / 8 bytes
    hashes: int

    @classmethod
    def of(cls, keys: np.ndarray) -> SeenFilter:
        """A filter holding `keys` (uint64), sized for `ERROR`."""
        keys = np.unique(np.asarray(keys, dtype=np.uint64))
        n = max(len(keys), 1)
        m = 8 * math.ceil(-n * math.log(ERROR) / math.log(2) ** 2 / 8)
        hashes = max(1, round(m / n * math.log(2)))
        bits = np.zeros(m // 8, np.uint8)
        positions = _positions(keys, hashes, m).ravel()
        np.bitwise_or.at(bits, positions >> 3, np.left_shift(1, positions & 7).astype(np.uint8))
        return cls(bits, hashes)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """(n,) bool: whether each key (uint64) may be in the set (never False for one that is)."""
        positions = _positions(np.asarray(keys, dtype=np.uint64), self.hashes, 8 * len(self.bits))
        found = (self.bits[positions >> 3] >> (positions & 7).astype(np.uint8)) & 1
        return found.all(axis=1)

    def to_dict(self) -> dict[str, object]:
        return {"hashes": self.hashes, "bits": base64.b64encode(self.bits.tobytes()).decode()}

    @classmethod
    def from_dict(cls, data: dict) -> SeenFilter:
        """The filter `to_dict` wrote.

        Raises:
            KeyError, TypeError, ValueError: `data` is not such a filter.
        """
        bits = np.frombuffer(base64.b64decode(data["bits"], validate=True), np.uint8)
        hashes = int(data["hashes"])
        if not len(bits) or hashes < 1:
            raise ValueError("a seen-value filter without bits or hashes")
        return cls(bits.copy(), hashes)


def _positions(keys: np.ndarray, hashes: int, m: int) -> np.ndarray:
    """(n, hashes) int64 bit positions of each key."""
    low = (keys & np.uint64(0xFFFFFFFF)).astype(np.int64)
    high = ((keys >> np.uint64(32)) | np.uint64(1)).astype(np.int64)
    steps = np.arange(hashes, dtype=np.int64)
    return (low[:, None] + steps[None, :] * high[:, None]) % m
