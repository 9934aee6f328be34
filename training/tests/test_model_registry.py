"""The model registry: atomic promotion, the transition log, verified artifacts, crash safety."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import random
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from training.artifacts.model_files import read_sidecar, sha256_bytes
from training.cli.main import main
from training.errors import CheckpointError, ConfigError, NotFoundError, RegistryError, SchemaError
from training.features.encoding import FeatureSpec
from training.features.layer1 import Layer1Featurizer
from training.registry.metadata import metric_direction
from training.registry.names import next_version
from training.registry.registry import ModelMetadata, ModelRegistry
from training.tests.registry_fixtures import race_worker, register_forever, save_tiny

FORK = multiprocessing.get_context("fork")  # children share the parent's imports (torch is slow to import)


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "models")


@pytest.fixture
def weights(tmp_path) -> Path:
    return save_tiny(tmp_path / "src" / "tiny.pt", centre=0.5, threshold=2.25)


def meta(version: str, **kwargs) -> ModelMetadata:
    return ModelMetadata("tiny", version, "layer1", **kwargs)


def test_register_and_load_round_trip(registry, weights):
    stored = registry.register_model(weights, meta("1.0.0", metrics={"pr_auc": 0.75},
                                                   hyperparameters={"lr": 0.001},
                                                   dataset_fingerprints={"train": "abc"}))
    sidecar = read_sidecar(weights)
    assert stored.stage == "none" and stored.aliases == []
    assert stored.weights_sha256 == sidecar["sha256"] == sha256_bytes(weights.read_bytes())
    assert stored.anomaly_threshold == 2.25
    assert stored.feature_fingerprint == Layer1Featurizer().spec.fingerprint
    assert stored.code_version.startswith(("git:", "maximus-training"))
    assert stored.library_versions["torch"] == torch.__version__
    loaded = registry.get_model("tiny", "1.0.0", expected_spec=Layer1Featurizer().spec)
    assert loaded.model.centre.tolist() == [0.5] * 4
    assert loaded.threshold == 2.25 and loaded.metadata == stored
    assert loaded.path == registry.artifacts_dir / "tiny" / "1.0.0" / "model.pt"
    assert registry.get_metadata("tiny").metrics == {"pr_auc": 0.75}
    with pytest.raises(RegistryError, match="already registered.*1.1.0"):
        registry.register_model(weights, meta("1.0.0"))


def test_attached_files_are_copied_and_verified(registry, weights, tmp_path):
    sample = tmp_path / "reference.npz"
    sample.write_bytes(b"reference rows")
    stored = registry.register_model(weights, meta("1.0.0"), files={"reference.npz": sample})
    assert stored.files == {"reference.npz": sha256_bytes(b"reference rows")}
    sample.write_bytes(b"changed later")  # the registry holds its own copy
    assert registry.read_file("tiny", "reference.npz") == b"reference rows"
    (registry.artifacts_dir / "tiny" / "1.0.0" / "reference.npz").write_bytes(b"tampered")
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        registry.read_file("tiny", "reference.npz", "1.0.0")
    with pytest.raises(NotFoundError, match="no attached file 'notes.txt'; it has: reference.npz"):
        registry.read_file("tiny", "notes.txt")
    with pytest.raises(ConfigError, match="reserved"):
        registry.register_model(weights, meta("1.1.0"), files={"model.json": sample})
    with pytest.raises(ConfigError, match="no path separators"):
        registry.register_model(weights, meta("1.1.0"), files={"../x": sample})
    assert [m.version for m in registry.list_models()] == ["1.0.0"]


def test_promotion_archives_previous_and_champion_follows(registry, weights):
    for version in ("1.0.0", "1.1.0"):
        registry.register_model(weights, meta(version))
    assert registry.transition_stage("tiny", "1.0.0", "production", reason="first")
    assert not registry.transition_stage("tiny", "1.0.0", "production")  # already there
    assert registry.transition_stage("tiny", "1.1.0", "production", reason="better")
    stages = {m.version: m.stage for m in registry.list_models("tiny")}
    assert stages == {"1.0.0": "archived", "1.1.0": "production"}
    assert registry.aliases("tiny") == {"champion": "1.1.0"}
    assert registry.get_model("tiny", alias="champion").metadata.version == "1.1.0"
    stage_log = [(t.version, t.from_stage, t.to_stage, t.reason) for t in registry.history("tiny")
                 if t.event == "stage"]
    assert stage_log == [("1.0.0", "none", "production", "first"),
                         ("1.0.0", "production", "archived", "replaced by 1.1.0: better"),
                         ("1.1.0", "none", "production", "better")]
    with pytest.raises(RegistryError, match="production is 1.1.0, not 1.0.0"):
        registry.transition_stage("tiny", "1.0.0", "production", replacing="1.0.0")
    registry.transition_stage("tiny", "1.1.0", "archived")
    assert registry.aliases("tiny") == {}  # no production, no champion
    assert registry.transition_stage("tiny", "1.0.0", "production", replacing=None)
    with pytest.raises(ConfigError, match="champion"):
        registry.set_alias("tiny", "champion", "1.0.0")


def test_rollback_steps_back_one_production_at_a_time(registry, weights):
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        registry.register_model(weights, meta(version))
        registry.transition_stage("tiny", version, "production")
    assert registry.rollback("tiny", reason="alerts doubled") == "1.1.0"
    assert registry.get_metadata("tiny", stage="production").version == "1.1.0"
    assert registry.aliases("tiny") == {"champion": "1.1.0"}
    assert registry.rollback("tiny") == "1.0.0"
    with pytest.raises(RegistryError, match="1.0.0 replaced no earlier version"):
        registry.rollback("tiny")
    last = registry.history("tiny")[-2]
    assert (last.version, last.from_stage, last.to_stage, last.reason) == \
        ("1.0.0", "archived", "production", "rollback from 1.1.0")


def test_a_rule_change_is_worded_for_the_action_that_made_it(registry, weights, caplog):
    """A rollback to a version of another threshold rule advised training it with the rule of
    the version rolled back from ("train it with threshold rule ... to keep it"), advice for a
    promotion; now the rollback's note says the rate goes back and how to keep the other."""
    rules = {"1.0.0": "auto", "1.1.0": "quantile:0.999"}
    for version, rule in rules.items():
        registry.register_model(weights, meta(version, hyperparameters={"threshold_rule": rule}))
    registry.transition_stage("tiny", "1.0.0", "production")
    with caplog.at_level(logging.WARNING, logger="training.registry.registry"):
        registry.transition_stage("tiny", "1.1.0", "production")
        promoted = [r.getMessage() for r in caplog.records]
        caplog.clear()
        assert registry.rollback("tiny") == "1.0.0"
        rolled_back = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert promoted == [
        "tiny 1.1.0 sets its alert threshold by rule 'quantile:0.999', the production 1.0.0 it "
        "replaces by 'auto': the alert rate changes with the rule (train it with threshold rule "
        "'auto' to keep it)"]
    assert rolled_back == [
        "tiny 1.0.0, back in production, sets its alert threshold by rule 'auto', the "
        "production 1.1.0 rolled back from by 'quantile:0.999': the alert rate goes back to what "
        "rule 'auto' gives (to keep what 'quantile:0.999' gives, train a new version with "
        "threshold rule 'quantile:0.999' and promote it)"]


