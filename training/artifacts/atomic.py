"""Every file this package writes goes through `atomic_write`: all of it, or none of it.

A temporary file in the same folder (`.<name>.<pid>.tmp`), fsync, then `os.replace`, so a crash
leaves either the old file or the new one, never half of one.

Writes never follow a link someone could plant (DESIGN.md principle 8). The temporary file is
created exclusively and without following links (`O_CREAT | O_EXCL | O_NOFOLLOW`): whatever is
already at its name (a link, another user's file, a hard link to some other file) makes the
write fail with `UnsafePathError` naming it, and nothing is written through it. The one thing
replaced there is a stale temporary file of this user's own, left by a killed run of a process
that had the same pid. `os.replace` then renames over the target itself (a link at the target's
name is replaced, not followed).

A killed run's temporary files would stay forever: the first write of a process into a folder
removes the `.<name>.<pid>.tmp` files there whose pid is dead (`sweep_temporaries`), under the
rule above (regular files of this user with no other name; a live pid's file is never touched),
and the folders of that name of this user (a set of files staged by `training.artifacts.file_set`).

An error of the write names the file asked for, never the temporary name, which is ours:
"PATH: cannot be written (REASON)" (`write_error`), the same for a set of files.

Files that are written in place rather than replaced (the collection's quarantine.jsonl, its
lock) are opened with `open_in_place`, under the same rules.

Every file is created readable by this user only (0600, whatever the umask): events, scores,
alerts, incidents, features, models and reports all hold what the input held (addresses,
ports, command lines), and a file that replaces another gets that mode too. A folder an
atomic write creates for its file is 0700.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from training.errors import ConfigError, PipelineError, UnsafePathError, WriteError

PRIVATE = 0o600
PRIVATE_FOLDER = 0o700
_SHARED = 0o666  # before the umask, as open() creates files
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_in_flight: set[str] = set()  # temporary files this process is writing now
_in_flight_lock = threading.Lock()
_TEMPORARY = re.compile(r"^\..+\.(\d+)\.tmp$")
_swept: set[str] = set()  # folders this process has swept
# A file system's refusals to store bytes: raised by a write or fsync, they name no file.
# (Not EIO: a failing read raises it too, and a bad input disk is no output's fault.)
_STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def private_folder(path: str | Path) -> None:
    """Make the folder `path` and its missing parents, each 0700 whatever the umask
    (`mkdir(parents=True)` gives the parents the umask's mode, as `mkdir -p` does)."""
    path = Path(path)
    missing = [p for p in (path, *path.parents) if not os.path.lexists(p)]
    for folder in reversed(missing):
        try:
            folder.mkdir(PRIVATE_FOLDER)
        except FileExistsError:
            pass  # made meanwhile by another process
    if not path.is_dir():  # as mkdir(exist_ok=True) says of a file in the way
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))


def temporary_path(path: Path) -> Path:
    """The temporary name `atomic_write` uses for `path` in this process."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb", durable: bool = True,
                 private: bool = True) -> Iterator[IO]:
    """Open a temporary sibling of `path` for writing; on success, rename it over `path`.

    On an exception the temporary file is removed and `path` is left untouched. `durable`
    also fsyncs the file and its folder, so the new content survives a power cut; files that
    only report progress skip that cost.

    Args:
        path: the file to write.
        mode: "wb", or "w" for UTF-8 text.
        durable: fsync the file and its folder.
        private: create the file readable by this user only (0600), as every file of this
            package is; False only for a file meant to be shared (0666 less the umask).

    Raises:
        UnsafePathError: something other than this user's own stale temporary file is at the
            temporary name (see the module docstring); nothing was written.
        WriteError: the file cannot be written (`write_error`).
    """
    if mode not in ("wb", "w"):
        raise ConfigError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    private_folder(path.parent)
    if str(path.parent) not in _swept:
        sweep_temporaries(path.parent)
    tmp = temporary_path(path)
    with _in_flight_lock:
        if str(tmp) in _in_flight:
            raise ConfigError(f"{path} is already being written by this process")
        _in_flight.add(str(tmp))
    created = False

    def opener(name: str, flags: int) -> int:
        # Through open(), not os.fdopen: the path stays visible to code that watches writes
        # by file name (the reliability suite's fault injection).
        nonlocal created
        fd = _create(Path(name), PRIVATE if private else _SHARED)
        created = True
        return fd

    try:
        with open(tmp, mode, opener=opener,
                  **({"encoding": "utf-8"} if mode == "w" else {})) as handle:
            yield handle
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if created:  # never a file someone else put there
            tmp.unlink(missing_ok=True)
        error = write_error(exc, tmp, path)
        if error is None:
            raise
        raise error from exc
    finally:
        with _in_flight_lock:
            _in_flight.discard(str(tmp))
    if durable:
        fsync_dir(path.parent)


def write_error(exc: BaseException, staged: Path, path: Path,
                nameless: Path | None = None) -> WriteError | None:
    """`exc`, raised while `path` was written through `staged` (its temporary file, or the
    staging folder of a set of files), as an error of `path`: "PATH: cannot be written
    (REASON)". For an OSError that names `staged` (a file in the folder: the file of that name
    beside it), or no file but a file system's refusal to store bytes (no space left, over a
    quota: then of `nameless`, `path` when None); None for any other exception, which names
    what it is about (an UnsafePathError names the planted file on purpose).
    """
    if not isinstance(exc, OSError) or (isinstance(exc, PipelineError)
                                        and not isinstance(exc, WriteError)):
        return None
    if exc.filename is None:
        target = (nameless or path) if exc.errno in _STORAGE_ERRNOS else None
    else:
        named = Path(os.fsdecode(exc.filename))
        target = (path if named == staged else
                  path.with_name(named.name) if named.parent == staged else None)
    if target is None:
        return None
    return WriteError(exc.errno, exc.strerror or str(exc), str(target))


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists (on this machine's pid namespace)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files of atomic writes in `folder` whose process is dead.

    Returns:
        the files removed.
    """
    _swept.add(str(folder))
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = _TEMPORARY.match(name)
        if match is None or int(match.group(1)) == os.getpid() or pid_alive(int(match.group(1))):
            continue
        stale = folder / name
        try:
            info = os.lstat(stale)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid():  # a staged file set
            shutil.rmtree(stale, ignore_errors=True)  # never through a link
            removed.append(stale)
        elif _own_stale_file(stale):
            stale.unlink(missing_ok=True)
            removed.append(stale)
    return removed


