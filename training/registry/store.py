"""The registry's SQLite database: schema, connections and write transactions.

The database, not the code, keeps the rules that matter most:

* at most one production version per model: a partial unique index, so even a raw SQL
  `INSERT`/`UPDATE` that would make a second production row fails;
* stages are one of none, staging, production, archived (a CHECK constraint);
* the transition log is append-only: triggers abort any UPDATE or DELETE on it.

Connections use WAL (readers never block the writer) and a busy timeout, so several processes
can register and promote at once; every change runs in `BEGIN IMMEDIATE`, which takes the
write lock before reading, so "archive the old production, promote the new one" cannot
interleave with another process doing the same.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from training.errors import RegistryError, UnsafePathError

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,      -- registration order
    model_name TEXT NOT NULL,
    version TEXT NOT NULL,
    layer_name TEXT NOT NULL,
    stage TEXT NOT NULL CHECK (stage IN ('none', 'staging', 'production', 'archived')),
    registered_at TEXT NOT NULL,
    metadata TEXT NOT NULL CHECK (json_valid(metadata)),
    weights_sha256 TEXT NOT NULL,
    sidecar_sha256 TEXT NOT NULL,
    files TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(files)),  -- attached file -> sha256
    replaced_version TEXT,                      -- the production version this one replaced
    UNIQUE (model_name, version)
);
CREATE UNIQUE INDEX IF NOT EXISTS one_production_per_model
    ON versions (model_name) WHERE stage = 'production';
CREATE TABLE IF NOT EXISTS aliases (
    model_name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY (model_name, alias),
    FOREIGN KEY (model_name, version) REFERENCES versions (model_name, version)
);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    model_name TEXT NOT NULL,
    version TEXT NOT NULL,
    event TEXT NOT NULL CHECK (event IN ('register', 'stage', 'alias', 'unalias', 'delete')),
    from_stage TEXT,
    to_stage TEXT,
    alias TEXT,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS transitions_no_update BEFORE UPDATE ON transitions
BEGIN SELECT RAISE(ABORT, 'the transition log is append-only: no UPDATE'); END;
CREATE TRIGGER IF NOT EXISTS transitions_no_delete BEFORE DELETE ON transitions
BEGIN SELECT RAISE(ABORT, 'the transition log is append-only: no DELETE'); END;
"""


def connect(db_path: Path, busy_timeout_s: float, read_only: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, foreign keys on.

    With `read_only` nothing is set that writes the file (journal_mode = WAL would, even to an
    empty one) and `query_only` refuses any change: a reader never changes the registry. (Not
    SQLite's mode=ro: it could not remove the -wal and -shm files when it closes.)

    Raises:
        UnsafePathError: `db_path` is a symbolic link (never opened through).
    """
    if os.path.islink(db_path):
        raise UnsafePathError(f"{db_path} is a symbolic link (to {os.readlink(db_path)}); the "
                              "registry is never opened through a link it was not given: "
                              "remove it, or give the folder it is in as the registry")
    conn = sqlite3.connect(db_path, timeout=busy_timeout_s, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
    if read_only:
        conn.execute("PRAGMA query_only = ON")
        return conn
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")  # a committed registration survives a power cut
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction holding the database's write lock from its first statement."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        # A failed rollback (e.g. on a damaged file) must not hide the error that caused it;
        # closing the connection rolls back in any case.
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def create_schema(conn: sqlite3.Connection, artifacts_dir: Path) -> None:
    """Create the tables (idempotent; safe when several processes open a new registry).

    Raises:
        RegistryError: the database has no tables but `artifacts_dir` holds models: the
            database was emptied or replaced, and starting a new one would orphan them.
    """
    with transaction(conn):
        tables = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                              "name = 'versions'").fetchone()
        # Artifacts are only written after the schema exists (under this same lock), so
        # artifacts without tables mean the database lost them.
        if tables is None and artifacts_dir.is_dir() and any(
                not p.name.startswith(".") for p in artifacts_dir.iterdir()):
            raise RegistryError(
                f"{conn_path(conn)} has no registry tables, but {artifacts_dir} holds models "
                f"({', '.join(sorted(p.name for p in artifacts_dir.iterdir()))}): the database "
                "was emptied or replaced; restore registry.db from a backup (the artifacts are "
                "left untouched)")
        _refuse_newer_schema(conn)
        # One statement at a time: executescript() would commit the open transaction first.
        for statement in SCHEMA.split(";\n"):  # trigger bodies end in "; END", never ";\n"
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def check_schema(conn: sqlite3.Connection) -> None:
    """Refuse a database without the registry's tables, or of a newer schema (reads only).

    Raises:
        RegistryError: no `versions` table (another SQLite file, or an emptied one).
        sqlite3.DatabaseError: a newer schema version (the caller names the file).
    """
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = "
                                             "'table'")}
    if not {"versions", "aliases", "transitions"} <= tables:
        raise RegistryError(f"{conn_path(conn)} is not a model registry (it has no registry "
                            "tables); point at the folder a pipeline or `registry register` made")
    _refuse_newer_schema(conn)


def _refuse_newer_schema(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"registry schema version {version} is newer than this release's "
            f"{SCHEMA_VERSION}; upgrade maximus-training to use it")


def conn_path(conn: sqlite3.Connection) -> str:
    """The file of a connection's main database."""
    return conn.execute("PRAGMA database_list").fetchone()[2]


def database_error(db_path: Path, exc: sqlite3.DatabaseError, busy_timeout_s: float
                   ) -> RegistryError:
    """A RegistryError that says what an SQLite error means for the registry and what to do."""
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return RegistryError(f"{db_path}: still locked by another process after "
                             f"{busy_timeout_s:g} s ({exc}); retry, or raise busy_timeout_s")
    # SQLite answers SQLITE_FULL when a write fails with ENOSPC; the transaction rolled back.
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return RegistryError(f"{db_path}: no space left on device ({exc}); the change was "
                             "not made and the registry is intact: free some space and retry")
    return RegistryError(f"{db_path}: the registry database is damaged or not a registry "
                         f"({exc}); restore registry.db from a backup. Model files under "
                         "artifacts/ are not read without it.")
