"""A registry made by a command that then registered nothing is removed again.

`registry register`, `retrain` and `tune --train-best` create the registry they write to (a
`ModelRegistry` is created when it is opened). When such a command fails before its first
version (a mistyped `--workdir`, splits that do not validate, a file that is not a model), the
empty registry would stay behind, and later commands would answer "no model named ..." where
the truth is "no model registry at ...". So a mistyped path creates nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from training.errors import PipelineError

logger = logging.getLogger(__name__)

DATABASE = "registry.db"
# SQLite's own files beside the database (present while a connection is open, or after a crash).
DATABASE_FILES = (DATABASE, f"{DATABASE}-wal", f"{DATABASE}-shm", f"{DATABASE}-journal")


@contextmanager
def removed_unless_registered(folder: Path) -> Iterator[None]:
    """Run the block; if it created the registry at `folder` and left it empty (no version,
    no transition), remove the registry and the folders the block made for it.

    A registry that existed before the block is never touched.
    """
    folder = Path(folder)
    if (folder / DATABASE).exists():
        yield
        return
    made = _outermost_missing(folder)
    try:
        yield
    finally:
        if _created_empty(folder):
            _remove(folder, made)


def _outermost_missing(folder: Path) -> Path | None:
    """The outermost of `folder` and its parents that does not exist yet (None: it exists)."""
    missing = None
    for path in (folder, *folder.parents):
        if path.exists():
            return missing
        missing = path
    return missing


def _created_empty(folder: Path) -> bool:
    from training.registry.registry import ModelRegistry

    if not (folder / DATABASE).is_file():
        return False
    try:
        return not ModelRegistry(folder, create=False).history()
    except PipelineError:  # not a registry we can read: not ours to remove
        return False


def _remove(folder: Path, made: Path | None) -> None:
    """The database files, the empty artifacts folder, then each folder made for them, up to
    `made` (rmdir never removes a folder that something else has written into)."""
    for name in DATABASE_FILES:
        (folder / name).unlink(missing_ok=True)
    artifacts = folder / "artifacts"
    # Deepest first: a model's folder made for a version that failed to store, then its parent.
    folders = sorted((p for p in artifacts.rglob("*") if p.is_dir()),
                     key=lambda p: len(p.parts), reverse=True) + [artifacts]
    if made is not None:
        folders += [folder, *(p for p in folder.parents if p.is_relative_to(made))]
    for path in folders:
        with suppress(OSError):  # not empty (or already gone): kept
            path.rmdir()
    logger.info("removed the empty registry this command created at %s", folder)
