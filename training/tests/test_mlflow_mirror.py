"""The MLflow Model Registry mirror (training.tracking.mirror) on a real local SQLite store:
registries that share one store keep their versions and aliases apart, a mirroring problem
never fails the registration it follows, every mirrored version names its detector class, and
the README's recipe loads a mirrored version back.

Needs the `mlflow` extra; skipped without it, except where MAXIMUS_TEST_MLFLOW_REQUIRED=1.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from training.cli.main import main
from training.registry.registry import ModelMetadata, ModelRegistry
from training.tests.registry_fixtures import save_tiny
from training.tracking import mirror_registry, mirror_version, open_window
from training.tracking.mirror import registry_identity

REQUIRED = os.environ.get("MAXIMUS_TEST_MLFLOW_REQUIRED") == "1"
try:
    import mlflow
    from mlflow import MlflowClient
except ImportError:
    if REQUIRED:
        raise
    pytest.skip("mlflow is not installed (pip install -e '.[mlflow]'); "
                "MAXIMUS_TEST_MLFLOW_REQUIRED=1 makes this a failure", allow_module_level=True)

README = Path(__file__).resolve().parents[2] / "README.md"
# The README's recipe (MLflow section), run as written by the last test.
RECIPE = """\
import mlflow
from training.artifacts.model_files import load_model

mlflow.set_tracking_uri("sqlite:///mlflow.db")  # the --mlflow-uri the versions went to
folder = mlflow.artifacts.download_artifacts("models:/layer1_vae@champion")
detector = load_model(f"{folder}/model.pt")  # .model, .threshold, .calibration
"""


@pytest.fixture
def weights(tmp_path) -> Path:
    return save_tiny(tmp_path / "src" / "tiny_best.pt", centre=0.5, dim=128, threshold=3.0)


def _registry(folder: Path, weights: Path, versions: int, promote: str | None = None
              ) -> ModelRegistry:
    registry = ModelRegistry(folder)
    for minor in range(versions):
        registry.register_model(weights, ModelMetadata("layer1_vae", f"1.{minor}.0", "layer1"))
    if promote is not None:
        registry.transition_stage("layer1_vae", promote, "production", reason="by hand")
    return registry


def _versions(client: MlflowClient, name: str) -> dict[str, dict[str, str]]:
    """MLflow version number -> its tags, of the registered model `name`."""
    return {str(v.version): dict(v.tags) for v in
            client.search_model_versions(f"name = '{name}'")}


def _namespaced(registry: ModelRegistry) -> str:
    identity = str(registry.registry_dir.resolve())
    return f"layer1_vae-{hashlib.sha256(identity.encode()).hexdigest()[:8]}"


def test_two_registries_in_one_store_keep_their_versions_apart(tmp_path, weights, caplog):
    """Workdir A mirrored 1.0.0..1.3.0; B's registry has 1.0.0 only. Mirroring B's version
    used to read A's 1.3.0 from B's registry and fail after B had registered it."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = _registry(tmp_path / "wA" / "models", weights, 4, promote="1.3.0")
    window = open_window(uri)
    assert len(mirror_registry(window, first)) == 4
    second = _registry(tmp_path / "wB" / "models", weights, 1, promote="1.0.0")
    window = open_window(uri)  # B's pipeline: a process of its own
    with caplog.at_level(logging.WARNING):
        mirror_version(window, second, "layer1_vae", "1.0.0", None)
    assert not window.closed
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "another registry's" in warnings[0], warnings
    assert f"mirrored as {_namespaced(second)}" in warnings[0]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    # A's registered model: A's four versions, as A has them
    first_versions = _versions(client, "layer1_vae")
    assert sorted(t["maximus.version"] for t in first_versions.values()) == [
        "1.0.0", "1.1.0", "1.2.0", "1.3.0"]
    assert {t["maximus.registry"] for t in first_versions.values()} == {
        str(first.registry_dir.resolve())}
    assert {t["maximus.version"]: t["maximus.stage"] for t in first_versions.values()} == {
        "1.0.0": "none", "1.1.0": "none", "1.2.0": "none", "1.3.0": "production"}
    champion = client.get_registered_model("layer1_vae").aliases["champion"]
    assert first_versions[str(champion)]["maximus.version"] == "1.3.0"
    # B's, under a name of its own, with its own champion
    (mirrored,) = _versions(client, _namespaced(second)).values()
    assert (mirrored["maximus.version"], mirrored["maximus.stage"],
            mirrored["maximus.registry"]) == ("1.0.0", "production",
                                              str(second.registry_dir.resolve()))
    assert set(client.get_registered_model(_namespaced(second)).aliases) == {"champion"}
    # a later version of B's goes to the same name, and A's stays as it was
    second.register_model(weights, ModelMetadata("layer1_vae", "1.1.0", "layer1"))
    mirror_version(open_window(uri), second, "layer1_vae", "1.1.0", None)
    assert len(_versions(client, _namespaced(second))) == 2
    assert _versions(client, "layer1_vae") == first_versions


