"""Following growing log files: new whole lines as canonical events, across log rotation.

    tail = Tail([DataSource("zeek", "zeek", {"path": "/var/log/zeek/current"})])
    for read in tail.poll():                # whatever whole lines were appended since
        score(read.canonical.table)
        commit(tail.state())                # positions to store with the results

A followed file is known by its device and inode, not by its name: Zeek and Suricata rotate by
renaming the live file and opening a new one under the old name. When the name points to a new
inode, the old file is looked up by its inode in the same folder, read to its end, then the new
file is read from its start. Only whole lines are read from a live file (a writer's half-written
last line waits for its newline); a rotated file is read to its end.

Reading reuses each source's own parser (`Source.read`) on the file cut at the last line break,
so positions (offset, line, record), event ids (Zeek "conn:<uid>") and quarantine reasons are
those of a batch collection. A position holds a digest of the file's first bytes: a recycled
inode (the old file deleted, a new one given its number) starts from the beginning, not at the
old offset. Compressed (.gz) files are finished files and are not followed. The scorer's own
files (its outputs and state folder, `own`) are never read, even inside a followed folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

import numpy as np

from training.collection.canonical import Canonical, canonicalize
from training.errors import ConfigError, SourceError
from training.sources import create_source
from training.sources.base import START, FileSource
from training.sources.config import DataSource
from training.sources.files import ByteStream, check_text

logger = logging.getLogger(__name__)

HEAD_BYTES = 256  # digest of a file's first bytes: tells a recycled inode from the file we read
MAX_READ = 1 << 20  # bytes per file per poll (~10k Zeek conn lines): bounded batches


@dataclass
class Position:
    """Where reading of one file stands.

    Attributes:
        source: the source (its name) the file belongs to.
        path: where the file was last seen.
        dev, ino: the file's identity.
        offset, line, record: the read position (as in a collection checkpoint).
        head: sha256 of the file's first `head_len` bytes, once known.
        mtime_ns: the file's modification time when last read.
    """

    source: str
    path: str
    dev: int
    ino: int
    offset: int = 0
    line: int = 1
    record: int = 0
    head: str = ""
    head_len: int = 0
    mtime_ns: int = 0

    @property
    def key(self) -> tuple[int, int]:
        return (self.dev, self.ino)

    def start(self) -> dict:
        return {"offset": self.offset, "line": self.line, "record": self.record}


@dataclass
class Read:
    """Events read from one file in one poll; `position` is where reading stands after them,
    `lines` the line (or row) of the file each event of `canonical.table` was read from."""

    position: Position
    canonical: Canonical
    lines: np.ndarray


class _Moved(Exception):
    """The name no longer holds the file being read (rotated in between)."""


class _LimitedStream(ByteStream):
    """A file's bytes up to `limit`: the part of a growing file that holds whole lines."""

    def __init__(self, path: str, limit: int, max_bytes: int, key: tuple[int, int]) -> None:
        super().__init__(path, max_bytes)
        info = os.fstat(self._raw.fileno())
        if (info.st_dev, info.st_ino) != key:
            self.close()
            raise _Moved(path)
        self.limit = limit

    def read(self, size: int) -> bytes:
        return super().read(max(0, min(size, self.limit - self.offset)))

    def peek(self, size: int) -> bytes:
        return super().peek(max(0, min(size, self.limit - self.offset)))


