"""Following growing log files: new whole lines as canonical events, across log rotation.

    tail = Tail([DataSource("zeek", "zeek", {"path": "/var/log/zeek/current"})])
    for read in tail.poll():                # whatever whole lines were appended since
        score(read.canonical.table)
    commit(tail.state())                    # positions to store with the results (at once
                                            # when tail.forgot: a file finished and let go)

A followed file is known by its device and inode, not by its name: Zeek and Suricata rotate by
renaming the live file and opening a new one under the old name. When the name points to a new
inode, the old file is looked up by its inode in the same folder, read to its end, then the new
file is read from its start. A file renamed after a poll listed it (a scorer far behind, the
sensor rotating meanwhile) is read where it went and finished at the next poll: its position
is marked rotated, so it is never left waiting under its new name, in this run or the next.
Only whole lines are read from a live file (a writer's half-written last line waits for its
newline); a rotated file is read to its end. A file removed before it was read to its end is
warned of, with the bytes known to be left in it, and counted (`lost_files`, `lost_bytes`).

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
from training.scoring.tail_files import (HEAD_BYTES, Position, find_inode, locate, rotated_after,
                                         same_file)
from training.sources import create_source
from training.sources.base import START, FileSource
from training.sources.config import DataSource
from training.sources.files import ByteStream, check_text

logger = logging.getLogger(__name__)

MAX_READ = 1 << 20  # bytes per file per poll (~10k Zeek conn lines): bounded batches


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

    def __init__(self, path: str, limit: int, max_bytes: int, key: tuple[int, int],
                 growing: bool) -> None:
        super().__init__(path, max_bytes)
        info = os.fstat(self._raw.fileno())
        if (info.st_dev, info.st_ino) != key:
            self.close()
            raise _Moved(path)
        self.limit, self.growing = limit, growing

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
            if os.path.isfile(path):  # refused before any output is created
                with ByteStream(path) as stream:
                    _refuse_compressed(stream)
        self.positions: dict[tuple[int, int], Position] = {}
        self.dormant: list[dict] = []  # positions of sources not given this run: kept as saved
        self.behind = False  # the last poll left bytes unread (a backlog): poll again at once
        # The last poll forgot a file it finished (rotated away): a checkpoint must say so
        # before the file can be removed, or a restart would look for it in vain.
        self.forgot = False
        self.lagging: set[tuple[int, int]] = set()  # the files (dev, ino) it left them in
        # Files removed before they were read to their end, and the bytes known to have been
        # left in them (each also warned of): what could not be scored.
        self.lost_files = 0
        self.lost_bytes = 0
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
        # The files there now, at their start, in the checkpoint taken before reading: a run
        # killed before its next one finds them by inode, though they were rotated meanwhile.
        for key, (name, path, size) in self._listed().items():
            self.positions.setdefault(key, Position(name, path, *key, size=size))

    def is_own(self, path: str) -> bool:
        """Whether `path` is one of the scorer's own files or lies in one of its folders."""
        real = os.path.realpath(path)
        return any(real == own or real.startswith(own + os.sep) for own in self.own)

    def without_records(self) -> list[str]:
        """Followed files that gave no record so far (empty, or a header alone)."""
        return [p.path for p in self.positions.values() if not p.record and not p.rotated]

    def unfinished(self) -> dict[str, int]:
        """Followed files whose last bytes end no line yet (a writer's line in progress, or a
        file whose last line has no newline), with how many bytes wait for it, as of the last
        poll: they are read once their line ends, never before. Whole lines not read yet (a
        backlog) are not counted."""
        waiting = {}
        for position in self.positions.values():
            path = locate(position)
            if position.size <= position.offset or position.rotated or path is None:
                continue
            try:
                with open(path, "rb") as handle:
                    cut = _last_line_end(handle, position.offset, position.size)
            except FileNotFoundError:
                continue  # rotated away since: its last line is read when it is finished
            if position.size > cut:
                waiting[position.path] = position.size - cut
        return waiting

    def state(self) -> list[dict]:
        """The positions to store with the results of the polls so far."""
        return [*(asdict(p) for p in self.positions.values()), *self.dormant]

    def poll(self) -> Iterator[Read]:
        """The events appended since the last poll, file by file (a rotated file first)."""
        self.behind = self.forgot = False
        self.lagging = set()
        seen = self._listed()
        for key, position in list(self.positions.items()):  # rotated away, gone, or elsewhere
            if key not in seen and not self._elsewhere(position):
                yield from self._finish(position, set(seen) | set(self.positions))
        for key, (name, path, size) in seen.items():
            position = self.positions.get(key)
            if position is None or not same_file(position, path):
                position = Position(name, path, *key, size=size)
                self.positions[key] = position
            position.path, position.rotated = path, False  # listed: followed under this name
            # Renamed after the listing (rotated): read by inode here, finished at the next poll.
            yield from self._read(position, whole_lines=True)

    def _listed(self) -> dict[tuple[int, int], tuple[str, str, int]]:
        """The files the sources name now: identity (dev, inode) -> (source, path, size)."""
        seen: dict[tuple[int, int], tuple[str, str, int]] = {}
        for name, reader in self.readers.items():
            for path in _current_files(reader):
                if self.is_own(path):
                    continue
                try:
                    info = os.stat(path)
                except FileNotFoundError:
                    continue  # rotated between the scan and here: found by inode
                seen.setdefault((info.st_dev, info.st_ino), (name, path, info.st_size))
        return seen

    def _elsewhere(self, position: Position) -> bool:
        """Whether the file of `position` sits where it was, unrotated, though this poll did
        not list it (the inputs changed, or its source could not be listed just now): its
        position waits for a poll that lists it. A file found renamed is not waited for,
        though it sits where it was last seen: nothing will list it under its new name."""
        if position.rotated:
            return False
        try:
            info = os.stat(position.path)
        except FileNotFoundError:
            return False
        return (info.st_dev, info.st_ino) == position.key and same_file(position, position.path)

    def _finish(self, position: Position, known: set[tuple[int, int]]) -> Iterator[Read]:
        """Read a file that left the followed names to its end, then forget it; then the files
        rotated after it while nobody was reading (this scorer was stopped)."""
        folder = Path(position.path).parent
        path = find_inode(folder, position.key)
        if path is None or not same_file(position, path):
            unread = max(0, position.size - position.offset)
            self.lost_files += 1
            self.lost_bytes += unread
            logger.warning("%s was removed before it was read to its end: %d bytes left unread "
                           "(from byte %d to its size when last seen, %d; any written after "
                           "that too) were not scored", position.path, unread, position.offset,
                           position.size)
        else:
            position.path, position.rotated = path, True
            yield from self._drain(position)
        del self.positions[position.key]
        self.forgot = True
        for later in rotated_after(position, known, self.live):
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
        path = locate(position)
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
            size = position.size = info.st_size
            if size < position.offset:  # truncated in place (copytruncate): start over
                logger.warning("%s shrank from %d to %d bytes (truncated in place); reading "
                               "it from the start", path, position.offset, size)
                position.offset, position.line, position.record = 0, 1, 0
            limit = min(size, position.offset + MAX_READ)
            capped = limit < size
            if capped:
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
            # A record longer than MAX_READ (a CSV field of many lines) ends no read that
            # stops at it: then it is read with all that the file holds.
            whole = limit if not capped else _last_line_end(
                handle, position.offset, size) if whole_lines else size
        before = position.offset
        # A live file, or one read in part: a record may go on past `limit`.
        yield from self._records(reader, position, limit, whole_lines or capped)
        if position.offset == before and whole > limit:
            yield from self._records(reader, position, whole, whole_lines)

    def _records(self, reader: FileSource, position: Position, limit: int, growing: bool
                 ) -> Iterator[Read]:
        try:
            for raw in _read_raw(reader, position, limit, growing):
                position.offset, position.line, position.record = (
                    raw.end["offset"], raw.end["line"], raw.end["record"])
                canonical = canonicalize(raw, reader, require_time=True)
                rows = canonical.source_rows  # the raw rows that became events
                yield Read(position, canonical, raw.lines if rows is None else raw.lines[rows])
        except _Moved:
            return  # renamed between the checks and the reader's open: next poll


def _refuse_compressed(stream: ByteStream) -> None:
    if stream.compressed:  # its bytes are not appended lines
        raise SourceError(f"{stream.name}: a compressed file cannot be followed; score it "
                          "with `maximus-train score` without --follow")


def _read_raw(reader: FileSource, position: Position, limit: int, growing: bool) -> Iterator:
    """The source's own reader on the file cut at `limit`."""
    original = reader.open

    def open_limited(stream: str) -> ByteStream:
        opened = _LimitedStream(stream, limit, reader.options["max_decompressed_bytes"],
                                position.key, growing)
        try:
            _refuse_compressed(opened)
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


def _as_list(paths: object) -> list[str]:
    return [str(p) for p in paths] if isinstance(paths, list | tuple) else [str(paths)]
