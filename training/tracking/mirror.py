"""Every registered version, mirrored into the MLflow Model Registry: same model names, the
same aliases (champion, challenger), our version, stage, latest transition reason, detector
class and registry as tags.

    mirror_version(window, registry, "layer1_vae", "1.1.0", run_id)   # after register/promote
    mirror_registry(window, registry)     # every version not mirrored yet; tags and aliases

The weights and sidecar go as plain artifacts of the MLflow run (`model/model.pt`,
`model/model.json`): no MLflow model flavor, nothing pickled. Our registry is the source of
truth: MLflow's aliases are set to ours, and an alias ours no longer has is removed there.

Several registries (workdirs) may mirror into one MLflow store. Each is known there by its
identity (`registry_identity`: its folder's absolute path), a tag of every registered model and
model version it mirrors; a registry only ever matches, tags and aliases its own. A model name
that another registry (or an earlier release, which tagged none) already holds in the store is
mirrored as `<name>-<8 hex digits of our identity>`, with one warning that says so.

A registry deleted and made anew at the same path (`rm -rf WORKDIR`, then a pipeline) has the
same identity and numbers its versions from 1.0.0 again: a mirrored version is ours only when
its weights are our version's too (tag `maximus.weights_sha256`; checked once by download for
a version mirrored before the tag). The old registry's versions are tagged stage `deleted` and
lose their aliases; ours are mirrored beside them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.registry.metadata import ModelMetadata
from training.registry.names import artifact_dir
from training.registry.registry import ModelRegistry
from training.tracking.window import MlflowWindow, open_window, redacted, tracking_uri

logger = logging.getLogger(__name__)

__all__ = ["mirror_new_version", "mirror_registry", "mirror_version", "mlflow_model_name",
           "registry_identity", "sync_model"]

VERSION_TAG = "maximus.version"
REGISTRY_TAG = "maximus.registry"
CLASS_TAG = "maximus.model_class"
WEIGHTS_TAG = "maximus.weights_sha256"
UNREADABLE = "unreadable"  # its weights, mirrored before the tag, could not be read
_GONE_REASON = ("a version of a registry deleted from this path; the registry there now holds "
                "other weights under this version")
_MISSING = object()  # no registered model of that name in the store


def registry_identity(registry: ModelRegistry) -> str:
    """How MLflow tells this registry from the others mirrored into one store: its folder's
    absolute path (a copied or moved registry is another one there)."""
    return str(Path(registry.registry_dir).resolve())


def mirror_version(window: MlflowWindow, registry: ModelRegistry, model_name: str,
                   version: str, run_id: str | None, *, parent: str | None = None) -> None:
    """Mirror `model_name` `version` (its files go to `run_id`'s artifacts; when None, to a
    new run, nested under the run `parent` if given, that carries the version's
    hyperparameters, metrics and data fingerprints as the registry records them), then bring
    every mirrored version's tags and the aliases up to date.

    Never raises: the version is registered already, and a mirroring failure (MLflow's or
    ours) is one warning."""
    _safely(window, f"mirror {model_name} {version}", _mirror_version, window, registry,
            model_name, version, run_id, parent)


def _mirror_version(window: MlflowWindow, registry: ModelRegistry, model_name: str,
                    version: str, run_id: str | None, parent: str | None) -> None:
    if window.closed:
        return
    stored = registry.get_metadata(model_name, version)
    ours = registry_identity(registry)
    own_run = run_id is None
    if own_run:
        tags = {"maximus.model": model_name, VERSION_TAG: version, REGISTRY_TAG: ours,
                **({} if stored.model_class is None else {CLASS_TAG: stored.model_class}),
                **({} if parent is None else {"mlflow.parentRunId": parent}),
                **{f"maximus.dataset.{k}": v for k, v in stored.dataset_fingerprints.items()}}
        run_id = window.start_run(f"{model_name} {version}", tags)
    if run_id is None:
        return
    status = "FAILED"  # unless it gets to the end; KILLED on Ctrl-C or SIGTERM
    try:
        _fill_version(window, registry, model_name, version, run_id, own_run, stored, ours)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if own_run:  # never left RUNNING (review)
            window.end_run(run_id, status)


def _fill_version(window: MlflowWindow, registry: ModelRegistry, model_name: str, version: str,
                  run_id: str, own_run: bool, stored: ModelMetadata, ours: str) -> None:
    """The version's parameters and metrics (in a run of its own), files and MLflow model
    version, and the model's tags and aliases."""
    if own_run:
        window.log_params(run_id, stored.hyperparameters)
        window.log_metrics(run_id, stored.metrics)
    folder = artifact_dir(registry.artifacts_dir, model_name, version)
    window.log_files(run_id, sorted(p for p in folder.iterdir() if p.is_file()), "model")
    name = mlflow_model_name(window, registry, model_name)
    if name is not None and version not in _mirrored(window, registry, model_name, name)[0]:
        run = window.guard("read a run", window.client.get_run, run_id)
        if run is not None:
            tags = {VERSION_TAG: version, REGISTRY_TAG: ours, "maximus.model": model_name,
                    **({} if stored.model_class is None else {CLASS_TAG: stored.model_class}),
                    **({} if not stored.weights_sha256
                       else {WEIGHTS_TAG: stored.weights_sha256})}
            window.guard("create a model version", window.client.create_model_version, name,
                         f"{run.info.artifact_uri}/model", run_id=run_id, tags=tags,
                         description=stored.description or None)
    if name is not None:
        sync_model(window, registry, model_name)


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
        mirrored_as = mlflow_model_name(window, registry, name)
        if mirrored_as is None:
            continue
        done = _mirrored(window, registry, name, mirrored_as)[0]
        for stored in registry.search_models(model_name=name):
            if stored.version not in done and not window.closed:
                mirror_version(window, registry, name, stored.version, None)
                added.append((name, stored.version))
        _safely(window, f"update {name}'s tags and aliases", sync_model, window, registry,
                name)
    return added


