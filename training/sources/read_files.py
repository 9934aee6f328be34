"""The files a command reads, so that none of them is replaced by what it writes.

An output that names an input replaced it, silently and exit 0: `score --input json:ev.jsonl
--output ev.jsonl` wrote the scores over the events just scored, `evaluate --source
json:ev.json --report ev` the report's JSON over the events, and `evaluate --model m.pt
--report m` the report over the model's sidecar (its threshold, calibration and FeatureSpec),
which no longer loaded (red-team trial). Commands check their outputs against their inputs
before any work:

    refuse_replacing_inputs(out, output_files(out), source_files(sources), "output")

A file is an input when a file source reads it (named, or found in the folder or glob it
scans) or the command was given it (a model file and its sidecar). Files are compared by
device and inode, so another spelling of a path (`./ev.jsonl`, a linked folder) is the same
file; an output that is a symbolic link is replaced as a link (`atomic_write`), which leaves
its target alone, so only the link itself counts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from training.errors import ConfigError, SourceError

__all__ = ["refuse_replacing_inputs", "source_files"]


def source_files(sources: Sequence[object]) -> list[Path]:
    """The files the file sources among `sources` (`DataSource` configs) read now. A source
    that cannot be read (no such path, a bad setting) adds none: reading it says why."""
    from training.sources import FileSource, create_source

    files: list[Path] = []
    for config in sources:
        try:
            reader = create_source(config)
            if isinstance(reader, FileSource):
                files.extend(Path(stream) for stream in reader.streams())
        except (ConfigError, SourceError, OSError):
            continue
    return files


def refuse_replacing_inputs(given: str | Path, written: Iterable[str | Path],
                            inputs: Iterable[str | Path], flag: str,
                            fix: str = "give it another path") -> None:
    """Refuse when a file of `written` (what `flag` `given` makes the command write) is one
    of `inputs`, naming the flag, both files and the fix. The message starts with the
    parameter's name, which the command line turns into the flag typed (`name_flags`).

    Raises:
        ConfigError: an output is an input; nothing was written.
    """
    read: dict[tuple[int, int], Path] = {}
    for path in inputs:
        for look in (os.lstat, os.stat):  # the name given, and the file behind a link
            try:
                found = look(path)
            except OSError:
                continue
            read.setdefault((found.st_dev, found.st_ino), Path(path))
    for path in written:
        try:
            found = os.lstat(path)
        except OSError:  # not there yet: nothing to replace
            continue
        same = read.get((found.st_dev, found.st_ino))
        if same is None:
            continue
        where = "" if os.path.abspath(path) == os.path.abspath(given) else \
            f"{given} writes {path}, "
        named = "" if os.path.abspath(same) == os.path.abspath(path) else f" ({same})"
        raise ConfigError(f"{flag} must not replace a file this command reads: {where}"
                          f"{'' if where else f'{path} is '}one of its inputs{named}; {fix}")
