"""Every command works for every layer through one code path: train, evaluate, tune, score and
retrain, run as `maximus-train` (in this process, the same entry point as the console script)
on the split files of a real capture (IoT-23 44-1), for each of the three layers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from training.cli.main import main
from training.data_collection import DataCollector, DataSource
from training.layers.registry import get_layer
from training.model_registry import ModelMetadata, ModelRegistry

CAPTURE = Path("../shared/datasets/iot23/CTU-Malware-Capture-44-1-labeled.csv")
SMALL = {"layer1": ["--hidden_dim", "16", "--latent_dim", "4"],
         "layer2": ["--hidden_dim", "8", "--num_layers", "1"],
         "layer3": ["--channels", "4", "4"]}


@pytest.fixture(scope="module", params=sorted(SMALL))
def work(request, tmp_path_factory):
    """The capture's units of one layer split by time into files, and a model trained on them
    through `maximus-train train`."""
    if not CAPTURE.exists():
        pytest.skip(f"{CAPTURE} is absent (the shared datasets are not on this machine)")
    torch.set_num_threads(1)
    layer = get_layer(request.param)()
    folder = tmp_path_factory.mktemp(layer.name)
    events = DataCollector([DataSource("iot", "csv_file", {"path": str(CAPTURE)})],
                           progress=False).collect_table()
    splits = layer.split(layer.featurize(events), "temporal", (0.6, 0.2, 0.2), 42)
    paths = {part: str(p) for part, p in layer.save_splits(splits, folder).items()}
    code = main(["train", layer.name, "--train_data", paths["train"], "--val_data", paths["val"],
                 "--num_epochs", "2", "--checkpoint_dir", str(folder / "ck"),
                 "--no_tensorboard", *SMALL[layer.name]])
    assert code == 0
    return layer, folder, paths, folder / "ck" / f"{layer.model_name}_best.pt"


def test_train_writes_a_model_of_the_layer(work):
    layer, _, _, checkpoint = work
    sidecar = json.loads(checkpoint.with_suffix(".json").read_text())
    assert sidecar["feature_spec"] and json.loads(sidecar["feature_spec"])["layer"] == layer.name
    assert sidecar["anomaly_threshold"] is not None


def test_train_chooses_another_detector_for_the_layer(work, capsys):
    layer, folder, paths, _ = work
    args = ["train", layer.name, "--train_data", paths["train"], "--val_data", paths["val"],
            "--checkpoint_dir", str(folder / "other"), "--model_name", "other",
            "--no_tensorboard"]
    assert main([*args, "--detector", "iforest", "--detector-arg", "n_estimators=20"]) == 0
    sidecar = json.loads((folder / "other" / "other_best.json").read_text())
    assert sidecar["model_class"] == "IsolationForestDetector"
    assert sidecar["init_args"]["n_estimators"] == 20
    assert sidecar["init_args"]["inputs"] == layer.row_inputs[0]
    assert main(["evaluate", "--model", str(folder / "other" / "other_best.pt"), "--data",
                 paths["test"], "--no-latency", "--report", str(folder / "other_report")]) == 0
    capsys.readouterr()
    assert main([*args, "--detector", "ecod", *SMALL[layer.name]]) == 2
    assert f"is an argument of {layer.detector_name}, not of ecod" in capsys.readouterr().err


def test_evaluate_reports_on_the_test_units(work, capsys):
    layer, folder, paths, checkpoint = work
    capsys.readouterr()
    assert main(["evaluate", "--model", str(checkpoint), "--data", paths["test"],
                 "--no-latency", "--report", str(folder / "report")]) == 0
    report = json.loads((folder / "report.json").read_text())
    assert report["n_samples"] + report["n_unknown_excluded"] == len(
        layer.labels(layer.load_units(paths["test"])))


def test_tune_runs_a_trial_on_the_layer(work, capsys):
    layer, folder, paths, _ = work
    from training.hyperparameter_tuner import main as tune

    capsys.readouterr()
    assert tune(["--layer", layer.name, "--train_data", paths["train"], "--val_data",
                 paths["val"], "--n_trials", "1", "--max_epochs", "1", "--pruner", "none",
                 "--output_dir", str(folder / "tuning"), "--metric", "loss"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["trials"]["complete"] == 1 and summary["best_value"] is not None


def test_score_writes_one_row_per_unit(work, capsys):
    layer, folder, _, checkpoint = work
    registry = ModelRegistry(folder / "scoring-models")
    registry.register_model(checkpoint, ModelMetadata(layer.model_name, "1.0.0", layer.name))
    registry.transition_stage(layer.model_name, "1.0.0", "production")
    out = folder / "scores.parquet"
    assert main(["score", "--registry-dir", str(folder / "scoring-models"), "--model",
                 layer.model_name, "--input", f"csv:{CAPTURE}", "--output", str(out)]) == 0
    table = pq.read_table(out)
    events = DataCollector([DataSource("iot", "csv_file", {"path": str(CAPTURE)})],
                           progress=False).collect_table()
    assert table.num_rows == len(layer.labels(layer.featurize(events)))
    assert np.isfinite(table["score"].to_numpy()).all()


def test_retrain_trains_and_gates_the_layer(work, capsys):
    layer, folder, paths, _ = work
    capsys.readouterr()
    code = main(["retrain", "--layer", layer.name, "--train-data", paths["train"],
                 "--val-data", paths["val"], "--test-data", paths["test"], "--registry-dir",
                 str(folder / "retrain-models"), "--epochs", "2"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["retrained"] and result["new_version"] == "1.0.0"
    assert ModelRegistry(folder / "retrain-models").get_metadata(
        layer.model_name, "1.0.0").layer_name == layer.name