class Tail:
    """New lines of the files of `sources` (files or folders), poll after poll.

    Args:
        sources: file sources (zeek, suricata, json, csv) whose paths are files or folders.
        positions: positions saved by an earlier run (`state()`), to resume from.
        own: the files and folders the scorer writes (outputs, alerts, the state folder):
            never read, though they lie in a followed folder, else the scorer would read its
            own output (and warn each time its state file is replaced).

    Raises:
        SourceError: a source that is not a file source.
        ConfigError: a file named as input is one of `own`.
    """

    def __init__(self, sources: list[DataSource], positions: list[dict] | None = None,
                 own: Sequence[str | Path] = ()) -> None:
        self.readers = {s.name: create_source(s) for s in sources}
        for reader in self.readers.values():
            if not isinstance(reader, FileSource):
                raise SourceError(f"--follow reads files; source {reader.name!r} is a "
                                  f"{reader.config.source_type.value} source")
        self.own = [os.path.realpath(p) for p in own]
        # Names followed as files: never taken for a rotated file, even while missing.
        self.live = {os.path.abspath(p) for r in self.readers.values()
                     for p in _as_list(r.options["path"]) if not os.path.isdir(p)}
        for path in self.live:
            if self.is_own(path):
                raise ConfigError(f"{path} is given as an input, but the scorer writes it "
                                  "(an output, the alerts or the state folder); give "
                                  "another output path")
        self.positions: dict[tuple[int, int], Position] = {}
        self.dormant: list[dict] = []  # positions of sources not given this run: kept as saved
        self.behind = False  # the last poll left bytes unread (a backlog): poll again at once
        self.lagging: set[tuple[int, int]] = set()  # the files (dev, ino) it left them in
        for saved in positions or ():
            position = Position(**saved)
            if self.is_own(position.path):
                continue  # an older run read the scorer's own files: not followed any more
            if position.source in self.readers:
                self.positions[position.key] = position
            else:  # its source is not given this run: kept for a run that gives it again
                logger.info("%s (source %r) is not followed in this run; its position is kept",
                            position.path, position.source)
                self.dormant.append(saved)

    def is_own(self, path: str) -> bool:
        """Whether `path` is one of the scorer's own files or lies in one of its folders."""
        real = os.path.realpath(path)
        return any(real == own or real.startswith(own + os.sep) for own in self.own)

    def state(self) -> list[dict]:
        """The positions to store with the results of the polls so far."""
        return [*(asdict(p) for p in self.positions.values()), *self.dormant]

    def poll(self) -> Iterator[Read]:
        """The events appended since the last poll, file by file (a rotated file first)."""
        self.behind = False
        self.lagging = set()
        seen: dict[tuple[int, int], tuple[str, str]] = {}  # identity -> (source, path)
        for name, reader in self.readers.items():
            for path in _current_files(reader):
                if self.is_own(path):
                    continue
                try:
                    info = os.stat(path)
                except FileNotFoundError:
                    continue  # rotated between the scan and here: found by inode below
                seen.setdefault((info.st_dev, info.st_ino), (name, path))
        for key, position in list(self.positions.items()):  # rotated away, gone, or elsewhere
            if key not in seen and not self._elsewhere(position):
                yield from self._finish(position, set(seen) | set(self.positions))
        for key, (name, path) in seen.items():
            position = self.positions.get(key)
            if position is None or not _same_file(position, path):
                position = Position(name, path, *key)
                self.positions[key] = position
            position.path = path
            yield from self._read(position, whole_lines=True)

    def _elsewhere(self, position: Position) -> bool:
        """Whether the file of `position` sits where it was, unrotated, though this poll did
        not list it (the inputs changed, or its source could not be listed just now): its
        position waits for a poll that lists it."""
        try:
            info = os.stat(position.path)
        except FileNotFoundError:
            return False
        return (info.st_dev, info.st_ino) == position.key and _same_file(position, position.path)

    def _finish(self, position: Position, known: set[tuple[int, int]]) -> Iterator[Read]:
        """Read a file that left the followed names to its end, then forget it; then the files
        rotated after it while nobody was reading (this scorer was stopped)."""
        folder = Path(position.path).parent
        path = _find_inode(folder, position.key)
        if path is None or not _same_file(position, path):
            logger.warning("%s was removed before it was read to its end (at byte %d); lines "
                           "written after that were not scored", position.path, position.offset)
        else:
            position.path = path
            yield from self._drain(position)
        del self.positions[position.key]
        for later in _rotated_after(position, known, self.live):
            if not self.is_own(later.path):
                yield from self._drain(later)

    def _drain(self, position: Position) -> Iterator[Read]:
        """Read a finished file to its end, `MAX_READ` bytes at a time: once forgotten, what
        was left in it could not be found again."""
        while True:
            before = position.offset
            yield from self._read(position, whole_lines=False)
            if position.offset == before:
                return

    def _read(self, position: Position, whole_lines: bool) -> Iterator[Read]:
        """New records of the file `position` reads, wherever it is now (by inode)."""
        reader = self.readers[position.source]
        path = _locate(position)
        if path is None:
            return
        try:
            handle = open(path, "rb")
        except FileNotFoundError:
            return  # renamed since: found by its inode at the next poll
        with handle:
            info = os.fstat(handle.fileno())
            if (info.st_dev, info.st_ino) != position.key:
                return  # the name changed hands between the lookup and the open
            size = info.st_size
            if size < position.offset:  # truncated in place (copytruncate): start over
                logger.warning("%s shrank from %d to %d bytes (truncated in place); reading "
                               "it from the start", path, position.offset, size)
                position.offset, position.line, position.record = 0, 1, 0
            limit = min(size, position.offset + MAX_READ)
            if limit < size:
                self.behind = True
                self.lagging.add(position.key)
            if whole_lines or limit < size:
                cut = _last_line_end(handle, position.offset, limit)
                if cut == position.offset and limit < size:  # one line longer than MAX_READ
                    cut = _last_line_end(handle, position.offset, size)
                limit = cut if cut > position.offset or whole_lines else size
            if limit <= position.offset:
                return
            if position.head_len < HEAD_BYTES:
                handle.seek(0)
                head = handle.read(min(HEAD_BYTES, size))
                position.head, position.head_len = hashlib.sha256(head).hexdigest(), len(head)
            position.mtime_ns = info.st_mtime_ns
        try:
            for raw in _read_raw(reader, position, limit):
                position.offset, position.line, position.record = (
                    raw.end["offset"], raw.end["line"], raw.end["record"])
                canonical = canonicalize(raw, reader, require_time=True)
                rows = canonical.source_rows  # the raw rows that became events
                yield Read(position, canonical, raw.lines if rows is None else raw.lines[rows])
        except _Moved:
            return  # renamed between the checks and the reader's open: next poll


