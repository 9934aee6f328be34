"""Fault injection inside a child process: a real SIGKILL or a real ENOSPC at a chosen write.

The child calls `install(spec)` before running a stage through its public API. Only the
operating-system boundary is patched: `open` (builtins and io, which pathlib uses) returns, for
files whose name matches the spec's pattern, a file object that counts the bytes written and, once
`after_bytes` have reached the file, writes what fits, flushes it to the kernel and then

* `kill`: sends itself SIGKILL (the process dies there, exactly as on an OOM kill or a power
  cut of the process; the partial temporary file is what a crash leaves on disk), or
* `enospc`: raises `OSError(ENOSPC)` from `write`, as a full disk does, or
* `pause`: creates the file `flag` and waits (at most a minute) until `flag + ".go"` exists,
  so a test can act while the stage is held at a known point (e.g. start a rival process).

`at="replace"` fires instead when a matching file is renamed into place (`os.replace` or
`os.rename`), just before the rename: the new content is complete but not installed.
`at="sql"` fires when SQLite starts executing a statement matching the pattern (through the
connection's trace callback): inside a transaction, after its earlier statements ran.
`at="sqlite"` (action "enospc") caps every SQLite connection's database at the pages it has
(`PRAGMA max_page_count`): a write that needs one more page fails with SQLite's own SQLITE_FULL,
the error it gives when the disk is full.

Nothing of the code under test is replaced; the stage runs as it does in production.
"""

from __future__ import annotations

import builtins
import errno
import fnmatch
import io
import os
import signal
import sqlite3
import sqlite3.dbapi2
import time
from pathlib import Path
from typing import Any

_real_open = builtins.open
_real_replace = os.replace
_real_rename = os.rename


def _matches(path: object, pattern: str) -> bool:
    try:
        name = os.fspath(path)
    except TypeError:  # a file descriptor
        return False
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    return fnmatch.fnmatch(Path(name).name, pattern)


def _fire(spec: dict, what: str) -> None:
    action = spec["action"]
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "pause":
        flag = Path(spec["flag"])
        flag.touch()
        go = flag.with_name(flag.name + ".go")
        deadline = time.monotonic() + 60
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), what)


class _FaultyFile:
    """A real file object whose writes fail once `limit` bytes are in the file."""

    def __init__(self, handle: Any, limit: int, spec: dict) -> None:
        self._handle = handle
        self._limit = limit
        self._spec = spec
        self._written = 0

    def write(self, data: Any) -> int:
        room = self._limit - self._written
        size = len(data)
        if size <= room:
            self._written += size
            return self._handle.write(data)
        if room > 0:
            self._handle.write(data[:room])
            self._written += room
        self._handle.flush()
        _fire(self._spec, self._handle.name)
        self._limit = float("inf")  # paused, then let go: the rest is written normally
        return self.write(data[room:]) + max(room, 0)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __enter__(self) -> _FaultyFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()

    def __iter__(self):
        return iter(self._handle)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


def install(spec: dict) -> None:
    """Arm one fault.

    Args:
        spec: {"action": "kill" | "enospc" | "pause", "pattern": fnmatch pattern on the file name,
            "at": "write" (default) | "replace" | "sql" (pattern on the statement),
            "nth": which matching file or statement (1-based, default 1),
            "after_bytes": bytes that reach the file first (default 0; "write" only),
            "persist": also every later matching file (a disk that stays full),
            "flag": the file a pause creates}.
    """
    action, pattern = spec["action"], spec["pattern"]
    if action not in ("kill", "enospc", "pause"):
        raise ValueError(f"action must be kill, enospc or pause, got {action!r}")
    nth = int(spec.get("nth", 1))
    persist = bool(spec.get("persist", False))
    seen = 0

    def armed(path: object) -> bool:
        nonlocal seen
        if not _matches(path, pattern):
            return False
        seen += 1
        return seen == nth or (persist and seen > nth)

    if spec.get("at") == "sqlite":
        real_connect = sqlite3.connect

        def full_connect(*args, **kwargs):
            conn = real_connect(*args, **kwargs)
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {max(pages, 1)}")
            return conn

        sqlite3.connect = sqlite3.dbapi2.connect = full_connect
        return

    if spec.get("at") == "sql":
        real_connect = sqlite3.connect

        def connect(*args, **kwargs):
            conn = real_connect(*args, **kwargs)

            def trace(sql: str) -> None:
                nonlocal seen
                if fnmatch.fnmatchcase(" ".join(sql.split()), pattern):
                    seen += 1
                    if seen == nth:
                        _fire(spec, sql)

            conn.set_trace_callback(trace)
            return conn

        sqlite3.connect = sqlite3.dbapi2.connect = connect  # SQLAlchemy uses dbapi2's
        return

    if spec.get("at", "write") == "replace":
        def replace(src, dst, *args, **kwargs):
            if armed(dst):
                _fire(spec, os.fspath(dst))
            return _real_replace(src, dst, *args, **kwargs)

        def rename(src, dst, *args, **kwargs):
            if armed(dst):
                _fire(spec, os.fspath(dst))
            return _real_rename(src, dst, *args, **kwargs)

        os.replace, os.rename = replace, rename
        return

    limit = int(spec.get("after_bytes", 0))

    def faulty_open(file, mode="r", *args, **kwargs):
        handle = _real_open(file, mode, *args, **kwargs)
        if any(c in mode for c in "wax+") and armed(file):
            return _FaultyFile(handle, limit, spec)
        return handle

    builtins.open = faulty_open
    io.open = faulty_open
