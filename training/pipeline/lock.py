"""One pipeline run at a time per working directory.

Two runs on one working directory share its checkpoints/, features/ and splits/: one would
register the other's half-trained checkpoint. So a run holds a POSIX record lock on
`<workdir>/.pipeline.lock` for its whole length, with its pid written in the file, and a second
run refuses at start, naming that pid. The kernel drops the lock when its holder exits, killed
or not, so a crash never leaves the directory locked.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from training.artifacts.atomic import open_in_place, private_folder
from training.errors import PipelineError

LOCK_FILE = ".pipeline.lock"


class WorkdirBusyError(PipelineError, RuntimeError):
    """Another pipeline run holds the working directory."""


@contextmanager
def workdir_lock(workdir: Path) -> Iterator[None]:
    """Hold `workdir` for this process until the block ends.

    Raises:
        WorkdirBusyError: another process holds it; the message names its pid.
    """
    private_folder(workdir)
    fd = open_in_place(workdir / LOCK_FILE, os.O_RDWR)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # EAGAIN or EACCES: held by another process
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            raise WorkdirBusyError(
                f"{workdir} is in use by another pipeline run (pid {holder}, holding "
                f"{LOCK_FILE}); wait for it to finish or use another workdir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