def test_database_refuses_second_production_row_and_log_edits(registry, weights):
    registry.register_model(weights, meta("1.0.0", stage="production"))
    registry.register_model(weights, meta("1.1.0"))
    conn = sqlite3.connect(registry.db_path)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        conn.execute("INSERT INTO versions (model_name, version, layer_name, stage, registered_at,"
                     " metadata, weights_sha256, sidecar_sha256) VALUES ('tiny', '9.0.0', "
                     "'layer1', 'production', 'now', '{}', 'x', 'y')")
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        conn.execute("UPDATE versions SET stage = 'production' WHERE version = '1.1.0'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE transitions SET reason = 'nothing happened'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM transitions")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute("UPDATE versions SET stage = 'prod' WHERE version = '1.1.0'")
    conn.close()
    assert [m.stage for m in registry.list_models()] == ["production", "none"]


@pytest.mark.parametrize("bad", ["../evil", "/etc", "a/b", "a\\b", "..", ".hidden", "", "x" * 129,
                                 "v 1"])
def test_names_that_could_escape_the_registry_are_refused(registry, weights, bad, tmp_path):
    for metadata in (lambda: ModelMetadata(bad, "1.0.0", "layer1"),
                     lambda: ModelMetadata("tiny", bad, "layer1")):
        with pytest.raises(ConfigError, match="no path separators"):
            metadata()
    registry.register_model(weights, meta("1.0.0"))
    with pytest.raises(ConfigError, match="alias must be"):
        registry.set_alias("tiny", bad, "1.0.0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "src"]


def test_modified_artifacts_are_refused_with_sha256_mismatch(registry, weights):
    registry.register_model(weights, meta("1.0.0"))
    folder = registry.artifacts_dir / "tiny" / "1.0.0"
    data = bytearray((folder / "model.pt").read_bytes())
    data[-30] ^= 1
    (folder / "model.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        registry.get_model("tiny", "1.0.0")
    # A consistent pair of edited files does not help: the sidecar is checked against the DB.
    save_tiny(folder / "model.pt", centre=9.0, threshold=2.25)
    with pytest.raises(CheckpointError, match="model.json: sha256 mismatch"):
        registry.get_model("tiny", "1.0.0")


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # unpickling this creates the marker file
        return (open, (str(self.marker), "w"))


def test_pickle_that_would_run_code_is_refused_without_running_it(registry, weights, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil" / "model.pt"
    evil.parent.mkdir()
    torch.save({"centre": _Evil(marker)}, evil)
    sidecar = read_sidecar(weights)
    sidecar["sha256"] = sha256_bytes(evil.read_bytes())  # a sidecar that vouches for it
    evil.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.raises(CheckpointError, match="not registered: holds code or objects"):
        registry.register_model(evil, meta("6.6.6"))
    assert not marker.exists()
    assert registry.list_models() == [] and not (registry.artifacts_dir / "tiny" / "6.6.6").exists()
    # Swapped in after registration, it fails the sha256 check before anything is read.
    registry.register_model(weights, meta("1.0.0"))
    (registry.artifacts_dir / "tiny" / "1.0.0" / "model.pt").write_bytes(evil.read_bytes())
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        registry.get_model("tiny", "1.0.0")
    assert not marker.exists()
    # The file really is malicious: an unsafe load would have run it.
    torch.load(evil, weights_only=False)
    assert marker.exists()


def test_eight_processes_register_and_promote_one_model(tmp_path):
    root = tmp_path / "models"  # created by the racing workers themselves
    workers, rounds = 8, 4
    sources = [save_tiny(tmp_path / f"w{w}" / "tiny.pt", centre=float(w)) for w in range(workers)]
    children = [FORK.Process(target=race_worker, args=(root, sources[w], w, rounds))
                for w in range(workers)]
    for child in children:
        child.start()
    for child in children:
        child.join(120)
    assert [c.exitcode for c in children] == [0] * workers

    registry = ModelRegistry(root)
    versions = registry.list_models("race")
    assert len(versions) == workers * rounds
    assert [m.stage for m in versions].count("production") == 1
    log = registry.history("race")
    # Replaying the log gives every version's current stage and the champion alias.
    stages: dict[str, str] = {}
    champion = None
    for entry in log:
        if entry.event in ("register", "stage"):
            assert stages.get(entry.version) == entry.from_stage
            stages[entry.version] = entry.to_stage
        elif entry.alias == "champion":
            champion = entry.version if entry.event == "alias" else None
    assert stages == {m.version: m.stage for m in versions}
    assert registry.aliases("race") == {"champion": champion}
    assert stages[champion] == "production"
    moves = Counter((e.from_stage, e.to_stage) for e in log if e.event == "stage")
    assert moves == {("none", "production"): workers * rounds,
                     ("production", "archived"): workers * rounds - 1}
    assert Counter(e.actor for e in log if e.event == "register") == \
        {f"worker{w}": rounds for w in range(workers)}


def _progress(path: Path) -> tuple[str | None, set[str]]:
    """The last version a register_forever child started, and those it finished."""
    words = path.read_text().split() if path.exists() else []
    pairs = list(zip(words[0::2], words[1::2]))
    started = [v for kind, v in pairs if kind == "start"]
    return (started[-1] if started else None), {v for kind, v in pairs if kind == "done"}


def test_sigkill_during_register_leaves_no_half_registered_version(tmp_path):
    root, progress = tmp_path / "models", tmp_path / "progress.txt"
    weights = save_tiny(tmp_path / "src" / "tiny.pt", centre=1.0, dim=256)
    rng = random.Random(3)
    mid_registration = 0
    for _ in range(3):
        child = FORK.Process(target=register_forever, args=(root, weights, progress))
        child.start()
        goal = len(_progress(progress)[1]) + 2
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_progress(progress)[1]) < goal:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.02))  # land somewhere inside a later register_model call
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert child.exitcode == -signal.SIGKILL

        registry = ModelRegistry(root)
        in_flight, finished = _progress(progress)
        rows = {m.version for m in registry.list_models("crash")}
        assert finished <= rows
        if in_flight not in rows:  # killed mid-registration: the version does not exist
            mid_registration += 1
            with pytest.raises(NotFoundError):
                registry.load_model("crash", in_flight)
        # A version exists with its row, its log entry and complete, verified files, or not
        # at all: no log entry without a row, no row whose files fail to load.
        assert {e.version for e in registry.history("crash")} == rows
        for version in rows:
            assert registry.get_model("crash", version).model.centre.shape == (256,)
    assert mid_registration >= 1  # (each kill lands there ~90% of the time on the dev VM)
    # What a killed registration left on disk is invisible and cleared by the next write.
    registry.register_model(weights, ModelMetadata("crash", "99.0.0", "layer1"))
    names = {p.name for p in (root / "artifacts" / "crash").iterdir()}
    assert names == {m.version for m in registry.list_models("crash")}