def test_a_pipeline_in_a_second_workdir_on_the_same_store_trains_every_layer(tmp_path):
    """The trial's report: workdir B's pipeline stopped after its layer 1 (registered and
    promoted) with "layer1_vae has no version '1.1.0'", A's, and wrote no report."""
    from training.demo.generator import write_demo_file

    demo = write_demo_file(tmp_path / "demo.json", n_events=1_500, seed=3)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def pipeline(work: str, *layers: str) -> int:
        return main(["pipeline", "--source", f"json:{demo}", "--layers", *layers, "--epochs",
                     "1", "--workdir", str(tmp_path / work), "--mlflow-uri", uri, "-q"])

    assert pipeline("wA", "layer1") == 0 and pipeline("wA", "layer1") == 0  # 1.0.0, 1.1.0
    assert pipeline("wB", "layer1", "layer3") == 0
    second = ModelRegistry(tmp_path / "wB" / "models")
    assert [m.version for m in second.search_models("layer3_tcn")] == ["1.0.0"]
    assert list((tmp_path / "wB" / "runs").glob("*/report/index.html"))
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert sorted(t["maximus.version"] for t in _versions(client, "layer1_vae").values()) == [
        "1.0.0", "1.1.0"]
    assert [t["maximus.version"] for t in _versions(client, _namespaced(second)).values()] == [
        "1.0.0"]
    assert [t["maximus.model_class"] for t in _versions(client, "layer3_tcn").values()] == [
        second.get_metadata("layer3_tcn", "1.0.0").model_class]


def test_mirroring_a_copied_registry_never_touches_the_originals_versions(tmp_path, weights,
                                                                          capsys):
    """`registry mirror` of a copy of workdir A, whose champion has moved on, into A's store:
    A's MLflow version 1 used to become archived and lose its champion alias to the copy's."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _registry(tmp_path / "wA" / "models", weights, 1, promote="1.0.0")
    assert main(["registry", "mirror", "--workdir", str(tmp_path / "wA"),
                 "--mlflow-uri", uri]) == 0
    shutil.copytree(tmp_path / "wA", tmp_path / "wA_copy")
    copy = ModelRegistry(tmp_path / "wA_copy" / "models")
    copy.register_model(weights, ModelMetadata("layer1_vae", "1.1.0", "layer1"))
    copy.transition_stage("layer1_vae", "1.1.0", "production", reason="the copy's")
    capsys.readouterr()
    assert main(["registry", "mirror", "--workdir", str(tmp_path / "wA_copy"),
                 "--mlflow-uri", uri]) == 0
    assert "mirrored 2 new version(s)" in capsys.readouterr().out
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    ((number, tags),) = _versions(client, "layer1_vae").items()
    assert (tags["maximus.version"], tags["maximus.stage"]) == ("1.0.0", "production")
    assert {a: str(v) for a, v in client.get_registered_model("layer1_vae").aliases.items()} \
        == {"champion": number}
    copied = {t["maximus.version"]: t["maximus.stage"]
              for t in _versions(client, _namespaced(copy)).values()}
    assert copied == {"1.0.0": "archived", "1.1.0": "production"}


def test_a_model_mirrored_by_an_earlier_release_is_left_alone(tmp_path, weights, caplog):
    """A registered model without the registry tag (an earlier release's mirror, or one made
    by hand) may be any registry's: ours goes beside it, with one warning that says why."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    registry = _registry(tmp_path / "w" / "models", weights, 1, promote="1.0.0")
    window = open_window(uri)
    client.create_registered_model("layer1_vae")
    with caplog.at_level(logging.WARNING):
        assert mirror_registry(window, registry) == [("layer1_vae", "1.0.0")]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "an earlier release" in warning and _namespaced(registry) in warning
    assert _versions(client, "layer1_vae") == {}
    assert [t["maximus.stage"] for t in _versions(client, _namespaced(registry)).values()] == [
        "production"]


