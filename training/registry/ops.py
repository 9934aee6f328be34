"""Registry operations on an open connection; the callers hold the write transaction.

Every stage or alias change goes through `set_stage` / `point_alias`, which write the change
and its log entry together, so the transition log accounts for every change. `champion` is
kept equal to the production version here, in the same transaction as the stage change.
"""

from __future__ import annotations

import json
import sqlite3

from training.errors import ConfigError, NotFoundError, RegistryError, did_you_mean
from training.registry.history import log
from training.registry.metadata import ModelMetadata
from training.registry.names import CHALLENGER, CHAMPION, check_stage, version_key


def model_names(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT DISTINCT model_name FROM versions ORDER BY 1")]


def _no_model(conn: sqlite3.Connection, name: str) -> NotFoundError:
    return unknown_model(name, model_names(conn))


def unknown_model(name: str, known: list[str]) -> NotFoundError:
    """The error for a model name not among `known`: the closest one, and every one."""
    return NotFoundError(f"no model named {name!r}{did_you_mean(name, known)}; known: "
                         f"{', '.join(known) or 'none'}")


def get_row(conn: sqlite3.Connection, name: str, version: str, *,
            required: bool = True) -> sqlite3.Row | None:
    """The version's row; NotFoundError listing the known versions when `required`."""
    row = conn.execute("SELECT * FROM versions WHERE model_name = ? AND version = ?",
                       (name, version)).fetchone()
    if row is None and required:
        known = sorted((r[0] for r in conn.execute(
            "SELECT version FROM versions WHERE model_name = ?", (name,))), key=version_key)
        if not known:
            raise _no_model(conn, name)
        raise NotFoundError(f"{name} has no version {version!r}; known: {', '.join(known)}")
    return row


def production(conn: sqlite3.Connection, name: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM versions WHERE model_name = ? AND stage = 'production'",
                        (name,)).fetchone()


def resolve(conn: sqlite3.Connection, name: str, version: str | None, stage: str | None,
            alias: str | None) -> sqlite3.Row:
    """The row chosen by at most one of version, stage (latest in it), alias; else the latest."""
    given = [x for x in (version, stage, alias) if x is not None]
    if len(given) > 1:
        raise ConfigError(f"give at most one of version, stage and alias, got {given}")
    if version is not None:
        return get_row(conn, name, version)
    if alias is not None:
        hit = conn.execute("SELECT version FROM aliases WHERE model_name = ? AND alias = ?",
                           (name, alias)).fetchone()
        if hit is None:
            known = ", ".join(aliases_of(conn, name)) or "none"
            raise NotFoundError(f"{name} has no alias {alias!r}; known: {known}")
        return get_row(conn, name, hit[0])
    query, args = "SELECT * FROM versions WHERE model_name = ?", [name]
    if stage is not None:
        query, args = query + " AND stage = ?", [name, check_stage(stage)]
    row = conn.execute(query + " ORDER BY seq DESC LIMIT 1", args).fetchone()
    if row is None:
        if stage is None or name not in model_names(conn):
            raise _no_model(conn, name)
        raise NotFoundError(f"{name} has no version in stage {stage!r}: pick one by version or "
                            f"alias, or promote one (`maximus-train registry list` shows them; "
                            f"in Python, list_models({name!r}))")
    return row


def aliases_of(conn: sqlite3.Connection, name: str, version: str | None = None) -> dict[str, str]:
    """alias -> version for a model (only those naming `version` when given)."""
    rows = conn.execute("SELECT alias, version FROM aliases WHERE model_name = ? ORDER BY alias",
                        (name,))
    return {a: v for a, v in rows if version is None or v == version}


def metadata_of(conn: sqlite3.Connection, row: sqlite3.Row) -> ModelMetadata:
    data = json.loads(row["metadata"])
    data.update(stage=row["stage"], weights_sha256=row["weights_sha256"],
                files=json.loads(row["files"]), opaque=not row["sidecar_sha256"],
                aliases=list(aliases_of(conn, row["model_name"], row["version"])))
    return ModelMetadata.from_dict(data)


ANY = object()  # `move(..., replacing=ANY)`: promote whatever is in production now


def move(conn: sqlite3.Connection, name: str, version: str, to: str, reason: str,
         actor: str, replacing: object = ANY) -> bool:
    """Move a version to stage `to`; to production archives the current one first and
    remembers it as the version replaced. False when already there.

    `replacing` (a version, or None for "no production version") makes a promotion
    conditional: RegistryError when production has changed since the caller looked.
    """
    row = get_row(conn, name, version)
    if row["stage"] == to:
        return False
    if to != "production":
        set_stage(conn, name, version, row["stage"], to, reason, actor)
        return True
    current = production(conn, name)
    now_in = None if current is None else current["version"]
    if replacing is not ANY and now_in != replacing:
        raise RegistryError(f"not promoting {name} {version}: production is {now_in}, not "
                            f"{replacing} as when the decision was made; decide again")
    if current is not None:
        set_stage(conn, name, current["version"], "production", "archived",
                  f"replaced by {version}" + (f": {reason}" if reason else ""), actor)
    set_stage(conn, name, version, row["stage"], "production", reason, actor)
    conn.execute("UPDATE versions SET replaced_version = ? WHERE seq = ?",
                 (None if current is None else current["version"], row["seq"]))
    return True


def set_stage(conn: sqlite3.Connection, name: str, version: str, from_stage: str, to: str,
              reason: str, actor: str) -> None:
    """Write one stage change, its log entry, and the champion alias that follows production."""
    conn.execute("UPDATE versions SET stage = ? WHERE model_name = ? AND version = ?",
                 (to, name, version))
    log(conn, name, version, "stage", from_stage, to, None, reason, actor)
    if to == "production":
        point_alias(conn, name, CHAMPION, version, reason, actor)
        # A challenger that wins is the champion now, no longer a challenger.
        if conn.execute("SELECT 1 FROM aliases WHERE model_name = ? AND alias = ? AND "
                        "version = ?", (name, CHALLENGER, version)).fetchone():
            point_alias(conn, name, CHALLENGER, None, reason, actor)
    elif from_stage == "production":
        point_alias(conn, name, CHAMPION, None, reason, actor)


def point_alias(conn: sqlite3.Connection, name: str, alias: str, version: str | None,
                reason: str, actor: str) -> None:
    """Point `alias` at `version` (None: remove it), logging the old and new target."""
    old = conn.execute("SELECT version FROM aliases WHERE model_name = ? AND alias = ?",
                       (name, alias)).fetchone()
    if old is not None and old[0] == version:
        return
    if old is not None:
        conn.execute("DELETE FROM aliases WHERE model_name = ? AND alias = ?", (name, alias))
        log(conn, name, old[0], "unalias", None, None, alias, reason, actor)
    if version is not None:
        conn.execute("INSERT INTO aliases (model_name, alias, version) VALUES (?, ?, ?)",
                     (name, alias, version))
        log(conn, name, version, "alias", None, None, alias, reason, actor)