def test_delete_search_and_compare(registry, weights):
    registry.register_model(weights, meta("1.0.0", metrics={"accuracy": 0.9, "val_loss": 0.2}))
    registry.register_model(weights, meta("1.1.0", metrics={"accuracy": 0.8, "val_loss": 0.1},
                                          stage="production"))
    registry.register_model(weights, ModelMetadata("other", "1.0.0", "layer3"))
    assert [(m.model_name, m.version) for m in registry.search_models(min_accuracy=0.85)] == \
        [("tiny", "1.0.0")]
    assert [m.model_name for m in registry.search_models(layer_name="layer3")] == ["other"]
    assert [m.version for m in registry.search_models(stage="production")] == ["1.1.0"]
    compared = registry.compare_models("tiny", ["1.0.0", "1.1.0"], "val_loss")
    assert compared == {"1.0.0": 0.2, "1.1.0": 0.1}  # the original's {version: value}
    assert compared.summary() == {"metric": "val_loss", "direction": "min",
                                  "values": {"1.0.0": 0.2, "1.1.0": 0.1}, "best": "1.1.0",
                                  "missing": []}
    assert compared["best"] == compared.best == "1.1.0" and compared["direction"] == "min"
    assert registry.compare_models("tiny", ["1.0.0", "1.1.0"], "accuracy")["best"] == "1.0.0"
    with pytest.raises(ConfigError, match="no known direction"):
        registry.compare_models("tiny", ["1.0.0"], "goodness")
    with pytest.raises(RegistryError, match="in production"):
        registry.delete_model("tiny")
    registry.set_alias("tiny", "challenger", "1.0.0")
    assert registry.delete_model("tiny", "1.0.0", reason="bad data") == 1
    assert not (registry.artifacts_dir / "tiny" / "1.0.0").exists()
    assert registry.aliases("tiny") == {"champion": "1.1.0"}
    with pytest.raises(NotFoundError, match="no version '1.0.0'; known: 1.1.0"):
        registry.load_model("tiny", "1.0.0")
    assert registry.get_model("tiny", "1.0.0") is None  # the original's "not found"
    assert [(e.event, e.from_stage, e.reason) for e in registry.history("tiny")[-2:]] == \
        [("unalias", None, "bad data"), ("delete", "none", "bad data")]
    with pytest.raises(NotFoundError, match="no model named 'nope'; known: other, tiny"):
        registry.load_model("nope")


