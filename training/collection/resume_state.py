"""Collection state that survives a crash: read positions, seen event ids, counters.

Layout of a collection's output directory:

    checkpoint.json      positions per source and stream, counters, what else is committed
    seen/NNNNNN.npy      event-id keys added by each commit (sorted uint64)
    quarantine.jsonl     rejected records, appended (0600: it holds raw input)
    events/part-NNNNNN.parquet   collected events (only when the collector writes them)
    progress.json        live progress, for people and tests watching a long collection
    .lock                locked (a POSIX record lock) by the process collecting into it

Only one process at a time may use a directory: another is refused with a CheckpointError while
the first holds the lock. The kernel drops the lock when its holder exits, killed or not, so a
crash never leaves a directory locked. (The lock belongs to a process, not to a collector: two
collectors on one directory inside one process are not told apart.) A run that fails before its
first commit removes the directory if it made it (`output_folder`); one that was there before is
only released.

A commit writes the new seen-keys file and the appended quarantine records first, then replaces
checkpoint.json atomically. Whatever a crash leaves beyond the last checkpoint (a seen file, a
part, quarantine lines) is removed when the state is loaded, and reading resumes from the
checkpointed positions, so every record is delivered exactly once.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from training.artifacts.atomic import atomic_write, open_in_place, private_folder
from training.artifacts.folders import check_not_link, real_folder
from training.collection.output_folder import (
    CHECKPOINT_FILE, LOCK_FILE, missing_folders, remove_made,
)
from training.collection.quarantine_file import QUARANTINE_FILE
from training.collection.recipe_diff import changed_entries
from training.errors import CheckpointError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_MAX_SEEN_FILES = 32


def _lock(directory: Path) -> int:
    """An exclusive lock on `directory` for this process (a file descriptor to close)."""
    path = directory / LOCK_FILE
    fd = open_in_place(path, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # A failed run that made the folder removes its lock file while holding it: a lock
        # taken on the removed file locks nothing another process can see.
        if not os.path.samestat(os.fstat(fd), os.lstat(path)):
            raise FileNotFoundError(path)
    except OSError:  # EAGAIN or EACCES: another process holds it (or held and removed it)
        os.close(fd)
        raise CheckpointError(f"{directory} is in use by another collection (it holds "
                              f"{LOCK_FILE}); wait for it to finish or use another output_dir"
                              ) from None
    return fd


def committed_stats(directory: Path) -> dict | None:
    """The counters of the collection committed in `directory` (`events`, `batches`, ...), as
    a resumed run starts from them; None when nothing was ever committed there."""
    try:
        return json.loads((directory / CHECKPOINT_FILE).read_text())["stats"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{directory / CHECKPOINT_FILE}: unreadable checkpoint ({exc})"
                              ) from exc


class SeenIds:
    """A set of uint64 event-id keys kept as a few sorted arrays, merged as they grow."""

    def __init__(self) -> None:
        self._levels: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(level) for level in self._levels)

    def first_new(self, keys: np.ndarray) -> np.ndarray:
        """Mask of keys that are neither seen before nor repeated earlier in `keys`."""
        ordered = np.sort(keys)
        if not (ordered[1:] == ordered[:-1]).any() and not self._known(ordered).any():
            return np.ones(len(keys), dtype=bool)  # the usual batch: all new, no repeats
        unique, first = np.unique(keys, return_index=True)
        mask = np.zeros(len(keys), dtype=bool)
        mask[first[~self._known(unique)]] = True
        return mask

    def _known(self, ordered: np.ndarray) -> np.ndarray:
        """Which of these sorted keys are in the set (sorted queries keep the lookups local)."""
        known = np.zeros(len(ordered), dtype=bool)
        for level in self._levels:
            at = np.minimum(np.searchsorted(level, ordered), len(level) - 1)
            known |= level[at] == ordered
        return known

    def add(self, keys: np.ndarray) -> None:
        """Add keys that are not in the set yet (as `first_new` selects them)."""
        if len(keys) == 0:
            return
        self._levels.append(np.sort(keys.astype(np.uint64, copy=False)))
        # Merge while the newest level is at least half the size of the one below it, so there
        # are O(log n) levels and each key is merged O(log n) times.
        while len(self._levels) > 1 and 2 * len(self._levels[-1]) >= len(self._levels[-2]):
            top = self._levels.pop()
            merged = np.concatenate([self._levels.pop(), top])
            merged.sort(kind="stable")  # two sorted runs: a linear merge
            self._levels.append(merged)

    def keys(self) -> np.ndarray:
        if not self._levels:
            return np.empty(0, dtype=np.uint64)
        return np.sort(np.concatenate(self._levels))


@dataclass
class CollectionState:
    """Everything a resumed collection needs; committed to `directory` when there is one."""

    directory: Path | None
    recipe: dict = field(default_factory=dict)
    secret: int = field(default_factory=lambda: secrets.randbits(63))
    positions: dict[str, dict[str, dict]] = field(default_factory=dict)
    seen: SeenIds = field(default_factory=SeenIds)
    stats: dict = field(default_factory=dict)
    parts: int = 0
    quarantine_bytes: int = 0
    seen_first: int = 0
    seen_next: int = 0
    _pending_keys: list[np.ndarray] = field(default_factory=list)
    _lock_fd: int | None = None
    _made: list[Path] = field(default_factory=list)  # the folders `load` made (output_folder)
    _delivered_before: int = 0  # events a resumed delivering run's earlier runs delivered

    @property
    def checkpoint_path(self) -> Path:
        return self._require_dir() / CHECKPOINT_FILE

    @property
    def quarantine_path(self) -> Path:
        return self._require_dir() / QUARANTINE_FILE

    def part_path(self, index: int) -> Path:
        # The folder is made here, a real one (never a planted link), for the part to be written.
        return real_folder(self._require_dir() / "events") / f"part-{index:06d}.parquet"

    def _require_dir(self) -> Path:
        if self.directory is None:
            raise CheckpointError("this collection has no output_dir, so nothing is persisted")
        return self.directory

    def position(self, source: str, stream: str) -> dict | None:
        return self.positions.get(source, {}).get(stream)

    def remember(self, keys: np.ndarray) -> None:
        """Add new event keys; they are persisted with the next commit."""
        self.seen.add(keys)
        if self.directory is not None:
            self._pending_keys.append(keys)

    def commit(self) -> None:
        """Make everything since the last commit durable (no-op without a directory)."""
        if self.directory is None:
            return
        seen_dir = self.directory / "seen"
        check_not_link(seen_dir)  # written into and pruned: never through a planted link
        if self._pending_keys:
            keys = np.sort(np.concatenate(self._pending_keys))
            with atomic_write(seen_dir / f"{self.seen_next:06d}.npy") as handle:
                np.save(handle, keys, allow_pickle=False)
            self.seen_next += 1
            self._pending_keys = []
        obsolete = range(self.seen_first, self.seen_next)
        if self.seen_next - self.seen_first > _MAX_SEEN_FILES:
            # Compact: one file holding every key, then drop the ones it replaces.
            with atomic_write(seen_dir / f"{self.seen_next:06d}.npy") as handle:
                np.save(handle, self.seen.keys(), allow_pickle=False)
            self.seen_first, self.seen_next = self.seen_next, self.seen_next + 1
        else:
            obsolete = range(0)
        document = {
            "version": FORMAT_VERSION,
            "recipe": self.recipe,
            "secret": self.secret,
            "positions": self.positions,
            "stats": self.stats,
            "parts": self.parts,
            "quarantine_bytes": self.quarantine_bytes,
            "seen_first": self.seen_first,
            "seen_next": self.seen_next,
            "committed_at": time.time(),
        }
        with atomic_write(self.checkpoint_path) as handle:
            handle.write(orjson.dumps(document, option=orjson.OPT_INDENT_2))
        for index in obsolete:
            (seen_dir / f"{index:06d}.npy").unlink(missing_ok=True)

    @classmethod
    def load(cls, directory: Path | None, resume: bool, recipe: dict,
             delivers: bool = False) -> CollectionState:
        """The committed state of `directory`, with uncommitted leftovers removed.

        Args:
            directory: where the collection lives; None keeps nothing.
            resume: continue a collection found there.
            recipe: what is collected and how (sources, time range, dedup); a resumed
                collection must have been made by the same recipe.
            delivers: the run hands its events to the caller (`collect()`, `batches()`,
                `collect_table()`) rather than storing them: resuming one that delivered
                events before warns that those are not delivered again (a notebook cell run
                twice got 0 events, silently: trial Q).

        Raises:
            CheckpointError: another process is using the directory, the checkpoint is
                unreadable or inconsistent, it was made by another recipe, or `resume` is False and the directory already holds a collection
                (nothing is ever deleted to make room for a fresh one).
        """
        if directory is None:
            return cls(None, recipe)
        made = missing_folders(directory)
        private_folder(directory)
        lock = _lock(directory)
        try:
            state = cls._load_locked(directory, resume, recipe)
        except BaseException:
            remove_made(made)
            os.close(lock)
            raise
        state._lock_fd, state._made = lock, made
        if delivers and state.stats.get("events"):
            state._delivered_before = state.stats["events"]
            logger.info("%s: resuming a collection that delivered %s events before",
                        directory, f"{state._delivered_before:,}")
        return state

    def release(self) -> None:
        """Let another process use the directory (the lock taken by `load`); a resumed run
        that delivered nothing says why (a notebook cell run twice got 0 events: trial Q)."""
        if self._delivered_before and self.stats.get("events") == self._delivered_before:
            logger.warning("%s: no new event; the %s events of earlier runs are not delivered "
                           "again (collect_to() stores every event in %s; a new output_dir "
                           "starts over)", self.directory, f"{self._delivered_before:,}",
                           self.directory / "events")
            self._delivered_before = 0
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextmanager
    def held(self) -> Iterator[None]:
        """The run in the block, then `release`. A run that fails (an error or an interrupt)
        before anything was committed removes the folders `load` made for it, so it leaves
        nothing behind (`output_folder`); a consumer that stops early is no failure."""
        try:
            yield
        except (Exception, KeyboardInterrupt):
            if self._lock_fd is not None:
                remove_made(self._made)
            raise
        finally:
            self.release()

    @classmethod
    def _load_locked(cls, directory: Path, resume: bool, recipe: dict) -> CollectionState:
        path = directory / CHECKPOINT_FILE
        if not path.exists():
            state = cls(directory, recipe)
            state._discard_uncommitted()
            return state
        if not resume:
            raise CheckpointError(
                f"{directory} already holds a collection ({path.name}); resume it, choose "
                "another output_dir, or remove that directory yourself to start over"
            )
        try:
            document = json.loads(path.read_text())
            if document["version"] != FORMAT_VERSION:
                raise ValueError(f"format version {document['version']!r}, this code reads "
                                 f"{FORMAT_VERSION}")
            state = cls(
                directory, recipe=document["recipe"], secret=int(document["secret"]),
                positions=document["positions"],
                stats=document["stats"], parts=int(document["parts"]),
                quarantine_bytes=int(document["quarantine_bytes"]),
                seen_first=int(document["seen_first"]), seen_next=int(document["seen_next"]),
            )
            # An edited count would delete committed parts or skip events (red-team trial).
            counts = [state.parts, state.quarantine_bytes, state.seen_first,
                      state.seen_next - state.seen_first, *(
                          v for streams in state.positions.values() for at in streams.values()
                          for k, v in at.items() if k in ("offset", "line", "record"))]
            if any(not isinstance(n, int) or n < 0 for n in counts):
                raise ValueError("a negative or non-integer count or position")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{path}: unreadable checkpoint ({exc}); move it away to start "
                                  "a fresh collection") from exc
        if state.recipe != recipe:
            changed = sorted(k for k in recipe.keys() | state.recipe.keys()
                             if recipe.get(k) != state.recipe.get(k))
            inner = [p for p in changed_entries(state.recipe, recipe) if p not in changed]
            where = f": {', '.join(inner[:4])}" if inner else ""
            raise CheckpointError(
                f"{directory} holds a collection made with other settings ({', '.join(changed)} "
                f"differ{where}); resuming it would mix, skip or repeat events, so use a new "
                "output_dir"
            )
        for index in range(state.seen_first, state.seen_next):
            seen_file = directory / "seen" / f"{index:06d}.npy"
            try:
                state.seen.add(np.load(seen_file, allow_pickle=False))
            except (OSError, ValueError) as exc:
                raise CheckpointError(f"{seen_file}: missing or corrupt ({exc}); the checkpoint "
                                      "cannot be trusted") from exc
        state._discard_uncommitted()
        return state

    def _discard_uncommitted(self) -> None:
        """Remove what a crash left after the last commit."""
        directory = self._require_dir()
        for inner in (directory / "seen", directory / "events"):
            check_not_link(inner)  # files are deleted there: never through a planted link
        for folder in (directory, directory / "seen", directory / "events"):
            # Temporary files of atomic writes a killed process never renamed into place.
            for leftover in folder.glob(".*.tmp") if folder.is_dir() else ():
                leftover.unlink()
        seen_dir = directory / "seen"
        for path in _numbered(seen_dir, ".npy"):
            if not self.seen_first <= int(path.stem) < self.seen_next:
                path.unlink()
        for path in _numbered(directory / "events", ".parquet", prefix="part-"):
            if int(path.stem.removeprefix("part-")) >= self.parts:
                path.unlink()
        # Never through a link: a planted one would have the resume truncate, and later
        # appends write, whatever file it points to.
        if not os.path.lexists(self.quarantine_path):
            if self.quarantine_bytes:
                raise CheckpointError(f"{self.quarantine_path} has 0 bytes but the checkpoint "
                                      f"recorded {self.quarantine_bytes}; quarantined records "
                                      "were lost")
            return
        fd = open_in_place(self.quarantine_path, os.O_WRONLY)
        try:
            size = os.fstat(fd).st_size
            if size < self.quarantine_bytes:
                raise CheckpointError(f"{self.quarantine_path} has {size} bytes but the "
                                      f"checkpoint recorded {self.quarantine_bytes}; "
                                      "quarantined records were lost")
            if size > self.quarantine_bytes:
                os.ftruncate(fd, self.quarantine_bytes)
                os.fsync(fd)
        finally:
            os.close(fd)

    def append_quarantine(self, data: bytes) -> None:
        """Append quarantined records to quarantine.jsonl, durably (before the checkpoint that
        counts these bytes)."""
        with open(self.quarantine_path, "ab", opener=_append_safely) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        self.quarantine_bytes += len(data)

    def write_progress(self, progress: dict) -> None:
        if self.directory is None:
            return
        with atomic_write(self.directory / "progress.json", durable=False) as handle:
            handle.write(orjson.dumps({**progress, "updated_at": time.time()}))


def _append_safely(path: str, flags: int) -> int:
    """`open` opener: append, never through a link (see `open_in_place`)."""
    return open_in_place(path, os.O_WRONLY | os.O_APPEND)


def _numbered(directory: Path, suffix: str, prefix: str = "") -> Iterator[Path]:
    if not directory.is_dir():
        return iter(())
    return (p for p in directory.iterdir()
            if p.name.startswith(prefix) and p.name.endswith(suffix)
            and p.stem.removeprefix(prefix).isascii() and p.stem.removeprefix(prefix).isdigit())