def _create(tmp: Path, permissions: int) -> int:
    """Create `tmp` exclusively, replacing only this user's own stale temporary file."""
    try:
        return os.open(tmp, _CREATE, permissions)
    except FileExistsError:
        if not _own_stale_file(tmp):
            raise UnsafePathError(f"{tmp}: {_describe(tmp)} is already at this write's "
                                  "temporary name, and this process writes only to files it "
                                  "creates itself; nothing was written. Check who put it there, "
                                  "remove it, and run again") from None
    tmp.unlink()  # a killed run of ours left it (same user, same pid); no link to follow
    try:
        return os.open(tmp, _CREATE, permissions)
    except FileExistsError:  # planted again between the two calls
        raise UnsafePathError(f"{tmp}: something keeps appearing at this write's temporary "
                              "name; nothing was written. Check who writes into "
                              f"{tmp.parent}") from None


def _own_stale_file(path: Path) -> bool:
    """A regular file of this user with no other name: what a killed write of ours leaves."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return True  # gone already: creating it again is safe
    return (stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid()
            and info.st_nlink == 1)


def _describe(path: Path) -> str:
    try:
        info = os.lstat(path)
    except OSError:
        return "a file"
    if stat.S_ISLNK(info.st_mode):
        return f"a symbolic link (to {os.readlink(path)})"
    if not stat.S_ISREG(info.st_mode):
        return f"a {file_kind(info.st_mode)}"
    if info.st_uid != os.geteuid():
        return f"a file of another user (uid {info.st_uid})"
    return f"a file with {info.st_nlink} names (a hard link to another file)"


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words ("FIFO", "socket", ...)."""
    for test, name in ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISLNK, "symbolic link")):
        if test(mode):
            return name
    return "regular file" if stat.S_ISREG(mode) else "special file"


def read_regular(path: str | Path) -> bytes:
    """The bytes of `path`, a regular file. Opened without blocking first: a FIFO in place of
    a model's JSON would block the read until someone writes to it (red-team trial).

    Raises:
        FileNotFoundError: missing; OSError: unreadable, or not a regular file (its strerror
        says what it is: "a FIFO, not a regular file").
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"a {file_kind(mode)}, not a regular file", str(path))
        os.set_blocking(fd, True)
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read()
    finally:
        os.close(fd)


def open_in_place(path: str | Path, flags: int, private: bool = True) -> int:
    """A file descriptor for a file this package updates in place (appends to, truncates or
    locks), created if missing; `flags` are os.open flags (O_WRONLY | O_APPEND, O_RDWR, ...).

    Never through a link, never a special file (a FIFO would block), never a file with other
    names; a private file that has become readable by others is made private again.

    Raises:
        UnsafePathError: `path` is a link, not a regular file, or a hard link to another file.
    """
    path = Path(path)
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     PRIVATE if private else _SHARED)
    except OSError:
        if os.path.islink(path):
            raise UnsafePathError(f"{path}: {_describe(path)}; this file is written in place, "
                                  "so it must be a regular file of its own, never a link: "
                                  "check who replaced it, remove the link, and run again"
                                  ) from None
        if os.path.exists(path) and not os.path.isfile(path):
            raise UnsafePathError(f"{path}: {_describe(path)}, not a regular file; remove it "
                                  "and run again") from None
        raise
    info = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = f"a {file_kind(info.st_mode)}, not a regular file"
    elif info.st_nlink != 1:
        problem = f"a file with {info.st_nlink} names (a hard link to another file)"
    if problem is not None:
        os.close(fd)
        raise UnsafePathError(f"{path}: {problem}; it is written in place, so it must be a "
                              "regular file of its own: check who replaced it, remove it, and "
                              "run again")
    os.set_blocking(fd, True)
    if private and stat.S_IMODE(info.st_mode) & 0o077 and info.st_uid == os.geteuid():
        os.fchmod(fd, PRIVATE)
    return fd


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