def test_feature_spec_and_metadata_must_match_the_model(registry, weights):
    with pytest.raises(ConfigError, match="anomaly_threshold is 3.0 but the model's sidecar says 2.25"):
        registry.register_model(weights, meta("1.0.0", anomaly_threshold=3.0))
    assert registry.list_models() == []
    registry.register_model(weights, meta("1.0.0"))
    other = FeatureSpec("layer1", "l1.v1", {"robust": True}, {"lo": [0.0]})
    with pytest.raises(SchemaError, match="another feature transform"):
        registry.get_model("tiny", expected_spec=other)
    with pytest.raises(ConfigError, match="at most one of version, stage and alias"):
        registry.get_model("tiny", "1.0.0", stage="production")
    with pytest.raises(NotFoundError, match="no version in stage 'production'"):
        registry.load_model("tiny", stage="production")


def test_versions_and_metric_directions():
    assert next_version([]) == "1.0.0"
    assert next_version(["1.0.0", "1.9.0", "1.10.0", "nightly"]) == "1.11.0"
    from datetime import datetime, timezone
    at = datetime(2026, 11, 27, 14, 25, 30, 123456, tzinfo=timezone.utc)
    assert next_version([], "timestamp", now=at) == "20261127T142530123456Z"
    with pytest.raises(ConfigError, match="scheme must be one of semver, timestamp"):
        next_version([], "calver")
    assert [metric_direction(m) for m in ("val_loss", "pr_auc", "recon_error", "f1_score")] == \
        ["min", "max", "min", "max"]


