"""The transition log's entries and who writes them (`training.registry.tables` prints them)."""

from __future__ import annotations

import getpass
import os
import socket
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass(frozen=True)
class Transition:
    """One entry of the append-only transition log.

    `event` is "register", "stage" (from_stage -> to_stage), "alias" (`alias` now names
    `version`), "unalias" (`alias` no longer names `version`) or "delete".
    """

    id: int
    at: str
    model_name: str
    version: str
    event: str
    from_stage: str | None
    to_stage: str | None
    alias: str | None
    reason: str
    actor: str


def now() -> str:
    """The current UTC time, ISO 8601 with microseconds (the log's time format)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def actor_name(actor: str | None) -> str:
    """`actor`, or user@host of this process."""
    if actor:
        return actor
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def log(conn: sqlite3.Connection, model_name: str, version: str, event: str,
        from_stage: str | None, to_stage: str | None, alias: str | None, reason: str,
        actor: str) -> None:
    """Append an entry (inside the caller's transaction, so it commits with the change)."""
    conn.execute(
        "INSERT INTO transitions (at, model_name, version, event, from_stage, to_stage, alias,"
        " reason, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (now(), model_name, version, event, from_stage, to_stage, alias, reason or "", actor))
