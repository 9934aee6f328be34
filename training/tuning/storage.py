"""Where a study lives: SQLite for one worker, a journal file for several, PostgreSQL across machines.

`resolve_storage` turns the `--storage` value (or its absence) into a `StorageSpec`, a small
picklable description that every worker process opens for itself (an open storage holds
connections and locks that must not cross a process boundary).

Accepted values:

- nothing: the study's folder decides. An existing `study.db` or `journal.log` there is reused
  (so a resumed study finds its trials whatever the worker count); otherwise one worker gets
  `study.db` (SQLite) and several get `journal.log` (Optuna's journal file storage, which
  appends under a file lock and needs no database).
- `journal:PATH`, or a path ending in `.log` or `.journal`: a journal file.
- `sqlite:///PATH`: SQLite. Several processes writing one SQLite file contend for its single
  write lock; that works (the seed promised it) but is slower and may time out, so it is
  accepted with a warning.
- `postgresql://...` (also `postgres://`, `postgresql+psycopg://`): PostgreSQL through psycopg 3.
  The same command on every machine joins one study. Other SQLAlchemy URLs (MySQL, ...) are
  passed through unchanged.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from training.artifacts.atomic import open_in_place, private_folder
from training.errors import ConfigError

logger = logging.getLogger(__name__)

SQLITE_FILE = "study.db"
JOURNAL_FILE = "journal.log"
JOURNAL_SUFFIXES = (".log", ".journal")
# Seconds between a running trial's heartbeats, and the silence after which another process
# marks it failed: a trial whose process was killed does not stay RUNNING forever.
HEARTBEAT_INTERVAL = 30
HEARTBEAT_GRACE = 120
SQLITE_LOCK_TIMEOUT = 60  # seconds a writer waits for SQLite's lock before "database is locked"


@dataclass(frozen=True, repr=False)
class StorageSpec:
    """A storage every process can open on its own.

    Attributes:
        kind: "sqlite", "journal" or "rdb" (any other SQLAlchemy database, e.g. PostgreSQL).
        target: the SQLAlchemy URL, or the journal file's path.
    """

    kind: str
    target: str

    def open(self) -> optuna.storages.BaseStorage:
        """Connect (creating the file or tables when missing)."""
        if self.kind == "journal":
            _private_file(Path(self.target))
            backend = optuna.storages.journal.JournalFileBackend(self.target)
            return optuna.storages.JournalStorage(backend)
        if self.kind == "sqlite":
            url = make_url(self.target)
            if url.database and url.database != ":memory:" and not url.query.get("uri"):
                _private_file(Path(url.database))
            engine_kwargs = {"connect_args": {"timeout": SQLITE_LOCK_TIMEOUT}}
        else:
            engine_kwargs = {"pool_pre_ping": True}  # survive a server restart between trials
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    self.target, engine_kwargs=engine_kwargs,
                    heartbeat_interval=HEARTBEAT_INTERVAL, grace_period=HEARTBEAT_GRACE)
        except Exception as exc:  # SQLAlchemy raises OperationalError, ImportError, ...
            raise ConfigError(f"storage {self.describe()}: cannot connect: {exc}") from exc

    def __repr__(self) -> str:
        return f"StorageSpec({self.kind!r}, {self.describe()!r})"

    def describe(self) -> str:
        """The storage for messages and logs, without any password."""
        if self.kind == "journal":
            return f"journal file {self.target}"
        return make_url(self.target).render_as_string(hide_password=True)

    @property
    def shared_across_machines(self) -> bool:
        return self.kind == "rdb"


def _private_file(path: Path) -> None:
    """`path` created 0600 in a 0700 folder, whatever the umask, before SQLite or Optuna opens
    it: they would create it with the umask's mode (0644), and the trials hold the data's
    fingerprints and paths. (SQLite gives its -journal and -wal files the database's mode.)
    An existing file readable by others is made private too, as every file written in place."""
    private_folder(path.parent)
    os.close(open_in_place(path, os.O_RDONLY))


def resolve_storage(storage: str | None, n_workers: int, study_dir: str | Path) -> StorageSpec:
    """The storage for `storage` (a URL or journal path, or None for the default).

    Args:
        storage: what the user gave (`--storage`), or None.
        n_workers: worker processes this command starts.
        study_dir: the study's output folder, home of the default files.

    Raises:
        ConfigError: an unrecognised storage value; the message lists the accepted forms.
    """
    if n_workers < 1:
        raise ConfigError(f"n_workers must be >= 1, got {n_workers}")
    if storage is None or storage == "":
        return _default_storage(n_workers, Path(study_dir))
    if storage.startswith("journal:"):
        path = storage[len("journal:"):]
        if not path:
            raise ConfigError("storage 'journal:' needs a file path, e.g. journal:study.log")
        return StorageSpec("journal", path)
    if "://" not in storage:
        if storage.endswith(JOURNAL_SUFFIXES):
            return StorageSpec("journal", storage)
        raise ConfigError(_bad_storage(storage, "it is neither a database URL nor a journal file"))
    try:
        url = make_url(storage)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(_bad_storage(storage, str(exc))) from None
    if url.get_backend_name() == "sqlite":
        if n_workers > 1:
            logger.warning("%d workers share the SQLite file %s: SQLite has one write lock, so "
                           "workers wait for each other and may fail with 'database is locked'; "
                           "a journal file (--storage journal:PATH) is made for this",
                           n_workers, url.database)
        return StorageSpec("sqlite", storage)
    if url.drivername in ("postgresql", "postgres"):
        # SQLAlchemy's default PostgreSQL driver is psycopg2; this package ships psycopg 3.
        url = url.set(drivername="postgresql+psycopg")
    try:
        url.get_dialect()  # an unknown database or a missing driver fails here, not in a worker
    except Exception as exc:  # NoSuchModuleError, ImportError of the driver
        raise ConfigError(_bad_storage(storage, f"{type(exc).__name__}: {exc}")) from None
    return StorageSpec("rdb", url.render_as_string(hide_password=False))


def _default_storage(n_workers: int, study_dir: Path) -> StorageSpec:
    sqlite_file, journal_file = study_dir / SQLITE_FILE, study_dir / JOURNAL_FILE
    if journal_file.exists():
        return StorageSpec("journal", str(journal_file))
    if sqlite_file.exists() or n_workers == 1:
        if n_workers > 1:
            logger.warning("resuming the SQLite study %s with %d workers: they will contend for "
                           "its write lock (new studies with several workers use a journal file)",
                           sqlite_file, n_workers)
        return StorageSpec("sqlite", f"sqlite:///{sqlite_file}")
    return StorageSpec("journal", str(journal_file))


def _bad_storage(storage: str, why: str) -> str:
    if "://" in storage:  # a URL may hold a password: show its scheme only
        storage = storage.split("://", 1)[0] + "://..."
    return (f"storage {storage!r} is not usable ({why}); give sqlite:///PATH, "
            "journal:PATH (or a path ending in .log), or postgresql://USER:PASSWORD@HOST/DB")