def sync_model(window: MlflowWindow, registry: ModelRegistry, model_name: str) -> None:
    """Tags (our stage and latest transition reason) of every version of `model_name` this
    registry mirrored, and its aliases, as in our registry (a version deleted from ours is
    tagged stage `deleted`, and so is one of a registry deleted from our path: see the module
    docstring)."""
    name = mlflow_model_name(window, registry, model_name)
    if name is None:
        return
    mirrored, gone = _mirrored(window, registry, model_name, name)
    stages = {m.version: m.stage for m in registry.search_models(model_name=model_name)}
    reasons: dict[str, str] = {}
    for transition in registry.history(model_name):  # oldest first: the last one stays
        reasons[transition.version] = transition.reason
    client = window.client
    for ours, theirs in mirrored.items():
        for key, value in (("maximus.stage", stages.get(ours, "deleted")),
                           ("maximus.reason", reasons.get(ours, "") or "-")):
            window.guard("tag a model version", client.set_model_version_tag, name,
                         theirs, key, value)
    for theirs in gone:
        for key, value in (("maximus.stage", "deleted"), ("maximus.reason", _GONE_REASON)):
            window.guard("tag a model version", client.set_model_version_tag, name, theirs,
                         key, value)
    wanted = {alias: mirrored[v] for alias, v in registry.aliases(model_name).items()
              if v in mirrored}
    model = window.guard("read a registered model", client.get_registered_model, name)
    present = dict(getattr(model, "aliases", None) or {})
    for alias in present.keys() - wanted.keys():
        window.guard("remove an alias", client.delete_registered_model_alias, name, alias)
    for alias, theirs in wanted.items():
        if str(present.get(alias)) != str(theirs):
            window.guard("set an alias", client.set_registered_model_alias, name, alias,
                         theirs)


def mlflow_model_name(window: MlflowWindow, registry: ModelRegistry,
                      model_name: str) -> str | None:
    """The registered model of the MLflow store that this registry's `model_name` is mirrored
    to, created if need be: `model_name` when it is free or ours; else (another registry's, or
    untagged) `<model_name>-<8 hex>`, with one warning per window. None: the window closed."""
    ours = registry_identity(registry)
    known = window.model_names.get((ours, model_name))
    if known is not None:
        return known
    weights = {m.version: m.weights_sha256 for m in registry.search_models(model_name=model_name)}
    name = _claimed(window, model_name, ours, weights)
    if name is None and not window.closed:
        name = _claimed(window, f"{model_name}-{hashlib.sha256(ours.encode()).hexdigest()[:8]}",
                        ours)
        owner = window.guard("read a registered model", _owner, window.client, model_name)
        if name is None:
            logger.warning("MLflow at %s: the registered models %s and %s both belong to other "
                           "registries; %s of %s is not mirrored", window.shown, model_name,
                           f"{model_name}-*", model_name, ours)
        elif not window.closed:
            logger.warning(
                "MLflow at %s: the registered model %s is another registry's (%s): %s of the "
                "registry %s is mirrored as %s", window.shown, model_name,
                owner or "mirrored by an earlier release, which did not tag its registry",
                model_name, ours, name)
    if name is not None:
        window.model_names[(ours, model_name)] = name
    return name


def _claimed(window: MlflowWindow, name: str, ours: str,
             weights: dict[str, str | None] | None = None) -> str | None:
    """`name` when the store's registered model of that name is this registry's (created
    now when there is none, adopted when an earlier release mirrored it untagged and every
    version it holds is one of ours: `weights`, our version -> its weights' sha256); else
    None."""
    owner = window.guard("find a registered model", _owner, window.client, name)
    if owner is _MISSING:
        created = window.guard(
            "create a registered model", window.client.create_registered_model, name,
            tags={"maximus.source": "mirrored from the MAXIMUS model registry",
                  REGISTRY_TAG: ours})
        return None if created is None else name
    if owner == "" and weights is not None:  # an upgrade: its aliases are the ones users load
        return name if _adopted(window, name, ours, weights) else None
    return name if owner == ours else None


