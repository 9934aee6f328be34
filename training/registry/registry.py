"""The model registry: versions, stages, aliases, an append-only transition log, rollback.

    registry = ModelRegistry()                       # training/models (see training.paths)
    registry.register_model("training/checkpoints/layer1_vae_best.pt",
                            ModelMetadata("layer1_vae", "1.0.0", "layer1", metrics={...}))
    registry.transition_stage("layer1_vae", "1.0.0", "production", reason="beats 0.9.0")
    loaded = registry.get_model("layer1_vae", stage="production")   # verified on load
    registry.rollback("layer1_vae")                  # the previous production is back

Layout of the registry folder: `registry.db` (SQLite, WAL; see `training.registry.store` for
the rules the database itself enforces) and `artifacts/<model>/<version>/model.{pt,json}`.

A file without a sidecar (`torch.save(model.state_dict(), path)`, the original way) is
registered as an opaque artifact: staged, compared, searched and verified by sha256 like any
version, but never loaded into a detector until `attach_sidecar` gives it one. The results of
the original calls (paths, `{name: [versions]}`, `{version: value}`) are served by
`training.registry.results`.

Stages go none -> staging -> production -> archived (any move between two stages is allowed
and logged). Promoting a version to production archives the previous one in the same
transaction, moves the `champion` alias to it (`champion` always names the production
version) and remembers the version it replaced, which is what `rollback` restores.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from training.artifacts.model_files import make_sidecar
from training.errors import ConfigError, NotFoundError, RegistryError
from training.features.encoding import FeatureSpec
from training.registry import artifacts, ops
from training.registry.history import Transition, actor_name, log, now
from training.registry.metadata import ModelMetadata, complete_metadata
from training.registry.names import CHAMPION, artifact_dir, check_name, check_stage
from training.registry.queries import RegistryQueries
from training.registry.refused import gate_refusal
from training.registry.results import RegisteredModel, RegisteredPath
from training.registry.rule_change import rule_change
from training.registry.store import transaction

__all__ = ["ModelMetadata", "ModelRegistry", "RegisteredModel", "RegisteredPath", "Transition"]

logger = logging.getLogger(__name__)


class ModelRegistry(RegistryQueries):
    """Registered model versions under `registry_dir`, safe to share between processes: the
    queries of `RegistryQueries` (same arguments and errors) and the writes below."""

    # -- changes ---------------------------------------------------------------------------

    def register_model(self, model_path: str | Path, metadata: ModelMetadata, *,
                       files: Mapping[str, str | Path] | None = None,
                       reason: str = "registered", actor: str | None = None,
                       next_version: str | None = None, stage_reason: str | None = None,
                       replacing: str | None | object = ops.ANY) -> RegisteredPath:
        """Copy a saved model (`<name>.pt` + `<name>.json`) into the registry as a new version.

        Weights without a `<name>.json` sidecar (a plain state_dict) become an opaque artifact
        (see the module docstring).

        `files` (name -> path) are attached to the version (e.g. a drift reference sample);
        they are copied with the model and verified by sha256 when read (`read_file`).

        The model's FeatureSpec fingerprint and threshold fill `metadata` where it has none
        (and must agree where it has them); code and library versions are this process's
        unless given. A `metadata.stage` other than "none" is applied in the same transaction
        (a promotion cannot be lost between the two), with `stage_reason` (default `reason`)
        and `replacing` as in `transition_stage`.

        `next_version` (a scheme, e.g. "semver") registers the next version of that scheme,
        chosen under the write lock, in place of `metadata.version`: processes registering
        at once never pick the same one.

        Returns:
            The registered weights' path (the original's result), carrying the metadata as
            stored (stage, aliases and weights sha256 filled in): `.metadata`, `.version`, ...

        Raises:
            RegistryError: the version exists.
            CheckpointError: the file is not a verifiable saved model (see artifacts.store).
            ConfigError: the metadata disagrees with the model's sidecar.
        """
        name = metadata.model_name
        actor = actor_name(actor)
        # Files are written under the write lock, then the row: a version has both or neither.
        with self._connect() as conn, transaction(conn):
            if next_version is not None:
                metadata = replace(metadata, version=self.next_version(name, next_version,
                                                                       conn=conn))
            version = metadata.version
            folder = artifact_dir(self.artifacts_dir, name, version)
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
                ops.move(conn, name, version, stored.stage,
                         reason if stage_reason is None else stage_reason, actor, replacing)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
        logger.info("registered %s %s (%s%s)", name, version, stored.stage,
                    "" if sidecar else ", opaque: no sidecar")
        return RegisteredPath(folder / artifacts.WEIGHTS_FILE, self.get_metadata(name, version),
                              opaque=sidecar is None)

    def attach_sidecar(self, model_name: str, version: str, model_class: str | type,
                       init_args: dict[str, Any] | None = None, *,
                       feature_spec: FeatureSpec | None = None,
                       anomaly_threshold: float | None = None, reason: str = "",
                       actor: str | None = None) -> ModelMetadata:
        """Give an opaque version the sidecar it lacks, so that it loads as a detector.

        Args:
            model_class: the detector class (or its name) the weights belong to, one of
                `training.detectors.DETECTORS`.
            init_args: its constructor arguments.
            feature_spec, anomaly_threshold: what the sidecar records of the transform and
                the alert threshold, if known.

        Returns:
            The version's metadata (no longer opaque).

        Raises:
            RegistryError: the version already has a sidecar (it never changes: register the
                weights again as a new version instead).
            CheckpointError: the weights do not load into that class with those arguments.
        """
        class_name = model_class if isinstance(model_class, str) else model_class.__name__
        actor = actor_name(actor)
        with self._connect() as conn, transaction(conn):
            row = ops.get_row(conn, model_name, version)
            if row["sidecar_sha256"]:
                raise RegistryError(f"{model_name} {version} already has a sidecar; register "
                                    "the weights again as a new version to change it")
            folder = artifact_dir(self.artifacts_dir, model_name, version)
            sidecar = make_sidecar(class_name, dict(init_args or {}), row["weights_sha256"],
                                   artifacts.WEIGHTS_FILE, feature_spec=feature_spec,
                                   threshold=anomaly_threshold)
            artifacts.read_verified(folder / artifacts.WEIGHTS_FILE, row["weights_sha256"])
            sidecar_sha = artifacts.attach_sidecar(folder, sidecar)
            record = json.loads(row["metadata"])
            record.update(feature_fingerprint=None if feature_spec is None
                          else feature_spec.fingerprint, anomaly_threshold=anomaly_threshold,
                          model_class=class_name)
            conn.execute("UPDATE versions SET sidecar_sha256 = ?, metadata = ? WHERE seq = ?",
                         (sidecar_sha, json.dumps(record, sort_keys=True), row["seq"]))
            # Logged as a registration of the loadable model (the stage does not change).
            note = f"sidecar attached: {class_name}" + (f": {reason}" if reason else "")
            log(conn, model_name, version, "register", row["stage"], row["stage"], None, note,
                actor)
        return self.get_metadata(model_name, version)

    def transition_stage(self, model_name: str, version: str, new_stage: str, *,
                         reason: str = "", actor: str | None = None,
                         replacing: str | None | object = ops.ANY) -> bool:
        """Move a version to `new_stage`; promoting to production archives the previous
        production version in the same transaction, and warns when the promoted version sets
        its alert threshold by another rule than the one it replaces (`rule_change`), or when
        the gate that registered it refused to deploy it (`gate_refusal`).

        Args:
            replacing: promote only if this version (None: no version) is in production now,
                e.g. the champion a challenger was compared with; RegistryError otherwise.

        Returns:
            True when the stage changed; False when the version was already there, or when the
            change is refused (the original's result): an unknown stage, model or version is
            logged as an error naming the valid ones.

        Raises:
            RegistryError: `replacing` is not the production version any more.
        """
        try:
            check_stage(new_stage)
            with self._connect() as conn, transaction(conn):
                current = ops.production(conn, model_name)
                moved = ops.move(conn, model_name, version, new_stage, reason,
                                 actor_name(actor), replacing)
                notes = _production_notes(conn, current, model_name, version,
                                          rollback=False) \
                    if moved and new_stage == "production" else []
        except (ConfigError, NotFoundError) as exc:
            logger.error("%s %s not moved to %r: %s", model_name, version, new_stage, exc)
            return False
        for note in notes:
            logger.warning("%s", note)
        return moved

    def rollback(self, model_name: str, *, reason: str = "", actor: str | None = None) -> str:
        """Archive the production version and bring back the one it replaced.

        Rolling back again goes one further step back (each version remembers the one it
        replaced when it was promoted). It warns as a promotion does (`transition_stage`): a
        version the gate refused, or another threshold rule, is back in production.

        Returns:
            The version now in production.

        Raises:
            RegistryError: no production version, or it replaced none (or that one was deleted).
        """
        actor = actor_name(actor)
        with self._connect() as conn, transaction(conn):
            current = ops.production(conn, model_name)
            if current is None:
                if model_name not in ops.model_names(conn):  # a typo names no model
                    raise ops.unknown_model(model_name, ops.model_names(conn))
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
            notes = _production_notes(conn, current, model_name, previous, rollback=True)
        logger.info("rolled back %s from %s to %s", model_name, old, previous)
        for warning in notes:
            logger.warning("%s", warning)
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
            With `version`: True when it was deleted, False when refused (the original's
            result): an unknown version, or one in production, logged as an error saying why.
            Without: the number of versions deleted.

        Raises:
            RegistryError (every version): one of them is in production (archive or roll
                back first); NotFoundError: no such model.
        """
        if version is not None:
            try:
                return self._delete(model_name, version, reason, actor_name(actor)) == 1
            except (NotFoundError, RegistryError) as exc:
                logger.error("%s %s not deleted: %s", model_name, version, exc)
                return False
        return self._delete(model_name, None, reason, actor_name(actor))

    def _delete(self, model_name: str, version: str | None, reason: str, actor: str) -> int:
        with self._connect() as conn, transaction(conn):
            rows = [ops.get_row(conn, model_name, version)] if version is not None else \
                conn.execute("SELECT * FROM versions WHERE model_name = ?", (model_name,)).fetchall()
            if not rows:
                raise ops.unknown_model(model_name, ops.model_names(conn))
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


def _production_notes(conn: Any, replaced: Any, model_name: str, version: str, *,
                      rollback: bool) -> list[str]:
    """The warnings of `version` going into production over the version row `replaced`
    (None: none was), by promotion or by a `rollback`, each worded for that action: the gate
    refused it (`gate_refusal`), or it sets its threshold by another rule (`rule_change`)."""
    promoted = ops.metadata_of(conn, ops.get_row(conn, model_name, version))
    action = f"rolling {model_name} back to it" if rollback else "promoting it to production"
    notes = [gate_refusal(promoted, action)]
    if replaced is not None:
        notes.append(rule_change(ops.metadata_of(conn, replaced), promoted, rollback=rollback))
    return [note for note in notes if note]
