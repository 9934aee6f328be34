"""MLflow as a window (training.tracking): a real `mlflow server` on 127.0.0.1 with a SQLite
backend, a local sqlite:/// store without a server, and a file: store MLflow refuses.

Needs the `mlflow` extra; skipped without it, except where MAXIMUS_TEST_MLFLOW_REQUIRED=1
(CI), which turns the skip into a failure.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from training.cli.main import main
from training.layers.registry import get_layer
from training.registry.registry import ModelRegistry

REQUIRED = os.environ.get("MAXIMUS_TEST_MLFLOW_REQUIRED") == "1"
try:
    import mlflow  # noqa: F401
    from mlflow import MlflowClient
except ImportError:
    if REQUIRED:
        raise
    pytest.skip("mlflow is not installed (pip install -e '.[mlflow]'); "
                "MAXIMUS_TEST_MLFLOW_REQUIRED=1 makes this a failure", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    from training.demo.generator import write_demo_file

    return write_demo_file(tmp_path_factory.mktemp("demo") / "demo.json", n_events=1_500, seed=3)


class Server:
    """A started `mlflow server`; `uri()` waits until it answers."""

    def __init__(self, process: subprocess.Popen, port: int, log: Path) -> None:
        self.process, self.log = process, log
        self.url = f"http://127.0.0.1:{port}"

    def uri(self) -> str:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                    return self.url
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow server did not start: {self.log.read_text()}")
                time.sleep(0.5)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`mlflow server` on a free local port, SQLite backend and artifacts in a temp folder;
    started by the first test that asks for it, waited for by the one that uses it (it takes
    tens of seconds to start: the other tests run meanwhile)."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    mlflow_bin = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    log = open(root / "server.log", "w")
    process = subprocess.Popen(
        [mlflow_bin, "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"], stdout=log, stderr=subprocess.STDOUT,
        # its own process group, stopped as one; no background job runner (faster start)
        start_new_session=True, env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    try:
        yield Server(process, port, root / "server.log")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=2)  # a throwaway server: no need to wait for a clean stop
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _pipeline(demo: Path, work: Path, uri: str, *layers: str) -> int:
    return main(["pipeline", "--source", f"json:{demo}", "--layers", *layers, "--epochs", "2",
                 "--workdir", str(work), "--mlflow-uri", uri, "-q"])


def _check_mirror(uri: str, work: Path, layers: dict[str, str]) -> None:
    """One MLflow run per layer of the run, with its params, per-epoch metrics, report and
    figures; the registered versions with our aliases."""
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("maximus")
    folder = max((work / "runs").iterdir())  # the latest run
    runs = client.search_runs([experiment.experiment_id],
                              f"tags.`maximus.run` = '{folder.name}'")
    assert sorted(r.data.tags["maximus.layer"] for r in runs) == sorted(layers)
    registry = ModelRegistry(work / "models")
    for run in runs:
        layer = run.data.tags["maximus.layer"]
        model = layers[layer]
        assert run.info.status == "FINISHED"
        stored = registry.get_metadata(model, run.data.tags["maximus.version"])
        assert run.data.params["batch_size"] == str(stored.hyperparameters["batch_size"])
        assert run.data.params["learning_rate"] == str(stored.hyperparameters["learning_rate"])
        history = client.get_metric_history(run.info.run_id, "train_loss")
        assert [m.step for m in history] == [1, 2]
        assert "test_pr_auc" in run.data.metrics
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
        assert {f"report/{layer}.html", f"report/{layer}.json"} <= artifacts
        assert client.list_artifacts(run.info.run_id, "figures")
        assert {a.path for a in client.list_artifacts(run.info.run_id, "model")} == {
            "model/model.pt", "model/model.json", "model/reference.npz"}  # drift baseline
        # the Model Registry mirrors ours: versions, stage, reason, aliases
        mirrored = {v.tags["maximus.version"]: v for v in
                    client.search_model_versions(f"name = '{model}'")}
        assert set(mirrored) == {m.version for m in registry.search_models(model)}
        for ours, theirs in mirrored.items():
            assert theirs.tags["maximus.stage"] == registry.get_metadata(model, ours).stage
            assert theirs.tags["maximus.reason"]
        aliases = client.get_registered_model(model).aliases
        assert {a: next(o for o, t in mirrored.items() if str(t.version) == str(v))
                for a, v in aliases.items()} == registry.aliases(model)


def test_a_local_sqlite_store_without_a_server(demo, server, tmp_path):
    # (`server` only starts here, to be ready for the last test)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    work = tmp_path / "w"
    assert _pipeline(demo, work, uri, "layer1") == 0
    assert _pipeline(demo, work, uri, "layer1") == 0  # the same again: not promoted
    # the challenger alias moved to 1.1.0 (in ours, and so in MLflow)
    assert ModelRegistry(work / "models").aliases("layer1_vae")["challenger"] == "1.1.0"
    _check_mirror(uri, work, {"layer1": "layer1_vae"})
    assert any((tmp_path / "mlflow.db-artifacts").iterdir())  # beside the database
    # a training script's run, on the same store
    splits = work / "splits"
    assert main(["train", "layer1", "--train_data", str(splits / "layer1_train.npz"),
                 "--val_data", str(splits / "layer1_val.npz"), "--num_epochs", "3",
                 "--batch_size", "16", "--checkpoint_dir", str(tmp_path / "ck"),
                 "--no_tensorboard", "--mlflow_uri", uri, "-q"]) == 0
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("maximus").experiment_id],
                                "attributes.run_name = 'train layer1'")
    assert run.data.params["batch_size"] == "16" and run.info.status == "FINISHED"
    curve = client.get_metric_history(run.info.run_id, "epoch_val_loss")
    assert [m.step for m in curve] == [1, 2, 3]
    kept = min(curve, key=lambda m: m.value)  # the registered weights' epoch, not the last
    assert (run.data.metrics["val_loss"], run.data.metrics["best_epoch"]) == (kept.value,
                                                                              kept.step)
    assert {a.path for a in client.list_artifacts(run.info.run_id, "model")} == {
        "model/layer1_vae_best.pt", "model/layer1_vae_best.json"}
    # a training that fails ends its run FAILED with the error, not RUNNING forever
    layer = get_layer("layer1")()
    val = layer.load_units(splits / "layer1_val.npz")
    threats = layer.relabeled(val, np.ones(len(layer.labels(val)), np.int8))
    bad = layer.save_splits({"val": threats}, tmp_path / "bad")["val"]
    assert main(["train", "layer1", "--train_data", str(splits / "layer1_train.npz"),
                 "--val_data", str(bad), "--num_epochs", "1", "--checkpoint_dir",
                 str(tmp_path / "ck2"), "--no_tensorboard", "--mlflow_uri", uri, "-q"]) == 2
    (failed,) = client.search_runs([client.get_experiment_by_name("maximus").experiment_id],
                                   "attributes.status = 'FAILED'")
    assert "the validation split has no benign event among its" in failed.data.tags["maximus.error"]
    # retrain mirrors its new version; a promotion by hand reaches MLflow by `registry mirror`
    assert main(["retrain", "--workdir", str(work), "--force", "--epochs", "1",
                 "--mlflow-uri", uri, "-q"]) == 0
    registry = ModelRegistry(work / "models")
    assert registry.transition_stage("layer1_vae", "1.1.0", "production", reason="by hand")
    assert main(["registry", "mirror", "--workdir", str(work), "--mlflow-uri", uri]) == 0
    versions = {v.tags["maximus.version"]: v for v in
                client.search_model_versions("name = 'layer1_vae'")}
    assert set(versions) == {"1.0.0", "1.1.0", "1.2.0"}
    assert versions["1.1.0"].tags["maximus.reason"] == "by hand"
    assert {a: str(v) for a, v in client.get_registered_model("layer1_vae").aliases.items()} \
        == {a: str(versions[v].version) for a, v in registry.aliases("layer1_vae").items()}


def test_a_refused_file_store_warns_once_and_the_run_goes_on(demo, tmp_path, caplog,
                                                             monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with caplog.at_level(logging.WARNING):
        assert _pipeline(demo, tmp_path / "w", f"file://{tmp_path / 'mlruns'}", "layer1") == 0
    warnings = [r.getMessage() for r in caplog.records if "MLflow" in r.getMessage()]
    assert len(warnings) == 1 and "MLFLOW_ALLOW_FILE_STORE" in warnings[0], warnings
    assert ModelRegistry(tmp_path / "w" / "models").get_metadata("layer1_vae", "1.0.0")


def test_an_unreachable_server_warns_once_and_the_run_goes_on(demo, tmp_path, caplog):
    uri = f"http://127.0.0.1:{_free_port()}"
    with caplog.at_level(logging.WARNING):
        assert _pipeline(demo, tmp_path / "w", uri, "layer1") == 0
    warnings = [r.getMessage() for r in caplog.records if "MLflow" in r.getMessage()]
    assert len(warnings) == 1 and f"MLflow server at {uri} is unreachable" in warnings[0]
    assert ModelRegistry(tmp_path / "w" / "models").get_metadata("layer1_vae", "1.0.0")


def test_a_pipeline_logged_to_an_mlflow_server(demo, server, tmp_path):
    work = tmp_path / "w"
    uri = server.uri()
    assert _pipeline(demo, work, uri, "layer1", "layer3") == 0
    _check_mirror(uri, work, {"layer1": "layer1_vae", "layer3": "layer3_tcn"})


def test_a_server_uri_with_a_password_works_and_never_shows_it(server, tmp_path, capsys,
                                                               caplog):
    """`http://user:password@host` was taken for unreachable (urllib read the password as
    part of the host) and the warning printed the password; and a run ended on a server
    printed MLflow's "View run ... at: URL" to stdout, where `retrain` and `tune` print JSON."""
    from training.registry.registry import ModelMetadata
    from training.tests.registry_fixtures import save_tiny

    weights = save_tiny(tmp_path / "tiny_best.pt", centre=0.5, dim=128, threshold=3.0)
    ModelRegistry(tmp_path / "w" / "models").register_model(
        weights, ModelMetadata("vae_of_alice", "1.0.0", "layer1"))  # the server is shared
    url = server.uri()
    flags = ["registry", "mirror", "--workdir", str(tmp_path / "w"), "--mlflow-uri"]
    capsys.readouterr()
    with caplog.at_level(logging.INFO):
        assert main([*flags, url.replace("http://", "http://alice:s3cret@")]) == 0
        out, err = capsys.readouterr()
        assert out == (f"mirrored 1 new version(s) to {url.replace('http://', 'http://alice:***@')}"
                       "; tags and aliases up to date\n")
        down = f"http://alice:s3cret@127.0.0.1:{_free_port()}"
        assert main([*flags, down]) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "Connection refused" in warnings[0], warnings
    assert down.replace(":s3cret@", ":***@") in warnings[0]
    assert "s3cret" not in out + err + caplog.text + capsys.readouterr().err
