"""Folders this package makes or uses inside a folder it was given (an output, a workdir, a
state folder): real directories, never links.

The path a user gives may be a link (they gave it); a folder the package picks inside it
(`OUT/events`, `WORKDIR/checkpoints`, `OUTPUT.state`) must not be one: someone who can create
entries in a shared output tree could point it anywhere, and every write would go there.
`real_folder` makes such a folder and checks, without following links, that it is one.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from training.artifacts.atomic import private_folder
from training.errors import UnsafePathError


def real_folder(path: str | Path, instead: str = "give another output") -> Path:
    """Make `path` (and missing parents) if needed; refuse it unless it is a real directory.

    Args:
        path: a folder the package picks inside one it was given.
        instead: what the user can do other than removing it, for the message.

    Returns:
        `path`, as a Path.

    Raises:
        UnsafePathError: `path` is a symbolic link or not a directory; nothing was written.
    """
    path = Path(path)
    check_not_link(path, instead)  # before mkdir: exist_ok would accept a link to a folder
    try:
        private_folder(path)
    except FileExistsError:
        pass  # not a folder: said below
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):  # planted between the check and here
        check_not_link(path, instead)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafePathError(f"{path} is not a folder; the tool keeps its own files there: "
                              f"remove it or {instead}")
    return path


def check_not_link(path: str | Path, instead: str = "give another output") -> None:
    """Refuse `path` if it is a symbolic link (a missing path is fine).

    Raises:
        UnsafePathError: naming `path` and where the link points.
    """
    if os.path.islink(path):
        raise UnsafePathError(f"{path} is a symbolic link (to {os.readlink(path)}); the tool "
                              f"does not write through links it was not given: remove it or "
                              f"{instead}")
