"""Every registered version, mirrored into the MLflow Model Registry: same model names, the
same aliases (champion, challenger), our version, stage and latest transition reason as tags.

    mirror_version(window, registry, "layer1_vae", "1.1.0", run_id)   # after register/promote
    mirror_registry(window, registry)     # every version not mirrored yet; tags and aliases

The weights and sidecar go as plain artifacts of the MLflow run (`model/model.pt`,
`model/model.json`): no MLflow model flavor, nothing pickled. Our registry is the source of
truth: MLflow's aliases are set to ours, and an alias ours no longer has is removed there.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from training.registry.names import artifact_dir
from training.registry.registry import ModelRegistry
from training.tracking.window import MlflowWindow, open_window, tracking_uri

logger = logging.getLogger(__name__)

__all__ = ["mirror_new_version", "mirror_registry", "mirror_version", "sync_model"]

VERSION_TAG = "maximus.version"


def mirror_version(window: MlflowWindow, registry: ModelRegistry, model_name: str,
                   version: str, run_id: str | None, *, parent: str | None = None) -> None:
    """Mirror `model_name` `version` (its files go to `run_id`'s artifacts; when None, to a
    new run, nested under the run `parent` if given, that carries the version's
    hyperparameters, metrics and data fingerprints as the registry records them), then bring
    every mirrored version's tags and the aliases up to date."""
    if window.closed:
        return
    own_run = run_id is None
    if own_run:
        stored = registry.get_metadata(model_name, version)
        tags = {"maximus.model": model_name, VERSION_TAG: version,
                **({} if parent is None else {"mlflow.parentRunId": parent}),
                **{f"maximus.dataset.{k}": v for k, v in stored.dataset_fingerprints.items()}}
        run_id = window.start_run(f"{model_name} {version}", tags)
        window.log_params(run_id, stored.hyperparameters)
        window.log_metrics(run_id, stored.metrics)
    if run_id is None:
        return
    folder = artifact_dir(registry.artifacts_dir, model_name, version)
    window.log_files(run_id, sorted(p for p in folder.iterdir() if p.is_file()), "model")
    client = window.client
    if window.guard("find a registered model", _ensure_model, client, model_name) is None:
        return
    if version not in _mirrored(window, model_name):
        run = window.guard("read a run", client.get_run, run_id)
        if run is None:
            return
        window.guard("create a model version", client.create_model_version, model_name,
                     f"{run.info.artifact_uri}/model", run_id=run_id,
                     tags={VERSION_TAG: version},
                     description=registry.get_metadata(model_name, version).description or None)
    sync_model(window, registry, model_name)
    if own_run:
        window.end_run(run_id)


def mirror_new_version(uri: str | MlflowWindow | None, registry_dir: str | Path,
                       model_name: str, version: str | None, *,
                       parent: str | None = None) -> None:
    """After a registration outside a pipeline (`tune --train-best`, `retrain`): mirror
    `version` when an MLflow URI is set (`uri`, else $MLFLOW_TRACKING_URI; or an open
    window), its run nested under `parent` if given; else nothing."""
    if version is None:
        return
    if isinstance(uri, MlflowWindow):
        window: MlflowWindow | None = uri
    else:
        window = None if tracking_uri(uri) is None else open_window(uri)
    if window is not None:
        mirror_version(window, ModelRegistry(registry_dir, create=False), model_name, version,
                       None, parent=parent)


def mirror_registry(window: MlflowWindow, registry: ModelRegistry,
                    model_name: str | None = None) -> list[tuple[str, str]]:
    """Mirror every version of `model_name` (None: of every model) not mirrored yet, each
    with a run of its own, then bring tags and aliases up to date (e.g. after a promotion by
    hand). Returns the (model, version) pairs newly mirrored."""
    names = sorted({m.model_name for m in registry.search_models(model_name=model_name)})
    added = []
    for name in names:
        done = _mirrored(window, name)
        for stored in registry.search_models(model_name=name):
            if stored.version not in done and not window.closed:
                mirror_version(window, registry, name, stored.version, None)
                added.append((name, stored.version))
        sync_model(window, registry, name)
    return added


def sync_model(window: MlflowWindow, registry: ModelRegistry, model_name: str) -> None:
    """Tags (our stage and latest transition reason) of every mirrored version of
    `model_name`, and its aliases, as in our registry."""
    mirrored = _mirrored(window, model_name)
    reasons: dict[str, str] = {}
    for transition in registry.history(model_name):  # oldest first: the last one stays
        reasons[transition.version] = transition.reason
    client = window.client
    for ours, theirs in mirrored.items():
        stage = registry.get_metadata(model_name, ours).stage
        for key, value in (("maximus.stage", stage),
                           ("maximus.reason", reasons.get(ours, "") or "-")):
            window.guard("tag a model version", client.set_model_version_tag, model_name,
                         theirs, key, value)
    wanted = {alias: mirrored[v] for alias, v in registry.aliases(model_name).items()
              if v in mirrored}
    model = window.guard("read a registered model", client.get_registered_model, model_name)
    present = dict(getattr(model, "aliases", None) or {})
    for alias in present.keys() - wanted.keys():
        window.guard("remove an alias", client.delete_registered_model_alias, model_name, alias)
    for alias, theirs in wanted.items():
        if str(present.get(alias)) != str(theirs):
            window.guard("set an alias", client.set_registered_model_alias, model_name, alias,
                         theirs)


def _ensure_model(client: Any, model_name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(model_name)
    except MlflowException:  # RESOURCE_DOES_NOT_EXIST: the first version mirrored
        client.create_registered_model(
            model_name, tags={"maximus.source": "mirrored from the MAXIMUS model registry"})
    return True


def _mirrored(window: MlflowWindow, model_name: str) -> dict[str, str]:
    """Our version -> MLflow's version number, for the versions mirrored so far."""
    found = window.guard("search model versions", window.client.search_model_versions,
                         f"name = '{model_name}'") or []
    return {v.tags[VERSION_TAG]: str(v.version) for v in found if VERSION_TAG in (v.tags or {})}
