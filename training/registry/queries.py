"""Reading the model registry: loading versions, metadata, listings, comparisons, history.

`RegistryQueries` opens the registry folder and answers every question about it;
`training.registry.registry.ModelRegistry` adds the changes. Loading checks every file against
the sha256 recorded at registration and never runs code from a file (`weights_only=True`,
JSON metadata).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import torch

from training.artifacts.atomic import PRIVATE, PRIVATE_FOLDER, private_folder
from training.errors import ConfigError, NotFoundError
from training.features.encoding import FeatureSpec
from training.paths import models_dir
from training.registry import artifacts, ops
from training.registry.comparable import (
    check_comparable, check_same_data, is_loss, loss_recipe, measured_on,
)
from training.registry.history import Transition
from training.registry.tables import format_registry
from training.registry.metadata import ModelMetadata, metric_direction, recorded_metric
from training.registry.names import artifact_dir, check_stage, next_version
from training.registry.results import (
    Comparison, ModelVersions, RegisteredModel, RegisteredPath,
)
from training.registry.store import check_schema, connect, create_schema, database_error

logger = logging.getLogger(__name__)


class RegistryQueries:
    """Registered model versions under `registry_dir`, read (see the module docstring).

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
            with self._connect(read_only=True) as conn:
                check_schema(conn)
            return
        private_folder(self.registry_dir)
        self.artifacts_dir.mkdir(PRIVATE_FOLDER, exist_ok=True)
        _create_private(self.db_path)
        with self._connect() as conn:
            create_schema(conn, self.artifacts_dir)

    @contextmanager
    def _connect(self, read_only: bool = False) -> Iterator[sqlite3.Connection]:
        """One connection per call, closed after it (nothing shared across threads or forks);
        SQLite's errors about the file become RegistryErrors that say what to do. A
        `read_only` one never writes the file (what list and show use)."""
        try:
            conn = connect(self.db_path, self.busy_timeout_s, read_only)
            try:
                yield conn
            finally:
                conn.close()
        except sqlite3.IntegrityError:
            raise  # a broken rule of the schema: a bug, or a raw edit, never a damaged file
        except sqlite3.DatabaseError as exc:
            raise database_error(self.db_path, exc, self.busy_timeout_s) from exc

    # -- reading ---------------------------------------------------------------------------

    def get_model(self, model_name: str, version: str | None = None, stage: str | None = None,
                  *, alias: str | None = None, map_location: str | torch.device = "cpu",
                  expected_spec: FeatureSpec | None = None
                  ) -> RegisteredModel | RegisteredPath | None:
        """The chosen version, verified: loaded when it has a sidecar, else its opaque path.

        Both results are path-like (the original returned the registered file's path);
        None when no version matches (the original's result; the reason, naming what
        exists, is logged as a warning). `load_model` raises instead.

        Raises:
            CheckpointError: a file is missing or was modified after registration.
            SchemaError: `expected_spec` is not the model's FeatureSpec.
        """
        try:
            return self._get(model_name, version, stage, alias, map_location, expected_spec,
                             opaque_ok=True)
        except NotFoundError as exc:
            logger.warning("get_model: %s", exc)
            return None

    def load_model(self, model_name: str, version: str | None = None, stage: str | None = None,
                   *, alias: str | None = None, map_location: str | torch.device = "cpu",
                   expected_spec: FeatureSpec | None = None) -> RegisteredModel:
        """Load a version as a detector, checking both files' sha256, and the FeatureSpec when
        given.

        Give at most one of `version`, `stage` (the latest version in that stage) and `alias`;
        with none, the latest registered version.

        Raises:
            NotFoundError: no such model, version, stage or alias (the message lists them).
            CheckpointError: a file is missing or was modified after registration, or the
                version is an opaque artifact (the message says how to attach a sidecar).
            SchemaError: `expected_spec` is not the model's FeatureSpec.
        """
        return self._get(model_name, version, stage, alias, map_location, expected_spec,
                         opaque_ok=False)

    def _get(self, model_name: str, version: str | None, stage: str | None, alias: str | None,
             map_location: str | torch.device, expected_spec: FeatureSpec | None, *,
             opaque_ok: bool) -> RegisteredModel | RegisteredPath:
        with self._connect(read_only=True) as conn:
            row = ops.resolve(conn, model_name, version, stage, alias)
            metadata = self._described(ops.metadata_of(conn, row))
        folder = artifact_dir(self.artifacts_dir, model_name, row["version"])
        if metadata.opaque:
            artifacts.read_verified(folder / artifacts.WEIGHTS_FILE, row["weights_sha256"])
            found = RegisteredPath(folder / artifacts.WEIGHTS_FILE, metadata, opaque=True)
            if opaque_ok:
                return found
            found.model  # raises the CheckpointError that says how to attach a sidecar
        loaded = artifacts.load(folder, row["weights_sha256"], row["sidecar_sha256"],
                                map_location=map_location, expected_spec=expected_spec)
        return RegisteredModel(loaded.model, loaded.sidecar, metadata,
                               folder / artifacts.WEIGHTS_FILE)

    def verify(self, model_name: str, version: str | None = None, stage: str | None = None,
               *, alias: str | None = None) -> str:
        """Check the version's files against their recorded sha256 without loading anything;
        returns the weights' sha256.

        Raises:
            NotFoundError: no such version; CheckpointError: a file is missing or modified.
        """
        with self._connect(read_only=True) as conn:
            row = ops.resolve(conn, model_name, version, stage, alias)
        folder = artifact_dir(self.artifacts_dir, model_name, row["version"])
        artifacts.read_verified(folder / artifacts.WEIGHTS_FILE, row["weights_sha256"])
        if row["sidecar_sha256"]:
            artifacts.read_verified(folder / artifacts.SIDECAR_FILE, row["sidecar_sha256"])
        for name, sha in json.loads(row["files"]).items():
            artifacts.read_verified(folder / name, sha)
        return row["weights_sha256"]

    def read_file(self, model_name: str, file_name: str, version: str | None = None,
                  stage: str | None = None, *, alias: str | None = None) -> bytes:
        """The bytes of a file attached at registration, verified against its sha256.

        Raises:
            NotFoundError: the version has no such file (the message lists its files).
            CheckpointError: the file is missing or was modified after registration.
        """
        with self._connect(read_only=True) as conn:
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
        with self._connect(read_only=True) as conn:
            row = ops.resolve(conn, model_name, version, stage, alias)
            return self._described(ops.metadata_of(conn, row))

    def _described(self, metadata: ModelMetadata) -> ModelMetadata:
        """`metadata` with its detector class, read from its sidecar for a version registered
        before the registry recorded it."""
        if metadata.model_class is None and not metadata.opaque:
            metadata.model_class = artifacts.stored_class(
                artifact_dir(self.artifacts_dir, metadata.model_name, metadata.version))
        return metadata

    def list_models(self, name: str | None = None, *, model_name: str | None = None
                    ) -> ModelVersions:
        """Every version (of one model, or of all), by name, then registration order: a list
        of `ModelMetadata` that is also the original `{model_name: [versions]}` mapping (see
        `training.registry.results.ModelVersions`)."""
        return ModelVersions(self.search_models(model_name=name or model_name))

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
        with self._connect(read_only=True) as conn:
            found = [self._described(ops.metadata_of(conn, row)) for row in
                     conn.execute(query + " ORDER BY model_name, seq", args)]
        if min_accuracy is not None:
            found = [m for m in found if m.metrics.get("accuracy", float("-inf")) >= min_accuracy]
        return found

    def compare_models(self, model_name: str, versions: list[str],
                       metric: str = "val_loss") -> Comparison:
        """`metric` of each version, and the best (direction from `metric_direction`).

        A loss (`val_loss`, `test_loss`, ...) is each model's own training objective: it ranks
        versions only when they share the detector class and its loss settings (a VAE's
        `beta`: `training.registry.comparable`); otherwise this refuses rather than name a best.
        Any metric ranks only versions measured on the same data: a test metric on one test
        split, `val_loss` on one validation split (their recorded `dataset_fingerprints`, by
        `comparable.measured_on`; a version that recorded none is not checked).

        Returns:
            {version: value} of the versions that have the metric (the original's result),
            with `.metric`, `.direction` ("min"/"max"), `.best`, `.all_values` and
            `.missing`: the versions without it, left out (and named in a warning with what
            they do record). A version that recorded the metric under a former name
            (`best_val_loss` for `val_loss`, `FORMER_NAMES`) is compared by it.

        Raises:
            NotFoundError: a version does not exist; ConfigError: the metric has no known
                direction, or it is a loss and two versions' losses measure different things
                (the message names them and the metrics to compare on instead), or two
                versions' figures were measured on different data.
        """
        direction = metric_direction(metric)
        stored = {v: self.get_metadata(model_name, v) for v in versions}
        recorded = {v: m.metrics for v, m in stored.items()}
        compared = Comparison(metric, direction, {v: recorded_metric(m, metric)
                                                  for v, m in recorded.items()})
        if is_loss(metric):
            check_comparable(model_name, metric, {v: loss_recipe(self._sidecar(model_name, v))
                                                  for v in compared}, recorded)
        split = measured_on(metric)
        if split is not None:
            check_same_data(model_name, metric, split, dict(compared),
                            {v: stored[v].dataset_fingerprints.get(split) for v in compared},
                            str(self.registry_dir))
        for version in compared.missing:
            has = ", ".join(sorted(recorded[version])) or "no metric"
            logger.warning("%s %s: no %s recorded (it has %s), left out of the comparison",
                           model_name, version, metric, has)
        return compared

    def _sidecar(self, model_name: str, version: str) -> dict | None:
        """A version's sidecar as registered (verified), None for an opaque artifact."""
        with self._connect(read_only=True) as conn:
            row = ops.resolve(conn, model_name, version, None, None)
        if not row["sidecar_sha256"]:
            return None
        folder = artifact_dir(self.artifacts_dir, model_name, version)
        return json.loads(artifacts.read_verified(folder / artifacts.SIDECAR_FILE,
                                                  row["sidecar_sha256"]))

    def aliases(self, model_name: str) -> dict[str, str]:
        """alias -> version for one model."""
        with self._connect(read_only=True) as conn:
            return ops.aliases_of(conn, model_name)

    def production_version(self, model_name: str) -> str | None:
        """The version of `model_name` in production, or None: one plain query, no sidecar
        read (a live run asks every 30 s)."""
        with self._connect(read_only=True) as conn:
            row = ops.production(conn, model_name)
        return None if row is None else row["version"]

    def history(self, model_name: str | None = None) -> list[Transition]:
        """The transition log (of one model, or all), oldest first."""
        query = "SELECT * FROM transitions" + (" WHERE model_name = ?" if model_name else "")
        with self._connect(read_only=True) as conn:
            rows = conn.execute(query + " ORDER BY id", (model_name,) if model_name else ())
            return [Transition(**dict(row)) for row in rows]

    def next_version(self, model_name: str, scheme: str = "semver", *,
                     conn: sqlite3.Connection | None = None) -> str:
        """A version after every registered one (see `training.registry.names.next_version`)."""
        if conn is None:
            with self._connect(read_only=True) as own:
                return self.next_version(model_name, scheme, conn=own)
        existing = [r[0] for r in conn.execute(
            "SELECT version FROM versions WHERE model_name = ?", (model_name,))]
        return next_version(existing, scheme)

    def print_registry(self, file: IO[str] | None = None) -> None:
        """Print every model's versions, stages, aliases and main metrics."""
        print(format_registry(self.list_models()), file=file or sys.stdout)


def _create_private(db_path: Path) -> None:
    """Create `db_path` empty (an empty file is an empty SQLite database) and readable by this
    user only (0600), unless it exists: sqlite3.connect would create it with the umask's mode,
    and SQLite gives its -wal and -shm files the database's mode."""
    try:
        os.close(os.open(db_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, PRIVATE))
    except FileExistsError:
        pass  # a registry already, or whatever is there: connect() says what it is