def test_a_store_an_earlier_release_mirrored_is_adopted_when_every_version_is_ours(
        tmp_path, weights, caplog):
    """An upgrade: the store's layer1_vae and its versions carry no registry tag, and every
    version is one of this registry's: it is adopted (tagged ours), so the champion alias
    users load goes on following the registry; a version of another registry mixed in leaves
    it alone (review R2)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    registry = _registry(tmp_path / "w" / "models", weights, 2, promote="1.0.0")
    mirror_registry(open_window(uri), registry)
    for version in client.search_model_versions("name = 'layer1_vae'"):  # as before the tags
        client.delete_model_version_tag("layer1_vae", version.version, "maximus.registry")
    client.delete_registered_model_tag("layer1_vae", "maximus.registry")
    registry.transition_stage("layer1_vae", "1.1.0", "production", reason="by hand")
    with caplog.at_level(logging.WARNING):
        mirror_registry(open_window(uri), registry)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert client.get_model_version_by_alias("layer1_vae", "champion").tags[
        "maximus.version"] == "1.1.0"
    assert client.get_registered_model("layer1_vae").tags["maximus.registry"] == \
        registry_identity(registry)
    # Another registry's versions, numbered alike but of other weights: not adopted, its
    # versions go beside it.
    other = _registry(tmp_path / "x" / "models", save_tiny(tmp_path / "other.pt", centre=0.1,
                                                           dim=128, threshold=3.0), 2)
    client.delete_registered_model_tag("layer1_vae", "maximus.registry")
    with caplog.at_level(logging.WARNING):
        mirror_registry(open_window(uri), other)
    assert any("an earlier release" in r.getMessage() for r in caplog.records)
    assert client.get_model_version_by_alias("layer1_vae", "champion").tags[
        "maximus.version"] == "1.1.0"


def test_a_version_deleted_from_the_registry_is_tagged_deleted_not_an_error(tmp_path,
                                                                             weights):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registry = _registry(tmp_path / "w" / "models", weights, 2)
    mirror_registry(open_window(uri), registry)
    assert registry.delete_model("layer1_vae", "1.0.0")
    registry.register_model(weights, ModelMetadata("layer1_vae", "1.2.0", "layer1"))
    window = open_window(uri)
    mirror_version(window, registry, "layer1_vae", "1.2.0", None)
    assert not window.closed
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert sorted((t["maximus.version"], t["maximus.stage"]) for t in
                  _versions(client, "layer1_vae").values()) == [
        ("1.0.0", "deleted"), ("1.1.0", "none"), ("1.2.0", "none")]


@pytest.mark.parametrize("tagged", ["yes", "no", "unreadable"],
                         ids=["weights-tag", "mirrored-before-it", "before-it-and-unreadable"])
def test_a_registry_made_anew_at_the_same_path_gets_its_own_champion(tmp_path, weights, tagged):
    """`rm -rf w`, then a new pipeline in w: the new registry has the old one's path (its
    identity) and version numbers. Its 1.0.0 was taken for mirrored already: MLflow kept the
    deleted registry's weights under champion, and the new model never became a version. So
    did an old version mirrored before the weights tag whose files cannot be read (review)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mirror_registry(open_window(uri), _registry(tmp_path / "w" / "models", weights, 1,
                                                promote="1.0.0"))
    if tagged != "yes":  # as a release before the weights tag mirrored it
        client.delete_model_version_tag("layer1_vae", "1", "maximus.weights_sha256")
    if tagged == "unreadable":  # its run's files are gone
        shutil.rmtree(tmp_path / "mlflow.db-artifacts")
    shutil.rmtree(tmp_path / "w")
    other = save_tiny(tmp_path / "other.pt", centre=0.1, dim=128, threshold=3.0)
    registry = _registry(tmp_path / "w" / "models", other, 1, promote="1.0.0")
    mirror_version(open_window(uri), registry, "layer1_vae", "1.0.0", None)
    champion = client.get_model_version_by_alias("layer1_vae", "champion")
    (tmp_path / "got").mkdir()
    got = client.download_artifacts(champion.run_id, "model/model.pt", str(tmp_path / "got"))
    expected = registry.get_metadata("layer1_vae", "1.0.0").weights_sha256
    assert hashlib.sha256(Path(got).read_bytes()).hexdigest() == expected
    assert champion.tags["maximus.weights_sha256"] == expected
    assert {v: (t["maximus.version"], t["maximus.stage"])
            for v, t in _versions(client, "layer1_vae").items()} == {
        "1": ("1.0.0", "deleted"), "2": ("1.0.0", "production")}
    # and it stays so: a later mirror neither adds versions nor moves the alias back
    assert main(["registry", "mirror", "--workdir", str(tmp_path / "w"),
                 "--mlflow-uri", uri]) == 0
    assert len(_versions(client, "layer1_vae")) == 2
    assert client.get_model_version_by_alias("layer1_vae", "champion").version == \
        champion.version


