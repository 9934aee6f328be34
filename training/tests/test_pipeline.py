"""The main job: `maximus-train demo | pipeline`, its TOML config, and scripts/retrain_models.sh."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet  # noqa: F401 (pa.parquet)
import pytest

from training.errors import ConfigError
from training.layers.layer1 import Layer1
from training.sources.config import DataSource
from training.pipeline.config import config_from_dict, load_config
from training.pipeline.run import run_pipeline
from training.registry.registry import ModelRegistry

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
ZEEK_011 = REPO.parent / "shared/datasets/stratosphere/011-zeek-mixed/data"


def _cli(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "training.cli", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def test_demo_runs_every_stage_from_a_fresh_directory(tmp_path):
    result = _cli("demo", "--events", "2000", "--epochs", "1", "--workdir", "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "2,000 events, 0 quarantined" in result.stdout
    (run,) = (tmp_path / "run" / "runs").iterdir()  # this run's folder
    assert f"report: run/runs/{run.name}/report/index.html" in result.stdout
    registry = ModelRegistry(tmp_path / "run" / "models")
    for name in ("layer1_vae", "layer2_gnn", "layer3_tcn"):
        # one epoch: each model is registered, and in production only past the gate's floors
        version = registry.get_metadata(name, "1.0.0")
        decision = version.details["decision"]
        assert "pr_auc" in version.metrics and decision["rule"].startswith("labeled floor")
        assert version.stage == ("production" if decision["deploy"] else "none")
    page = (run / "report/index.html").read_text()
    for layer in ("layer1", "layer2", "layer3"):
        assert f'href="{layer}.html"' in page and (run / f"report/{layer}.html").exists()
    for folder in ("features", "splits", "checkpoints"):
        assert any((tmp_path / "run" / folder).iterdir()), folder
    assert any((run / "logs").iterdir())


def test_a_second_identical_run_is_not_promoted(tmp_path):
    """Same data, seed and settings give the same model: 0% better than production, so the
    gate keeps production and marks the new version the challenger (IoT-23 42-1: its random
    test part holds too few threats for the labeled rule, so the unlabeled rule decides)."""
    capture = REPO.parent / "shared/datasets/iot23/CTU-Malware-Capture-42-1-labeled.csv"
    if not capture.exists():
        pytest.skip(f"{capture} is absent (the shared datasets are not on this machine)")
    config = config_from_dict({"workdir": str(tmp_path / "run"), "layers": ["layer1"],
                               "sources": [{"type": "csv_file", "path": str(capture)}],
                               "train": {"epochs": 2}, "split": {"strategy": "random"}})
    first, second = run_pipeline(config).layers[0], run_pipeline(config).layers[0]
    assert (first.version, first.stage, first.decision["deploy"]) == ("1.0.0", "production", True)
    assert (second.version, second.stage, second.decision["deploy"]) == ("1.1.0", "none", False)
    assert second.decision["relative_improvement"] == 0.0  # the same scores: no improvement
    assert second.decision["rule"] == "unlabeled validation loss on the shared window"
    assert second.decision["champion"] == second.decision["challenger"]  # the same val_loss
    assert "threat and" in second.decision["reason"] and second.decision["reason"].endswith(
        "benign test units: the labeled gate needs at least 5 of each for its 95% intervals, "
        "so judged without them)")
    registry = ModelRegistry(tmp_path / "run" / "models")
    assert registry.aliases("layer1_vae")["challenger"] == "1.1.0"
    assert registry.get_metadata("layer1_vae", stage="production").version == "1.0.0"


def test_a_classical_detector_chosen_in_the_config_is_trained_registered_and_scores(tmp_path):
    from training.demo.generator import write_demo_file
    from training.scoring.batch import score_events

    demo = write_demo_file(tmp_path / "demo.json", n_events=1_500, seed=3)
    config = config_from_dict({"workdir": str(tmp_path / "run"), "layers": ["layer2"],
                               "sources": [{"type": "json_file", "path": str(demo)}],
                               "train": {"layer2": {"detector": "iforest", "n_estimators": 50,
                                                    "inputs": "edge_context"}}})
    outcome = run_pipeline(config).layers[0]
    assert (outcome.version, outcome.stage) == ("1.0.0", "production")
    assert outcome.train["epochs_trained"] == 1 and "pr_auc" in outcome.metrics
    registry = ModelRegistry(tmp_path / "run" / "models")
    summary = score_events(registry, "layer2_gnn", [DataSource("demo", "json_file",
                                                               {"path": str(demo)})],
                           tmp_path / "scores.parquet")
    assert summary.units > 0 and summary.layer == "layer2"


@pytest.mark.skipif(not ZEEK_011.exists(), reason="needs ../shared/datasets/stratosphere")
def test_pipeline_on_a_folder_of_real_zeek_logs(tmp_path):
    result = _cli("pipeline", "--source", f"zeek:{ZEEK_011}", "--epochs", "1", "--workdir", "z",
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # the folder's labeled conn log (9,048 flows) plus its other logs, every record collected
    assert " 0 quarantined" in result.stdout
    # Label-free by default: its labels are not used to train or to set thresholds, only to
    # evaluate (and gate).
    rule = "threshold: unlabeled: threshold at the 99.9th percentile of validation scores"
    registry = ModelRegistry(tmp_path / "z" / "models")
    for layer, model in (("layer1", "layer1_vae"), ("layer2", "layer2_gnn"),
                         ("layer3", "layer3_tcn")):
        (line,) = [x for x in result.stdout.splitlines() if x.startswith(f"{layer}: ")]
        assert f"{model} 1.0.0 -> " in line and "ROC-AUC" in line and rule in line, line
        # (" - N of them cannot support that percentile ..." where the part is that small)
        assert registry.get_metadata(model, "1.0.0").details["threshold_rule"].startswith(
            rule.removeprefix("threshold: "))
    page = Path(re.search(r"^report: (.+)$", result.stdout, re.M)[1])
    page = (tmp_path / page).read_text()
    assert page.count(rule.removeprefix("threshold: ")) == 3


def test_config_file_sets_layers_sources_and_per_layer_training(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('layers = ["layer1", "layer3"]\nworkdir = "w"\n'
                    '[[sources]]\ntype = "zeek_logs"\npath = "/logs"\nname = "z"\n'
                    '[split]\nstrategy = "group"\ntrain_ratio = 0.5\nval_ratio = 0.25\n'
                    'test_ratio = 0.25\n[train]\nepochs = 3\n[train.layer3]\nepochs = 7\n'
                    'channels = [16, 16]\n')
    config = load_config(path, seed=9)
    assert config.layers == ("layer1", "layer3") and config.seed == 9
    assert config.sources[0].connection_params == {"path": "/logs"}
    assert config.split.strategy == "group" and config.split.train_ratio == 0.5
    assert config.train["layer1"].epochs == 3
    assert (config.train["layer3"].epochs, config.train["layer3"].model) == (7, {"channels": [16, 16]})
    assert config.with_training(epochs=2).train["layer3"].trainer_changes() == {
        "num_epochs": 2, "threshold_rule": "quantile:0.999"}  # the pipeline's default rule


@pytest.mark.parametrize("text, message", [
    ('[[sources]]\ntype = "zeek_logs"\n[split]\nstratgy = "x"\n', r"\[split\]: unknown key"),
    ('[[sources]]\ntype = "zeek_logs"\n[split]\ntrain_ratio = 0.9\n', "sum to 1"),
    ('layers = ["layer4"]\n[[sources]]\ntype = "zeek_logs"\n', "layers must name layers of"),
    ('[[sources]]\npath = "x"\n', r"#1: needs type"),
    ('workdir = "w"\n', "at least one source"),
    ('[[sources]]\ntype = "zeek_logs"\n[train]\nepochs = 0\n', "epochs must be"),
    ('[[sources]]\ntype = "zeek_logs"\n[train.layer2]\nconv = "gcn"\n',
     r"\[train.layer2\]: conv must be one of gat, sage, got 'gcn'"),
    ('max_events = "all"\n[[sources]]\ntype = "zeek_logs"\n',
     r"max_events must be an integer >= 1, got 'all'"),
    ('sources = ["zeek"]\n', r"\[\[sources\]\] #1: must be a table with type and path"),
    ('[[sources]]\ntype = "zeek_logs"\n[gate]\nmin_value = "high"\n',
     r"\[gate\]: min_value must be a number, got 'high'"),
    ('[[sources]]\ntype = "zeek_logs"\n[train.layer2]\ndetector = "svm"\n',
     "train.layer2.detector must be one of gnn, autoencoder, ecod, iforest, knn, got 'svm'"),
])
def test_bad_config_files_are_refused_with_the_key(tmp_path, text, message):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


SCRIPT = REPO / "scripts" / "retrain_models.sh"


def test_retrain_script_trains_the_chosen_layers(tmp_path):
    from training.demo.generator import write_demo_file

    demo = write_demo_file(tmp_path / "demo.json", n_events=1_500, seed=4)
    # The original script's environment sets the defaults; a flag wins over its variable.
    env = {**ENV, "PYTHON": sys.executable, "LAYERS": "layer1 layer2 layer4 layer5",
           "NUM_EPOCHS": "1", "BATCH_SIZE": "8", "LEARNING_RATE": "0.002"}
    result = subprocess.run([str(SCRIPT), "--batch-size", "64", "--source", f"json:{demo}",
                             "--workdir", "r"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "skipping layer4 layer5: not implemented yet" in result.stderr
    command = next(line for line in result.stderr.splitlines()
                   if line.startswith("retrain_models.sh: ") and "-m training.cli" in line)
    assert command.endswith("--layers layer1 layer2 --batch-size 64 --epochs 1 --lr 0.002")
    assert " -m training.cli -v pipeline " in command  # the command it runs, -v included
    # Each chosen layer is trained, registered and put before the gate (which may keep a weak
    # one-epoch model out of production, saying why); layer3 was not chosen.
    assert re.search(r"^layer1: layer1_vae 1\.0\.0 -> (production|none) ", result.stdout, re.M)
    assert re.search(r"^layer2: layer2_gnn 1\.0\.0 -> (production|none) ", result.stdout, re.M)
    assert "layer3" not in result.stdout
    assert (tmp_path / "r/retrain.log").stat().st_size > 0


@pytest.mark.parametrize("args, code, message", [
    (["--layers", "layer1 layer9"], 2, "unknown layer 'layer9'"),
    (["--frobnicate"], 2, "unknown option '--frobnicate'"),
    (["--epochs"], 2, "--epochs needs a value"),
    (["--source", "zeek:/nonexistent/logs", "--workdir", "f"], 1, "/nonexistent/logs"),
])
def test_retrain_script_fails_loudly(tmp_path, args, code, message):
    result = subprocess.run([str(SCRIPT), *args], cwd=tmp_path, env=ENV, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == code and message in result.stderr


def test_retrain_script_help():
    result = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "--batch-size" in result.stdout


@pytest.mark.parametrize("command", ["pipeline", "demo"])
def test_the_config_files_workdir_is_used_unless_the_flag_gives_one(command, tmp_path, capsys):
    """A file where the config's workdir would go makes the run stop at once, naming the
    folder it was going to write (the workdir was taken from the config)."""
    from training.cli.main import main

    (tmp_path / "blocked").write_text("")
    config = tmp_path / "p.toml"
    config.write_text(f'workdir = "{tmp_path / "blocked" / "run"}"\nlayers = ["layer1"]\n'
                      '[[sources]]\ntype = "json_file"\npath = "missing.json"\n')
    first = ["demo", "--events", "100", "--path", str(tmp_path / "demo.json")] \
        if command == "demo" else ["pipeline"]
    assert main([*first, "--config", str(config)]) == 1
    assert capsys.readouterr().err.strip().endswith(
        f"error: {tmp_path / 'blocked' / 'run'}: Not a directory")  # the workdir's lock
    if command == "pipeline":  # --workdir wins: the run gets as far as the missing source
        assert main([*first, "--config", str(config), "--workdir", str(tmp_path / "w")]) == 1
        assert "missing.json: no such file" in capsys.readouterr().err
        assert (tmp_path / "w" / "features").is_dir()


def test_the_gate_scores_the_production_model_through_its_own_value_counts(tmp_path):
    """Layer 1's `l1.v4` and `l1.v5` count each run's own training values: the production
    model of an earlier run on other events reads the new test events through its own counts, not the
    challenger's (its scores and figures are what it gives on its own features)."""
    from training.demo.generator import write_demo_file
    from training.evaluation.metrics import known_scores, pr_auc
    from training.layers.registry import layer_for_spec

    def run(seed):
        demo = write_demo_file(tmp_path / f"demo{seed}.json", n_events=1_500, seed=seed)
        return run_pipeline(config_from_dict({
            "workdir": str(tmp_path / "run"), "layers": ["layer1"],
            "sources": [{"type": "json_file", "path": str(demo)}],
            "train": {"epochs": 20, "benign_only": True}}))

    run(3)
    registry = ModelRegistry(tmp_path / "run" / "models")
    champion = registry.load_model("layer1_vae", stage="production")
    second = run(4).layers[0]
    assert second.decision["rule"] == "paired bootstrap of pr_auc"
    layer = layer_for_spec(champion.feature_spec)
    test_events = pa.parquet.read_table(tmp_path / "run" / "events.parquet")
    test = Layer1().load_units(tmp_path / "run" / "splits" / "layer1_test.npz")
    row = {e: i for i, e in enumerate(test_events["event_id"].to_pylist())}
    own = layer.featurize(test_events.take([row[i] for i in test.sample_ids]))
    assert own.spec.fingerprint != test.spec.fingerprint  # other counts: another transform
    known = known_scores(layer.score(champion.model, own), Layer1().labels(test))
    assert second.decision["champion"] == pytest.approx(pr_auc(known.scores, known.is_threat))
