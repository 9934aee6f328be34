"""Files that describe one result, replaced together: all of the new ones, or the old ones as
they were.

    with FileSet([scores, incidents, page_json, page_html, quarantine]) as folder:
        write_scores(folder / scores.name)       # any writer, under the files' own names
        write_incidents(folder / incidents.name)
    # each file written in `folder` has replaced its namesake; the set's others are gone

`atomic_write` keeps each file whole, but a run stopped between two of them (Ctrl-C, a full
disk) would leave new files beside old ones that describe other data. So the set is written
into a staging folder beside it, named as an atomic write of its first file names its
temporary file (`.<name>.<pid>.tmp`) and created under the same rules: never through
something planted at that name, and a killed run's own leftover there is replaced. Inside it
writers use the final names, so a sidecar is found beside its main file, a format is told by
its suffix, and one file can be read back to make the next.

On success the files are renamed into place in one short step with SIGINT and SIGTERM held
until it ends (`deferred_interrupts`); the files of the set that this run did not write (an
earlier run's quarantine file, when this one quarantined nothing) are removed in the same
step, so none can be taken for this run's. On an exception the folder goes and the files are
as they were. The folder of a process killed outright (SIGKILL) is removed by the next write
into its parent folder (`sweep_temporaries`: its pid is dead). An error names the file of the
set, never the staging folder (`write_error`).
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

# The rules of atomic_write's temporary names, shared: one registry of this process's names in
# use, and what counts as a killed run's own leftover.
from training.artifacts.atomic import (
    PRIVATE, PRIVATE_FOLDER, _describe, _in_flight, _in_flight_lock, _own_stale_file, fsync_dir,
    private_folder, sweep_temporaries, temporary_path, write_error,
)
from training.errors import ConfigError, UnsafePathError, WriteError

_HELD = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """SIGINT and SIGTERM held for the block, then delivered to the handlers they had: a
    Ctrl-C during the block raises KeyboardInterrupt once the block is done. Outside the main
    thread (where Python runs signal handlers) the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {}
    for sig in _HELD:
        if signal.getsignal(sig) is not None:  # None: a handler not set from Python, kept
            previous[sig] = signal.signal(sig, lambda signum, _: pending.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(pending):
            signal.raise_signal(sig)  # its own handler runs now: KeyboardInterrupt for SIGINT


class FileSet:
    """The files `paths` (one folder), written in a staging folder and published together
    (see the module docstring). Entering gives the staging folder.

    Raises:
        ConfigError: no paths, paths in more than one folder or named twice, or the set is
            being written by this process already.
        UnsafePathError: something other than this user's own leftover is at the staging
            folder's name; nothing was written.
        WriteError: a file of the set cannot be written (the error names it).
    """

    def __init__(self, paths: Sequence[str | Path]) -> None:
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ConfigError("paths must name at least one file, got none")
        if len({p.parent for p in self.paths}) != 1 or \
                len({p.name for p in self.paths}) != len(self.paths):
            raise ConfigError("paths must be distinct files of one folder, got "
                              + ", ".join(map(str, self.paths)))
        self.folder = temporary_path(self.paths[0])

    def __enter__(self) -> Path:
        parent = self.folder.parent
        private_folder(parent)
        sweep_temporaries(parent)  # a killed run's staging folder or temporary file
        with _in_flight_lock:
            if str(self.folder) in _in_flight:
                raise ConfigError(f"{self.paths[0]} is already being written by this process")
            _in_flight.add(str(self.folder))
        try:
            _make_folder(self.folder)
        except BaseException as exc:
            self._release()
            self._raise_for_file(exc)
        return self.folder

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        try:
            with deferred_interrupts():  # a second Ctrl-C must not cut the step short
                try:
                    if kind is None:
                        self._publish()
                finally:
                    shutil.rmtree(self.folder, ignore_errors=True)
        except BaseException as exc:
            self._raise_for_file(exc)
        finally:
            self._release()
        translated = None if error is None else self._write_error(error)
        if translated is not None:  # a writer's error naming its file in the folder
            raise translated from error

    def _raise_for_file(self, exc: BaseException) -> None:
        """Raise `exc`, as the error of the set's file when it names the staging folder."""
        error = self._write_error(exc)
        if error is None:
            raise exc
        raise error from exc

    def _write_error(self, exc: BaseException) -> WriteError | None:
        # a full disk names no file: the folder, when the set has more than one
        return write_error(exc, self.folder, self.paths[0],
                           self.paths[0] if len(self.paths) == 1 else self.paths[0].parent)

    def _publish(self) -> None:
        """Each written file over its namesake, readable by this user only (0600, as every
        file written: a writer may have created it with the umask's mode); the set's files
        not written removed."""
        written = [p for p in self.paths if os.path.lexists(self.folder / p.name)]
        for path in self.paths:
            if path not in written:
                path.unlink(missing_ok=True)
        for path in written:
            staged = self.folder / path.name
            if stat.S_ISREG(os.lstat(staged).st_mode):  # in our 0700 folder: nothing planted
                os.chmod(staged, PRIVATE)
            os.replace(staged, path)
        fsync_dir(self.folder.parent)

    def _release(self) -> None:
        with _in_flight_lock:
            _in_flight.discard(str(self.folder))


def _make_folder(folder: Path) -> None:
    """Create `folder` (0700), replacing only this user's own leftover at its name."""
    try:
        os.mkdir(folder, PRIVATE_FOLDER)
        return
    except FileExistsError:
        info = os.lstat(folder)
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid():
            shutil.rmtree(folder)  # a killed run of ours (same pid): never through a link
        elif _own_stale_file(folder):
            folder.unlink(missing_ok=True)
        else:
            raise UnsafePathError(f"{folder}: {_describe(folder)} is already at this write's "
                                  "temporary name, and this process writes only to files it "
                                  "creates itself; nothing was written. Check who put it "
                                  "there, remove it, and run again") from None
    try:
        os.mkdir(folder, PRIVATE_FOLDER)
    except FileExistsError:  # planted again between the two calls
        raise UnsafePathError(f"{folder}: something keeps appearing at this write's temporary "
                              f"name; nothing was written. Check who writes into "
                              f"{folder.parent}") from None