def test_every_view_of_a_version_names_its_detector(tmp_path, weights, capsys):
    """Registry show (and --json), list, and the MLflow version and its run: the detector
    class, which only the sidecar named; a version registered before the registry recorded
    it takes its sidecar's."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registry = _registry(tmp_path / "w" / "models", weights, 2)
    assert registry.get_metadata("layer1_vae", "1.0.0").model_class == "TinyDetector"
    with sqlite3.connect(registry.db_path) as conn:  # as an earlier release recorded it
        conn.execute("UPDATE versions SET metadata = json_remove(metadata, '$.model_class') "
                     "WHERE version = '1.0.0'")
    flags = ["--workdir", str(tmp_path / "w")]
    capsys.readouterr()
    assert main(["registry", "show", "--model", "layer1_vae", "--version", "1.0.0",
                 *flags]) == 0
    fields = {line[:20].strip(): line[20:].strip()
              for line in capsys.readouterr().out.split("\n\n")[0].splitlines()[1:]}
    assert fields["detector"] == "TinyDetector"
    assert main(["registry", "show", "--model", "layer1_vae", "--json", *flags]) == 0
    assert json.loads(capsys.readouterr().out)["model_class"] == "TinyDetector"
    assert main(["registry", "list", *flags]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows[0][:5] == ["MODEL", "VERSION", "STAGE", "LAYER", "DETECTOR"]
    assert [r[4] for r in rows[1:]] == ["TinyDetector", "TinyDetector"]
    mirror_registry(open_window(uri), registry)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = client.search_model_versions("name = 'layer1_vae'")
    assert [v.tags["maximus.model_class"] for v in versions] == ["TinyDetector"] * 2
    assert {client.get_run(v.run_id).data.tags["maximus.model_class"] for v in versions} == {
        "TinyDetector"}


def test_the_readmes_recipe_loads_a_mirrored_version(tmp_path, weights, monkeypatch):
    """MLflow holds plain files (no MLflow flavor: mlflow.pytorch.load_model finds no
    MLmodel); the README says how to load one, and that recipe works as written."""
    monkeypatch.chdir(tmp_path)
    registry = _registry(tmp_path / "w" / "models", weights, 2, promote="1.1.0")
    mirror_registry(open_window("sqlite:///mlflow.db"), registry)
    scope: dict = {}
    try:
        exec(compile(RECIPE, "README.md", "exec"), scope)  # noqa: S102  our own README's code
    finally:
        mlflow.set_tracking_uri(None)
    loaded = scope["detector"]
    assert type(loaded.model).__name__ == "TinyDetector" and loaded.threshold == 3.0
    expected = registry.load_model("layer1_vae", "1.1.0")
    assert loaded.sidecar["sha256"] == expected.metadata.weights_sha256
    assert RECIPE in README.read_text(encoding="utf-8")
