"""The folders a collection run made for its output, removed again when the run fails (an error
or an interrupt) before it committed anything: a failed `collect --output new` leaves nothing
behind. A folder that was there before is never removed, only released.

Only what a collection writes is removed (its lock, progress, quarantine, seen-id files,
event parts and temporary files), then the folders themselves if that left them empty, so
nothing someone else put there is lost.
"""

from __future__ import annotations

from pathlib import Path

from training.collection.quarantine_file import QUARANTINE_FILE

CHECKPOINT_FILE = "checkpoint.json"
LOCK_FILE = ".lock"
_FILES = (LOCK_FILE, "progress.json", QUARANTINE_FILE)
_FOLDERS = {"seen": "*.npy", "events": "part-*.parquet"}


def missing_folders(directory: Path) -> list[Path]:
    """`directory` and those of its parents that do not exist yet, deepest first (what
    `mkdir(parents=True)` is about to make)."""
    missing = []
    for folder in (directory, *directory.parents):
        if folder.exists() or folder.is_symlink():
            break
        missing.append(folder)
    return missing


def remove_made(made: list[Path]) -> None:
    """Remove the folders a run made (`missing_folders`, taken before it made them), unless
    a collection was committed there. Call it while holding the collection's lock."""
    if not made or (made[0] / CHECKPOINT_FILE).exists():
        return
    directory = made[0]
    for name, pattern in _FOLDERS.items():
        folder = directory / name
        if folder.is_dir() and not folder.is_symlink():
            for path in [*folder.glob(pattern), *folder.glob(".*.tmp")]:
                path.unlink(missing_ok=True)
            _rmdir(folder)
    for path in [*(directory / name for name in _FILES), *directory.glob(".*.tmp")]:
        path.unlink(missing_ok=True)
    for folder in made:
        if not _rmdir(folder):
            break


def _rmdir(folder: Path) -> bool:
    """Remove an empty folder; False when it is not (someone else's files are kept)."""
    try:
        folder.rmdir()
    except OSError:
        return False
    return True
