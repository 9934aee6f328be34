"""Where a followed file is: its read position, found by device and inode across renames.

A file keeps its inode when a sensor rotates it (renames it and opens a new file under the old
name), so a position is keyed by (device, inode) and the file is looked up by inode in its
folder once its name holds another file. A digest of the file's first bytes tells the file that
was read from a new one given a recycled inode.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

HEAD_BYTES = 256  # digest of a file's first bytes: tells a recycled inode from the file we read


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
        size: the file's size when last looked at (what was known to be there to read).
        rotated: the file was found away from the name it was followed under (renamed by a
            rotation): it is read to its end and forgotten, never left waiting at its new
            name. Positions saved before this field existed load as not rotated.
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
    size: int = 0
    rotated: bool = False

    @property
    def key(self) -> tuple[int, int]:
        return (self.dev, self.ino)

    def start(self) -> dict:
        return {"offset": self.offset, "line": self.line, "record": self.record}


def locate(position: Position) -> str | None:
    """Where the file of `position` is now: its last path, else found by inode (then the file
    has been renamed: `position` is marked rotated and takes the new path)."""
    try:
        info = os.stat(position.path)
        if (info.st_dev, info.st_ino) == position.key:
            return position.path
    except FileNotFoundError:
        pass
    found = find_inode(Path(position.path).parent, position.key)
    if found is not None:
        position.path, position.rotated = found, True
    return found


def same_file(position: Position, path: str) -> bool:
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


def rotated_after(position: Position, known: set[tuple[int, int]], live: set[str]
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
            found.append((info.st_mtime_ns,
                          Position(position.source, entry.path, *key, rotated=True)))
    return [p for _, p in sorted(found, key=lambda t: t[0])]


def find_inode(folder: Path, key: tuple[int, int]) -> str | None:
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
