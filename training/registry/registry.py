"""The model registry: versions, stages, aliases, an append-only transition log, rollback.

    registry = ModelRegistry()                       # training/models (see training.paths)
    registry.register_model("training/checkpoints/layer1_vae_best.pt",
                            ModelMetadata("layer1_vae", "1.0.0", "layer1", metrics={...}))
    registry.transition_stage("layer1_vae", "1.0.0", "production", reason="beats 0.9.0")
    loaded = registry.get_model("layer1_vae", stage="production")   # verified on load
    registry.rollback("layer1_vae")                  # the previous production is back

Layout of the registry folder: `registry.db` (SQLite, WAL; see `training.registry.store` for
the rules the database itself enforces) and `artifacts/<model>/<version>/model.{pt,json}`.

Stages go none -> staging -> production -> archived (any move between two stages is allowed
and logged). Promoting a version to production archives the previous one in the same
transaction, moves the `champion` alias to it (`champion` always names the production
version) and remembers the version it replaced, which is what `rollback` restores.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import torch

from training.artifacts.model_files import LoadedModel
from training.errors import ConfigError, NotFoundError, RegistryError
from training.features.encoding import FeatureSpec
from training.paths import models_dir
from training.registry import artifacts, ops
from training.registry.history import Transition, actor_name, log, now
from training.registry.metadata import ModelMetadata, complete_metadata, metric_direction
from training.registry.names import CHAMPION, artifact_dir, check_name, check_stage, next_version
from training.registry.store import (
    check_schema, connect, create_schema, database_error, transaction,
)
from training.registry.tables import format_registry

__all__ = ["ModelMetadata", "ModelRegistry", "RegisteredModel", "Transition"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegisteredModel(LoadedModel):
    """A model loaded from the registry (verified): a `LoadedModel` with its metadata and the
    path of its registered weights."""

    metadata: ModelMetadata
    path: Path


class ModelRegistry:
    """Registered model versions under `registry_dir`, safe to share between processes.

    Args:
        registry_dir: the registry folder (default `training/models`, or MAXIMUS_DATA_ROOT/models).
        busy_timeout_s: how long a write waits for another process's write to finish.
        create: make the folder and database when they do not exist; False opens an existing
            registry only and creates nothing (no folder, no database; SQLite's -wal and -shm
            files exist only while a connection is open), for commands that read.

    Raises:
        NotFoundError: `create` is False and `registry_dir` holds no registry.db.
        RegistryError: registry.db is not a registry (see `training.registry.store`).
    """

    def __init__(self, registry_dir: str | Path | None = None, *,
                 busy_timeout_s: float = 60.0, create: bool = True) -> None:
        if busy_timeout_s <= 0:
            raise ConfigError(f"busy_timeout_s must be > 0, got {busy_timeout_s}")
        self.registry_dir = Path(registry_dir) if registry_dir is not None else models_dir()
        self.busy_timeout_s = busy_timeout_s
        self.db_path = self.registry_dir / "registry.db"
        self.artifacts_dir = self.registry_dir / "artifacts"
        if not create:
            # sqlite3.connect would create the file, so its absence is checked first
            if not self.db_path.is_file():
                raise NotFoundError(f"no model registry at {self.registry_dir} (it has no "
                                    "registry.db); registering a model creates one")
            with self._connect() as conn:
                check_schema(conn)
            return
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            create_schema(conn, self.artifacts_dir)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One connection per call, closed after it (nothing shared across threads or forks);
        SQLite's errors about the file become RegistryErrors that say what to do."""
        try:
            conn = connect(self.db_path, self.busy_timeout_s)
            try:
                yield conn
            finally:
                conn.close()
        except sqlite3.IntegrityError:
            raise  # a broken rule of the schema: a bug, or a raw edit, never a damaged file
        except sqlite3.DatabaseError as exc:
            raise database_error(self.db_path, exc, self.busy_timeout_s) from exc

    # -- changes ---------------------------------------------------------------------------

    def register_model(self, model_path: str | Path, metadata: ModelMetadata, *,
                       files: Mapping[str, str | Path] | None = None,
                       reason: str = "registered", actor: str | None = None) -> ModelMetadata:
        """Copy a saved model (`<name>.pt` + `<name>.json`) into the registry as a new version.

        `files` (name -> path) are attached to the version (e.g. a drift reference sample);
        they are copied with the model and verified by sha256 when read (`read_file`).

        The model's FeatureSpec fingerprint and threshold fill `metadata` where it has none
        (and must agree where it has them); code and library versions are this process's
        unless given. A `metadata.stage` other than "none" is applied in the same transaction.

        Returns:
            The metadata as stored (stage, aliases and weights sha256 filled in).

        Raises:
            RegistryError: the version exists.
            CheckpointError: the file is not a verifiable saved model (see artifacts.store).
            ConfigError: the metadata disagrees with the model's sidecar.
        """
        name, version = metadata.model_name, metadata.version
        folder = artifact_dir(self.artifacts_dir, name, version)
        actor = actor_name(actor)
        # Files are written under the write lock, then the row: a version has both or neither.
        with self._connect() as conn, transaction(conn):
            if ops.get_row(conn, name, version, required=False) is not None:
                raise RegistryError(f"{name} {version} is already registered; pick a new "
                                    f"version (e.g. {self.next_version(name, conn=conn)})")
            registered = {row[0] for row in conn.execute(
                "SELECT version FROM versions WHERE model_name = ?", (name,))}
            artifacts.clear_leftovers(folder.parent, registered)
            weights_sha, sidecar_sha, sidecar, attached = artifacts.store(
                Path(model_path), folder, {k: Path(v) for k, v in (files or {}).items()})
            try:
                stored = complete_metadata(metadata, sidecar, weights_sha)
                record = {**stored.to_dict(), "stage": "none"}
                conn.execute(
                    "INSERT INTO versions (model_name, version, layer_name, stage, registered_at,"
                    " metadata, weights_sha256, sidecar_sha256, files)"
                    " VALUES (?, ?, ?, 'none', ?, ?, ?, ?, ?)",
                    (name, version, stored.layer_name, now(), json.dumps(record, sort_keys=True),
                     weights_sha, sidecar_sha, json.dumps(attached, sort_keys=True)))
                log(conn, name, version, "register", None, "none", None, reason, actor)
                ops.move(conn, name, version, stored.stage, reason, actor)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
        logger.info("registered %s %s (%s)", name, version, stored.stage)
        return self.get_metadata(name, version)

    def transition_stage(self, model_name: str, version: str, new_stage: str, *,
                         reason: str = "", actor: str | None = None,
                         replacing: str | None | object = ops.ANY) -> bool:
        """Move a version to `new_stage`; promoting to production archives the previous
        production version in the same transaction.

        Args:
            replacing: promote only if this version (None: no version) is in production now,
                e.g. the champion a challenger was compared with; RegistryError otherwise.

        Returns:
            True when the stage changed, False when the version was already there.
        """
        check_stage(new_stage)
        with self._connect() as conn, transaction(conn):
            return ops.move(conn, model_name, version, new_stage, reason, actor_name(actor),
                            replacing)

    def rollback(self, model_name: str, *, reason: str = "", actor: str | None = None) -> str:
        """Archive the production version and bring back the one it replaced.

        Rolling back again goes one further step back (each version remembers the one it
        replaced when it was promoted).

        Returns:
            The version now in production.

        Raises:
            RegistryError: no production version, or it replaced none (or that one was deleted).
        """
        actor = actor_name(actor)
        with self._connect() as conn, transaction(conn):
            current = ops.production(conn, model_name)
            if current is None:
                raise RegistryError(f"{model_name} has no production version to roll back")
            old, previous = current["version"], current["replaced_version"]
            if previous is None or ops.get_row(conn, model_name, previous, required=False) is None:
                what = "replaced no earlier version" if previous is None else \
                    f"replaced {previous}, which has been deleted"
                raise RegistryError(f"cannot roll back {model_name}: its production version "
                                    f"{old} {what}")
            note = f": {reason}" if reason else ""
            ops.set_stage(conn, model_name, old, "production", "archived",
                          f"rolled back to {previous}{note}", actor)
            from_stage = ops.get_row(conn, model_name, previous)["stage"]
            ops.set_stage(conn, model_name, previous, from_stage, "production",
                          f"rollback from {old}{note}", actor)
        logger.info("rolled back %s from %s to %s", model_name, old, previous)
        return previous

    def set_alias(self, model_name: str, alias: str, version: str, *, reason: str = "",
                  actor: str | None = None) -> None:
        """Point `alias` (e.g. "challenger") at a version; `champion` follows production."""
        check_name("alias", alias)
        if alias == CHAMPION:
            raise ConfigError(f"the {CHAMPION!r} alias always names the production version; "
                              "promote with transition_stage(..., 'production') instead")
        with self._connect() as conn, transaction(conn):
            ops.get_row(conn, model_name, version)
            ops.point_alias(conn, model_name, alias, version, reason, actor_name(actor))

    def remove_alias(self, model_name: str, alias: str, *, reason: str = "",
                     actor: str | None = None) -> None:
        if alias == CHAMPION:
            raise ConfigError(f"the {CHAMPION!r} alias follows the production version; archive "
                              "or roll back instead")
        with self._connect() as conn, transaction(conn):
            ops.point_alias(conn, model_name, alias, None, reason, actor_name(actor))

    def delete_model(self, model_name: str, version: str | None = None, *,
                     reason: str = "deleted", actor: str | None = None) -> int:
        """Delete one version (or every version) of a model; its log entries stay.

        Returns:
            The number of versions deleted.

        Raises:
            RegistryError: a version to delete is in production (archive or roll back first).
        """
        actor = actor_name(actor)
        with self._connect() as conn, transaction(conn):
            rows = [ops.get_row(conn, model_name, version)] if version is not None else \
                conn.execute("SELECT * FROM versions WHERE model_name = ?", (model_name,)).fetchall()
            if not rows:
                raise NotFoundError(f"no model named {model_name!r}; known: "
                                    f"{', '.join(ops.model_names(conn)) or 'none'}")
            live = [r["version"] for r in rows if r["stage"] == "production"]
            if live:
                raise RegistryError(f"{model_name} {live[0]} is in production; archive it or "
                                    "roll back before deleting it")
            for row in rows:
                for alias in ops.aliases_of(conn, model_name, row["version"]):
                    ops.point_alias(conn, model_name, alias, None, reason, actor)
                conn.execute("DELETE FROM versions WHERE seq = ?", (row["seq"],))
                log(conn, model_name, row["version"], "delete", row["stage"], None, None,
                    reason, actor)
        for row in rows:  # after the commit: a crash here leaves only an unreferenced folder
            shutil.rmtree(artifact_dir(self.artifacts_dir, model_name, row["version"]),
                          ignore_errors=True)
        return len(rows)

    # -- reading ---------------------------------------------------------------------------

    def get_model(self, model_name: str, version: str | None = None, stage: str | None = None,
                  *, alias: str | None = None, map_location: str | torch.device = "cpu",
                  expected_spec: FeatureSpec | None = None) -> RegisteredModel:
        """Load a version, checking both files' sha256, and the FeatureSpec when given.

        Give at most one of `version`, `stage` (the latest version in that stage) and `alias`;
        with none, the latest registered version.

        Raises:
            NotFoundError: no such model, version, stage or alias (the message lists them).
            CheckpointError: a file is missing or was modified after registration.
            SchemaError: `expected_spec` is not the model's FeatureSpec.
        """
        with self._connect() as conn:
            row = ops.resolve(conn, model_name, version, stage, alias)
            metadata = ops.metadata_of(conn, row)
        folder = artifact_dir(self.artifacts_dir, model_name, row["version"])
        loaded = artifacts.load(folder, row["weights_sha256"], row["sidecar_sha256"],
                                map_location=map_location, expected_spec=expected_spec)
        return RegisteredModel(loaded.model, loaded.sidecar, metadata,
                               folder / artifacts.WEIGHTS_FILE)

    def read_file(self, model_name: str, file_name: str, version: str | None = None,
                  stage: str | None = None, *, alias: str | None = None) -> bytes:
        """The bytes of a file attached at registration, verified against its sha256.

        Raises:
            NotFoundError: the version has no such file (the message lists its files).
            CheckpointError: the file is missing or was modified after registration.
        """
        with self._connect() as conn:
            row = ops.resolve(conn, model_name, version, stage, alias)
        files = json.loads(row["files"])
        if file_name not in files:
            raise NotFoundError(f"{model_name} {row['version']} has no attached file "
                                f"{file_name!r}; it has: {', '.join(sorted(files)) or 'none'}")
        folder = artifact_dir(self.artifacts_dir, model_name, row["version"])
        return artifacts.read_verified(folder / file_name, files[file_name])

    def get_metadata(self, model_name: str, version: str | None = None,
                     stage: str | None = None, *, alias: str | None = None) -> ModelMetadata:
        """The metadata of a version, chosen as in `get_model`."""
        with self._connect() as conn:
            return ops.metadata_of(conn, ops.resolve(conn, model_name, version, stage, alias))

    def list_models(self, name: str | None = None) -> list[ModelMetadata]:
        """Every version (of one model, or of all), by name, then registration order."""
        return self.search_models(model_name=name)

    def search_models(self, model_name: str | None = None, layer_name: str | None = None,
                      stage: str | None = None, min_accuracy: float | None = None
                      ) -> list[ModelMetadata]:
        """Versions matching every given filter (`min_accuracy` on metrics["accuracy"])."""
        query, args = "SELECT * FROM versions WHERE 1", []
        filters = (("model_name", model_name), ("layer_name", layer_name),
                   ("stage", None if stage is None else check_stage(stage)))
        for column, value in filters:
            if value is not None:
                query, args = query + f" AND {column} = ?", [*args, value]
        with self._connect() as conn:
            found = [ops.metadata_of(conn, row) for row in
                     conn.execute(query + " ORDER BY model_name, seq", args)]
        if min_accuracy is not None:
            found = [m for m in found if m.metrics.get("accuracy", float("-inf")) >= min_accuracy]
        return found

    def compare_models(self, model_name: str, versions: list[str], metric: str) -> dict:
        """`metric` of each version and the best of them (direction from `metric_direction`).

        Returns:
            {"metric", "direction" ("min"/"max"), "values": {version: value or None}, "best"}.
        """
        direction = metric_direction(metric)
        values = {v: self.get_metadata(model_name, v).metrics.get(metric) for v in versions}
        known = {v: x for v, x in values.items() if x is not None}
        pick = min if direction == "min" else max
        best = pick(known, key=known.__getitem__) if known else None
        return {"metric": metric, "direction": direction, "values": values, "best": best}

    def aliases(self, model_name: str) -> dict[str, str]:
        """alias -> version for one model."""
        with self._connect() as conn:
            return ops.aliases_of(conn, model_name)

    def history(self, model_name: str | None = None) -> list[Transition]:
        """The transition log (of one model, or all), oldest first."""
        query = "SELECT * FROM transitions" + (" WHERE model_name = ?" if model_name else "")
        with self._connect() as conn:
            rows = conn.execute(query + " ORDER BY id", (model_name,) if model_name else ())
            return [Transition(**dict(row)) for row in rows]

    def next_version(self, model_name: str, scheme: str = "semver", *,
                     conn: sqlite3.Connection | None = None) -> str:
        """A version after every registered one (see `training.registry.names.next_version`)."""
        if conn is None:
            with self._connect() as own:
                return self.next_version(model_name, scheme, conn=own)
        existing = [r[0] for r in conn.execute(
            "SELECT version FROM versions WHERE model_name = ?", (model_name,))]
        return next_version(existing, scheme)

    def print_registry(self, file: IO[str] | None = None) -> None:
        """Print every model's versions, stages, aliases and main metrics."""
        print(format_registry(self.list_models()), file=file or sys.stdout)
