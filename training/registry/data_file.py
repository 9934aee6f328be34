"""Whether a version's training data file is still the one it was trained on.

A version records where its training data came from (`ModelMetadata.training_dataset`), and a
path is not the data: the pipeline writes every run's events to the same
`WORKDIR/events.parquet`, so the file a version names may hold a later run's events. At
registration the registry records a fingerprint of the file at that path
(`training_dataset_file`); `registry show` says when the file there no longer matches.

    recorded = fingerprint("w/events.parquet")  # {"path", "size", "sha256", "hashed"} or None
    note = change(recorded)   # None while the file matches, else "changed since registration: ..."

The fingerprint is the size and the sha256 of the first and last MiB (of the whole file when
it is at most 2 MiB). Registration does not otherwise read the data (it may come long after,
in another process) and `show` reads none: a full hash of a multi-GB capture at every
registration and every `show` would cost seconds to minutes. A run that writes other events
changes a Parquet file's footer (schema, row-group offsets, statistics: in the last MiB) and
almost always its size; a log that grows changes its size and tail. The modification time is
left out: a copy or a restore of the same bytes changes it, and would read as changed data.
An edit inside a large file that keeps its size and both ends is missed; the version's
`dataset_fingerprints` (sha256 of the split units themselves) identify exactly what it learnt
from.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

__all__ = ["ENDS", "change", "fingerprint"]

ENDS = 1 << 20  # bytes hashed at each end of a file larger than 2 * ENDS


def fingerprint(path: str | Path | None) -> dict[str, Any] | None:
    """The fingerprint of the regular file at `path` (see the module docstring): its absolute
    path, size, sha256 and what was hashed; None when `path` names no file (a description
    such as "es:...", a folder, nothing)."""
    if not path:
        return None
    try:
        file = Path(path).expanduser().resolve()
        if not file.is_file():
            return None
        return {"path": str(file), **_measure(file)}
    except OSError:  # unreadable, or a name the system refuses: nothing to record
        return None


def change(recorded: dict[str, Any] | None) -> str | None:
    """How the file a fingerprint was taken of differs now, in words; None when it matches
    (or nothing was recorded)."""
    if not isinstance(recorded, dict) or not recorded.get("path"):
        return None
    file = Path(recorded["path"])
    try:
        now = _measure(file) if file.is_file() else None
    except OSError as exc:
        return f"cannot read {file} to check it: {exc.strerror or exc}"
    if now is None:
        return f"no longer at {file}"
    if now["size"] != recorded.get("size"):
        return (f"changed since registration: {now['size']:,} bytes now, "
                f"{recorded.get('size', 0):,} then")
    if now["sha256"] != recorded.get("sha256"):
        return f"changed since registration: same size, other content ({now['hashed']} hashed)"
    return None


def _measure(file: Path) -> dict[str, Any]:
    size = file.stat().st_size
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        if size <= 2 * ENDS:
            digest.update(handle.read())
            hashed = "whole file"
        else:
            digest.update(handle.read(ENDS))
            handle.seek(size - ENDS)
            digest.update(handle.read(ENDS))
            hashed = "first and last MiB"
    return {"size": size, "sha256": digest.hexdigest(), "hashed": hashed}
