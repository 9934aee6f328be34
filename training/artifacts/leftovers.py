"""Work folders in the system temporary folder that a killed run would leave behind.

A folder is named `<prefix><pid>-<random>`; making a new one first removes this user's
folders of the same prefix whose pid is dead (temporary files of atomic writes are swept by
`training.artifacts.atomic`).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

from training.artifacts.atomic import pid_alive


def work_folder(prefix: str) -> tempfile.TemporaryDirectory:
    """A `TemporaryDirectory` named `<prefix><pid>-...`, after removing dead runs' folders."""
    root = Path(tempfile.gettempdir())
    pattern = re.compile(re.escape(prefix) + r"(\d+)-")
    for entry in os.scandir(root):
        match = pattern.match(entry.name)
        if match is None or pid_alive(int(match.group(1))):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # removed meanwhile
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid():  # never through a link
            shutil.rmtree(entry.path, ignore_errors=True)
    return tempfile.TemporaryDirectory(prefix=f"{prefix}{os.getpid()}-")
