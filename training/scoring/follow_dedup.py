"""Duplicate events in live scoring: an event whose id is among the last `DEFAULT_RECENT` kept
events' ids is dropped and counted, as batch `score` drops an id seen before.

A shipper that re-sends lines (a restart, a retry) repeats events close to where they were
first read, so the ids of the latest events catch it in bounded memory: a set of at most
`recent` ids (8 bytes each on disk). They survive restarts in the state folder, with the read
positions: each poll appends the kept events' id hashes to `ids-<generation>.bin` (an
`AppendOnly` output, so a killed run's uncommitted tail is cut back with the others). When the
file holds twice `recent` ids, the latest `recent` start the next generation's file; the state
names the generation, and older files go once it is committed (`committed`).

    dedup = RecentIds(state)              # after FollowState(...)
    table, dropped = dedup.keep_new(table)
    state.commit(..., [*outputs, dedup.file], dedup=dedup.saved())
    dedup.committed()
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np
import pyarrow as pa

from training.kernels.hashing import hash_array
from training.scoring.follow_state import AppendOnly, FollowState

DEFAULT_RECENT = 100_000
_KEY = 0x6D61_7869_6D75_7364  # its own hash key: these hashes are compared with each other only


class RecentIds:
    """The ids of the last `recent` kept events (see the module docstring).

    Raises:
        ValueError: recent < 1.
    """

    def __init__(self, state: FollowState, recent: int = DEFAULT_RECENT) -> None:
        if recent < 1:
            raise ValueError(f"recent must be >= 1, got {recent}")
        self.folder, self.recent = state.folder, recent
        self.generation: int = state.saved.get("dedup", {}).get("generation", 0)
        for path in self.folder.glob("ids-*.bin"):  # a crashed run's next generation
            if path != self._path():
                path.unlink()
        self.file = state.output(self._path(), private=True)
        keys = np.fromfile(self._path(), dtype="<u8")[-recent:]
        self._order: deque[int] = deque(keys.tolist())
        self._seen = set(self._order)
        self._written = len(keys)  # ids in the current file
        self._obsolete: list[Path] = []

    def keep_new(self, table: pa.Table) -> tuple[pa.Table, int]:
        """`table` without the events whose id was seen among the recent ones (or earlier in
        `table`), and how many were dropped; the kept ones become recent."""
        keep = self.new(table["event_id"])
        dropped = int(len(keep) - keep.sum())
        return (table.filter(pa.array(keep)) if dropped else table), dropped

    def new(self, event_ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Mask of the `event_ids` not seen among the recent ones (nor earlier among
        themselves); those become recent."""
        if not len(event_ids):
            return np.ones(0, dtype=bool)
        keys = hash_array(event_ids, key=_KEY)
        keep = np.ones(len(keys), dtype=bool)
        for at, key in enumerate(keys.tolist()):
            if key in self._seen:
                keep[at] = False
                continue
            self._seen.add(key)
            self._order.append(key)
            if len(self._order) > self.recent:
                self._seen.discard(self._order.popleft())
        self._remember(keys[keep])
        return keep

    def _remember(self, keys: np.ndarray) -> None:
        if self._written + len(keys) > 2 * self.recent:  # the next generation: the latest only
            self._obsolete.append(self.file.path)
            self.file.close()
            self.generation += 1
            self._path().unlink(missing_ok=True)
            self.file = AppendOnly(self._path(), None, private=True)
            keys = np.fromiter(self._order, dtype=np.uint64, count=len(self._order))
            self._written = 0
        self.file.append([keys.astype("<u8").tobytes()])
        self._written += len(keys)

    def saved(self) -> dict[str, int]:
        """What the state file records: the generation whose file holds the ids."""
        return {"generation": self.generation, "recent": self.recent}

    def committed(self) -> None:
        """The state now names the current generation: remove the older files."""
        for path in self._obsolete:
            path.unlink(missing_ok=True)
        self._obsolete = []

    def close(self) -> None:
        self.file.close()

    def _path(self) -> Path:
        return self.folder / f"ids-{self.generation}.bin"