def test_registry_command(tmp_path, weights, capsys):
    root = ["--registry-dir", str(tmp_path / "models")]
    for version in ("1.0.0", "1.1.0"):
        assert main(["registry", "register", "--model", "tiny", "--version", version,
                     "--model_path", str(weights), "--metrics", '{"pr_auc": 0.5}', *root]) == 0
        assert main(["registry", "promote", "--model", "tiny", "--version", version,
                     "--reason", f"try {version}", *root]) == 0
    capsys.readouterr()
    assert main(["registry", "rollback", "--model", "tiny", *root]) == 0
    assert capsys.readouterr().out == "tiny: production is now 1.0.0\n"
    assert main(["registry", "list", *root]) == 0
    listing = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert listing[0][:3] == ["MODEL", "VERSION", "STAGE"]
    assert listing[1][:3] == ["tiny", "1.0.0", "production"] and "champion" in listing[1]
    assert main(["registry", "show", "--model", "tiny", "--stage", "production", "--json",
                 *root]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"] == {"pr_auc": 0.5}
    assert main(["registry", "history", "--model", "tiny", "--json", *root]) == 0
    assert [e["reason"] for e in json.loads(capsys.readouterr().out) if e["event"] == "stage"][:2] \
        == ["try 1.0.0", "replaced by 1.1.0: try 1.1.0"]
    assert main(["registry", "promote", "--model", "tiny", *root]) == 2
    assert capsys.readouterr().err == (
        "maximus-train registry promote: error: the following arguments are required: "
        "--version (see maximus-train registry promote --help)\n")
