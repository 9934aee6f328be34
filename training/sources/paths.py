"""A source's `path` (a file, a folder, a glob, or a list of them) expanded into the files to read.

Readers do not leave the folder they were pointed at unless told to (DESIGN.md principle 8): a
symbolic link found in a scanned folder, or matched by a glob, whose target lies outside that
folder (the glob's fixed leading folder) is skipped and reported, not read; the source's
`follow_symlinks` option reads them. Links that stay inside are read like the files they name.
A file named explicitly is read even when it is a link: the user named it.

Only regular files are read. A FIFO, socket or device named explicitly is refused ("not a
regular file"); found in a folder, it is skipped and reported, never opened (opening a FIFO
with no writer would block forever).
"""

from __future__ import annotations

import errno
import glob
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from training.artifacts.atomic import file_kind
from training.errors import ConfigError, SourceError


class Found(NamedTuple):
    """What a source's path expands to, each list sorted.

    Attributes:
        files: the regular files to read.
        skipped: files found in a folder that do not look like the format (patterns) or are
            not regular files.
        links: links leading outside the folder (or glob) they were found in, not followed.
    """

    files: list[Path]
    skipped: list[Path]
    links: list[Path]


def expand_paths(spec: str | Path | Sequence[str | Path], patterns: Sequence[str] | None = None,
                 follow_symlinks: bool = False, excluded: Sequence[str] = ()) -> Found:
    """Resolve files, folders (searched recursively, hidden entries left out) and globs.

    Args:
        spec: a path, a glob pattern, or a list of them.
        patterns: fnmatch patterns a file found in a folder must match; others are returned as
            skipped. Files named explicitly or by a glob are always taken.
        excluded: names of files found in a folder that are skipped though they match
            `patterns` (zeekctl's stdout.log beside Zeek's logs).
        follow_symlinks: also read links leading outside the folder they were found in (and
            search linked folders).

    Raises:
        SourceError: a path does not exist, is not a regular file or folder, or a glob matches
            nothing.
    """
    specs = [spec] if isinstance(spec, (str, Path)) else list(spec)
    if not specs:
        raise ConfigError("path must name at least one file, directory or glob, got []")
    files: set[Path] = set()
    skipped: set[Path] = set()
    links: set[Path] = set()
    for item in specs:
        text = str(item)
        if glob.has_magic(text):
            _expand_glob(text, follow_symlinks, files, skipped, links)
        elif os.path.isdir(text):
            _scan(Path(text), patterns, follow_symlinks, files, skipped, links, excluded)
        elif os.path.isfile(text):
            files.add(Path(text))
        elif os.path.lexists(text):
            raise SourceError(f"{text}: {_not_regular(text)}")
        else:
            raise SourceError(f"{text}: no such file or directory (from {os.getcwd()})")
    # A name that is not UTF-8 cannot go into a checkpoint or a report as it is: anyone able
    # to create such a file in a watched folder would stop every run. Skipped, shown escaped.
    foreign = {p for p in files if not _utf8(str(p))}
    skipped |= {Path(os.fsencode(p).decode("utf-8", "backslashreplace")) for p in foreign}
    files -= foreign
    return Found(sorted(files), sorted(skipped - files), sorted(links - files))


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # surrogate escapes of bytes that are not UTF-8
        return False
    return True


def _not_regular(path: str | Path) -> str:
    """Why an input that exists cannot be read, and what to give instead."""
    try:
        kind = file_kind(os.stat(path).st_mode)
    except OSError as exc:  # os.path.lexists saw the path itself: a link that does not resolve
        if exc.errno == errno.ENOENT:
            return (f"a symbolic link to {os.readlink(path)}, which does not exist; point it "
                    "at the file or give the file itself")
        # A loop of links (ELOOP), a target in a folder that cannot be searched (EACCES): not
        # a missing target, so not said to be one.
        return (f"a symbolic link to {os.readlink(path)}, which cannot be followed: "
                f"{exc.strerror}; point it at the file or give the file itself")
    return (f"not a regular file (a {kind}); readers take files, folders or globs of regular "
            "files: save its data to a file and give that")


def _inside(path: Path, root: str) -> bool:
    """Whether `path`'s target (links resolved) lies in the folder whose real path is `root`."""
    return os.path.commonpath([os.path.realpath(path), root]) == root


def _expand_glob(text: str, follow: bool, files: set[Path], skipped: set[Path],
                 links: set[Path]) -> None:
    base = os.path.realpath(_glob_base(text))
    matches = [Path(p) for p in glob.glob(text, recursive=True)]
    regular = [p for p in matches if os.path.isfile(p)]
    skipped.update(p for p in matches if os.path.lexists(p) and not os.path.isdir(p)
                   and not os.path.isfile(p))
    if not regular:
        raise SourceError(f"{text}: the pattern matches no files")
    for path in regular:
        (files if follow or _inside(path, base) else links).add(path)


def _glob_base(text: str) -> str:
    """The folder a glob searches: its leading components without wildcards."""
    parts = Path(text).parts
    fixed = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return str(Path(*fixed)) if fixed else "."


def _scan(root: Path, patterns: Sequence[str] | None, follow: bool, files: set[Path],
          skipped: set[Path], links: set[Path], excluded: Sequence[str] = ()) -> None:
    """Every non-hidden regular file under `root`, by the rules of the module docstring."""
    real_root = os.path.realpath(root)
    seen_folders = {real_root}
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise SourceError(f"{folder}: cannot list the folder: {exc.strerror}") from exc
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_symlink() and not _inside(path, real_root) and not follow:
                links.add(path)
                continue
            try:
                mode = os.stat(path).st_mode  # the link's target
            except OSError:
                skipped.add(path)  # a broken link
                continue
            if stat.S_ISDIR(mode):
                real = os.path.realpath(path)
                # A linked folder inside the root is reached through its real path already;
                # one outside (followed on request) is searched once, whatever links lead there.
                if (not entry.is_symlink() or follow) and real not in seen_folders:
                    seen_folders.add(real)
                    pending.append(path)
            elif not stat.S_ISREG(mode):
                skipped.add(path)
            elif (patterns is None or any(path.match(p) for p in patterns)) and \
                    entry.name not in excluded:
                files.add(path)
            else:
                skipped.add(path)