def _adopted(window: MlflowWindow, name: str, ours: str,
             weights: dict[str, str | None]) -> bool:
    """Tag the untagged registered model `name` and its versions as ours when it has versions
    and each is one of ours, its weights file the same bytes (a store mirrored by an earlier
    release); False, touching nothing, when one is not (another registry's, whose version
    numbers start at 1.0.0 too) or it has none (made by hand)."""
    found = window.guard("search model versions", window.client.search_model_versions,
                         f"name = '{name}'")
    if not found or not all(_same_weights(window, v, weights) for v in found):
        return False
    for version in found:
        window.guard("tag a model version", window.client.set_model_version_tag, name,
                     version.version, REGISTRY_TAG, ours)
    window.guard("tag a registered model", window.client.set_registered_model_tag, name,
                 REGISTRY_TAG, ours)
    return not window.closed


def _same_weights(window: MlflowWindow, version: Any, weights: dict[str, str | None]) -> bool:
    """Whether an MLflow model version's `model/model.pt` is our version's of its tag."""
    expected = weights.get((version.tags or {}).get(VERSION_TAG, ""))
    return expected is not None and _weights_of(window, version) == expected


def _weights_of(window: MlflowWindow, version: Any) -> str | None:
    """The sha256 of an MLflow model version's `model/model.pt` (None: gone or unreadable)."""
    import tempfile

    from mlflow.artifacts import download_artifacts

    if not version.run_id:
        return None
    with tempfile.TemporaryDirectory(prefix="maximus-adopt-") as folder:
        try:
            path = download_artifacts(run_id=version.run_id, artifact_path="model/model.pt",
                                      dst_path=folder, tracking_uri=window.uri)
        except Exception:  # noqa: BLE001  gone or unreadable: not shown to be ours
            return None
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _owner(client: Any, name: str) -> Any:
    """The registry tag of the registered model `name` ("" without one), or _MISSING."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return _MISSING
        raise
    return (getattr(model, "tags", None) or {}).get(REGISTRY_TAG, "")


def _mirrored(window: MlflowWindow, registry: ModelRegistry, model_name: str,
              name: str) -> tuple[dict[str, str], list[str]]:
    """The versions of the registered model `name` that this registry mirrored so far, as
    our version -> MLflow's version number; and MLflow's numbers of the versions a registry
    deleted from our path mirrored (tagged ours, but not our version's weights)."""
    found = window.guard("search model versions", window.client.search_model_versions,
                         f"name = '{name}'") or []
    ours = registry_identity(registry)
    weights = {m.version: m.weights_sha256 for m in registry.search_models(model_name=model_name)}
    mirrored: dict[str, str] = {}
    gone: list[str] = []
    for found_version in found:
        tags = found_version.tags or {}
        version = tags.get(VERSION_TAG)
        if version is None or tags.get(REGISTRY_TAG) != ours:
            continue
        if _ours(window, name, found_version, weights):
            mirrored[version] = str(found_version.version)
        else:
            gone.append(str(found_version.version))
    return mirrored, gone


def _ours(window: MlflowWindow, name: str, version: Any, weights: dict[str, str | None]) -> bool:
    """Whether an MLflow version tagged with our registry holds our version's weights. A
    version we no longer have (deleted here) counts as ours; one mirrored before the weights
    tag is tagged with its `model/model.pt`'s, downloaded once: one whose file cannot be read
    is tagged `unreadable` and is not ours (taken as ours, it would mask a registry made anew
    at the same path, and be downloaded again at every sync: review); ours is mirrored anew."""
    tags = version.tags or {}
    expected = weights.get(tags[VERSION_TAG])
    if not expected:
        return True
    found = tags.get(WEIGHTS_TAG)
    if found is None:
        found = _weights_of(window, version) or UNREADABLE
        window.guard("tag a model version", window.client.set_model_version_tag, name,
                     version.version, WEIGHTS_TAG, found)
    return found == expected


def _safely(window: MlflowWindow, what: str, call: Callable[..., Any], *args: Any) -> None:
    """`call(*args)`; any error (MLflow's are warned of and close the window already; this
    catches ours) is one warning: mirroring never fails a run."""
    try:
        call(*args)
    except Exception as exc:  # noqa: BLE001  the local registry is the source of truth
        text = redacted(str(exc), window.uri)
        logger.warning("MLflow at %s: could not %s (%s: %s); it stays as it is in the local "
                       "registry (`maximus-train registry mirror` tries again)", window.shown,
                       what, type(exc).__name__, text.splitlines()[0] if text else "")