def _read_raw(reader: FileSource, position: Position, limit: int) -> Iterator:
    """The source's own reader on the file cut at `limit`."""
    original = reader.open

    def open_limited(stream: str) -> ByteStream:
        opened = _LimitedStream(stream, limit, reader.options["max_decompressed_bytes"],
                                position.key)
        try:
            if opened.compressed:
                raise SourceError(f"{stream}: a compressed file cannot be followed; score it "
                                  "with `maximus-train score` without --follow")
            check_text(opened)
        except BaseException:
            opened.close()
            raise
        return opened

    reader.open = open_limited  # type: ignore[method-assign]  # only for this read
    try:
        start = position.start() if position.offset else dict(START)
        yield from reader.read(position.path, start)
    finally:
        reader.open = original  # type: ignore[method-assign]


def _current_files(reader: FileSource) -> list[str]:
    """The files a source names now; none while a followed file is being rotated."""
    try:
        return [p for p in reader.streams() if not p.endswith(".gz")]
    except SourceError:
        return []  # e.g. the live file renamed and not yet re-created


def _last_line_end(handle: IO[bytes], start: int, end: int) -> int:
    """The offset after the last line break in bytes [start, end); `start` if none."""
    at = end
    while at > start:
        chunk_start = max(start, at - 65536)
        handle.seek(chunk_start)
        found = handle.read(at - chunk_start).rfind(b"\n")
        if found >= 0:
            return chunk_start + found + 1
        at = chunk_start
    return start


def _locate(position: Position) -> str | None:
    """Where the file of `position` is now: its last path, else found by inode."""
    try:
        info = os.stat(position.path)
        if (info.st_dev, info.st_ino) == position.key:
            return position.path
    except FileNotFoundError:
        pass
    found = _find_inode(Path(position.path).parent, position.key)
    if found is not None:
        position.path = found
    return found


def _same_file(position: Position, path: str) -> bool:
    """Whether the file at `path` still starts as the one `position` was reading (an inode
    recycled for a new file does not). A file renamed meanwhile is not judged here."""
    if not position.head_len:
        return True
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if (info.st_dev, info.st_ino) != position.key:
                return True
            return hashlib.sha256(handle.read(position.head_len)).hexdigest() == position.head
    except OSError:
        return False


def _as_list(paths: object) -> list[str]:
    return [str(p) for p in paths] if isinstance(paths, list | tuple) else [str(paths)]


def _rotated_after(position: Position, known: set[tuple[int, int]], live: set[str]
                   ) -> list[Position]:
    """Siblings named like rotations of the file of `position` (conn.log: conn.*) and last
    written after it was: files rotated while nobody followed, oldest first. Followed names
    (`live`) are not rotated files, whatever their state."""
    stem = Path(position.path).name.split(".", 1)[0] + "."
    if not position.mtime_ns:
        return []
    found = []
    for entry in os.scandir(Path(position.path).parent):
        if (not entry.name.startswith(stem) or entry.name.endswith(".gz")
                or os.path.abspath(entry.path) in live):
            continue
        info = entry.stat(follow_symlinks=False)
        key = (info.st_dev, info.st_ino)
        if (entry.is_file(follow_symlinks=False) and key not in known and key != position.key
                and info.st_mtime_ns > position.mtime_ns):
            found.append((info.st_mtime_ns, Position(position.source, entry.path, *key)))
    return [p for _, p in sorted(found, key=lambda t: t[0])]


def _find_inode(folder: Path, key: tuple[int, int]) -> str | None:
    """The file in `folder` with identity `key` (a rotated log keeps its inode)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return None
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if (info.st_dev, info.st_ino) == key and entry.is_file(follow_symlinks=False):
            return entry.path
    return None
