"""Code written against the original package, as its users wrote it.

Only what they had is used here: the original README (../shared/seed/README.md), the names and
signatures DESIGN.md lists under "The public API" and "Names users already use", and the
original signatures of issue 26 (the `training` package's re-exports, the per-layer
preprocessors, naive UTC event times and `raw_data`, `ValidationResult.print_report()`,
`LayerTrainer(model, loss_fn, config, metric_fns)` with `load_checkpoint`, the registry's
paths, `{name: [versions]}` and `{version: value}` results, `get_sample_id`, the tuning
functions). Nothing of this package's own API is used, except to check that the Arrow table
behind the events stays timezone-aware (DESIGN.md: timestamp in UTC).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import training
from training import (
    CollectedEvent, DataCollector, DataPreprocessor, DatasetBuilder, DatasetSplit, DataSource,
    DataSourceType, DataValidator, LayerPreprocessor, LayerType, PreprocessedSample,
    PyTorchDatasetWrapper, SplitStrategy, ValidationIssue, ValidationResult, ValidationSeverity,
)
from training.data_preprocessor import Layer1Preprocessor, Layer2Preprocessor, Layer3Preprocessor
from training.hyperparameter_tuner import (
    HyperparameterTuner, TuningConfig, create_layer1_vae_objective, tune_layer1_vae,
)
from training.layer_trainer import EarlyStopping, LayerTrainer, TrainingConfig, TrainingMetrics
from training.model_registry import ModelMetadata, ModelRegistry
from training.train_layer1_vae import Layer1VAE

START = datetime(2024, 1, 1, 12, 0, 0)  # naive, UTC: as the original's users wrote times


def _records(n: int) -> list[dict]:
    """Flat JSON events as a SIEM export has them, with a field of their own (`rule`)."""
    return [{"event_id": f"e{i}", "timestamp": (START + timedelta(seconds=i)).isoformat() + "Z",
             "event_type": "network_connection", "source_ip": f"10.0.0.{i % 7 + 1}",
             "dest_ip": "10.0.1.1", "source_port": 40000 + i, "dest_port": 443 if i % 4 else 22,
             "protocol": "tcp", "bytes_sent": 100 * i, "label": "malicious" if i % 5 == 0
             else "benign", "rule": f"r{i % 3}"} for i in range(n)]


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> tuple[Path, list[dict]]:
    folder = tmp_path_factory.mktemp("export")
    records = _records(120)
    path = folder / "events.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path, records


# -- the package's own names -----------------------------------------------------------------

def test_the_package_re_exports_the_original_names_and_stays_light():
    assert {"DataCollector", "DataSource", "DataSourceType", "CollectedEvent", "DataPreprocessor",
            "LayerPreprocessor", "PreprocessedSample", "LayerType", "DatasetBuilder",
            "DatasetSplit", "SplitStrategy", "PyTorchDatasetWrapper", "DataValidator",
            "ValidationResult", "ValidationIssue", "ValidationSeverity"} <= set(dir(training))
    code = "import sys, training.errors; print(sorted({'torch', 'pyarrow', 'numpy'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(training.__file__).parents[1])})
    assert done.stdout.strip() == "[]", done.stderr


# -- collection: raw_data and naive time filters ---------------------------------------------

def test_collection_with_raw_data_and_naive_time_filters(export, tmp_path):
    path, records = export
    source = DataSource(name="siem", source_type=DataSourceType.JSON_FILE,
                        connection_params={"path": path})  # a Path, as the original took
    collector = DataCollector(sources=[source], output_dir=tmp_path / "collected")
    start, end = START + timedelta(seconds=10), START + timedelta(seconds=50)
    events = list(collector.collect(start_date=start, end_date=end, max_events=10000))
    assert [e.event_id for e in events] == [f"e{i}" for i in range(10, 50)]
    for event, record in zip(events, records[10:50]):
        assert isinstance(event, CollectedEvent)
        assert event.timestamp.tzinfo is None and start <= event.timestamp < end
        assert "source_ip" in event.raw_data and event.raw_data == record  # the record as read
        row = event.to_dict()
        assert (row["event_id"], row["source_ip"], row["dest_port"]) == \
            (record["event_id"], record["source_ip"], record["dest_port"])
    stats = collector.get_stats()
    assert stats["events"] == 40
    saved = collector.save_to_file(events, "events.json")
    assert json.loads(Path(saved).read_text())["events"][0]["event_id"] == "e10"
    # Behind the events, the Arrow table stays timezone-aware (UTC).
    table = DataCollector([source]).collect_table(start_date=start, end_date=end)
    assert table.schema.field("timestamp").type.tz == "UTC"


# -- the per-layer preprocessors -------------------------------------------------------------

def test_per_layer_preprocessors(export, tmp_path):
    _, records = export
    with pytest.raises(TypeError):
        LayerPreprocessor(LayerType.LAYER1_SENSORY)  # abstract
    layer1 = Layer1Preprocessor()
    sample = layer1.preprocess(records[3])
    assert isinstance(layer1, LayerPreprocessor) and layer1.layer == LayerType.LAYER1_SENSORY
    assert isinstance(sample, PreprocessedSample) and sample.layer == LayerType.LAYER1_SENSORY
    assert sample.features.shape == (layer1.get_feature_dim(),) == (128,)
    assert ((sample.features >= 0) & (sample.features <= 1)).all()
    same = DataPreprocessor(output_dir=tmp_path).preprocess_event(
        records[3], layers=[LayerType.LAYER1_SENSORY])
    np.testing.assert_array_equal(same.features, sample.features)

    layer2 = Layer2Preprocessor()
    graph = layer2.preprocess(records[3])
    assert graph.layer == LayerType.LAYER2_BEHAVIORAL
    assert graph.features.shape[-1] == layer2.get_feature_dim()

    layer3 = Layer3Preprocessor(window_size=10)
    windows = [layer3.preprocess(r) for r in records[:30]]
    assert all(w.layer == LayerType.LAYER3_OPERATIONAL for w in windows)
    assert windows[-1].features.shape[-1] == layer3.get_feature_dim()
    assert windows[-1].features.size > windows[-1].features.shape[-1]  # a window of steps

    preprocessor = DataPreprocessor(output_dir=tmp_path)
    samples = preprocessor.preprocess_batch(records, LayerType.LAYER1_SENSORY)
    saved = preprocessor.save_samples(samples, "layer1_samples")
    assert [s.sample_id for s in preprocessor.load_samples(saved)] == \
        [s.sample_id for s in samples]


# -- validation, splits and the dataset wrapper ----------------------------------------------

def _samples(records: list[dict]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    samples = DataPreprocessor().preprocess_batch(records, LayerType.LAYER1_SENSORY)
    return (np.stack([s.features for s in samples]), np.array([s.label for s in samples]),
            [s.sample_id for s in samples])


def test_validation_report_and_the_dataset_wrapper(export, tmp_path, capsys):
    features, labels, ids = _samples(export[1])
    result = DataValidator(features, labels).validate(check_missing=True, check_outliers=True,
                                                      check_labels=True, check_distributions=True)
    assert isinstance(result, ValidationResult) and result.passed
    assert all(isinstance(i, ValidationIssue) and isinstance(i.severity, ValidationSeverity)
               for i in result.issues)
    result.print_report()
    assert "PASSED" in capsys.readouterr().out

    builder = DatasetBuilder(features=features, labels=labels, sample_ids=ids,
                             output_dir=tmp_path / "splits")
    splits = builder.create_splits(strategy=SplitStrategy.STRATIFIED)
    assert set(splits) == {"train", "val", "test"}
    assert all(isinstance(s, DatasetSplit) for s in splits.values())
    builder.save_splits(splits, prefix="layer1")
    assert (tmp_path / "splits" / "layer1_train.npz").exists()
    dataset = PyTorchDatasetWrapper(splits["train"])
    assert len(dataset) == len(splits["train"].labels)
    assert dataset.get_sample_id(0) == str(splits["train"].sample_ids[0])
    x, y = next(iter(DataLoader(dataset, batch_size=8)))
    assert x.shape == (8, 128) and y.shape == (8,)


# -- a training loop with loss_fn(model, batch) and Path folders -----------------------------

def vae_loss(model: torch.nn.Module, batch) -> torch.Tensor:
    x, _ = batch
    recon, mean, logvar = model(x)
    kl = -0.5 * torch.mean(1 + logvar - mean.pow(2) - logvar.exp())
    return torch.nn.functional.mse_loss(recon, x) + kl


def mse(model: torch.nn.Module, batch) -> float:
    x, _ = batch
    return float(torch.nn.functional.mse_loss(model(x)[0], x))


@pytest.fixture(scope="module")
def trained(export, tmp_path_factory):
    folder = tmp_path_factory.mktemp("train")
    features, labels, ids = _samples(export[1])
    splits = DatasetBuilder(features, labels, ids).create_splits(SplitStrategy.RANDOM)
    torch.manual_seed(0)
    model = Layer1VAE(input_dim=128, hidden_dim=32, latent_dim=8, dropout=0.2)
    config = TrainingConfig(model_name="seed_vae", layer_name="layer1", batch_size=16,
                            num_epochs=3, learning_rate=1e-3, checkpoint_dir=folder / "ckpt",
                            log_dir=folder / "logs", use_amp=True)
    trainer = LayerTrainer(model, vae_loss, config, metric_fns={"mse": mse})
    history = trainer.train(DataLoader(PyTorchDatasetWrapper(splits["train"]), batch_size=16,
                                       shuffle=True),
                            DataLoader(PyTorchDatasetWrapper(splits["val"]), batch_size=16))
    return folder, model, config, trainer, history


def test_training_loop_with_loss_fn_and_path_folders(trained):
    folder, model, config, trainer, history = trained
    assert len(history) == 3 and all(isinstance(m, TrainingMetrics) for m in history)
    assert trainer.best_epoch in (1, 2, 3) and trainer.best_val_loss == min(
        m.val_loss for m in history)
    assert trainer.history == history
    best = folder / "ckpt" / "seed_vae_best.pt"
    model.load_state_dict(torch.load(best))  # a plain state_dict, as the original wrote
    again = LayerTrainer(Layer1VAE(input_dim=128, hidden_dim=32, latent_dim=8), vae_loss, config)
    assert again.load_checkpoint(best) in (0, trainer.best_epoch)
    assert again.load_checkpoint(folder / "ckpt" / "seed_vae_last_state.pt") == 3
    assert EarlyStopping(patience=2, min_delta=0.0, mode="min") is not None


# -- the registry: a plain state_dict file, stages, comparison, search -----------------------

def test_registering_a_plain_state_dict_with_stage_transitions(trained, tmp_path, capsys):
    _, model, _, _, _ = trained
    weights = tmp_path / "layer1_vae.pt"
    torch.save(model.state_dict(), weights)
    registry = ModelRegistry(registry_dir=tmp_path / "models")
    for version, metrics in (("v1.0.0", {"val_loss": 0.05, "accuracy": 0.95}),
                             ("v1.1.0", {"val_loss": 0.04, "accuracy": 0.90})):
        path = registry.register_model(model_path=weights, metadata=ModelMetadata(
            model_name="layer1_vae", version=version, layer_name="layer1",
            created_at=datetime.utcnow(), metrics=metrics,
            hyperparameters={"learning_rate": 1e-3, "batch_size": 16}))
        assert Path(path).exists() and Path(path).read_bytes() == weights.read_bytes()
    assert registry.list_models() == {"layer1_vae": ["v1.0.0", "v1.1.0"]}

    assert registry.transition_stage("layer1_vae", "v1.0.0", "staging") is True
    assert registry.transition_stage("layer1_vae", "v1.0.0", "production") is True
    assert registry.transition_stage("layer1_vae", "v1.1.0", "production") is True
    assert registry.get_metadata("layer1_vae", "v1.0.0").stage == "archived"
    assert registry.transition_stage("layer1_vae", "v9.9.9", "production") is False
    assert registry.transition_stage("layer1_vae", "v1.0.0", "shipped") is False
    production = registry.get_model("layer1_vae", stage="production")
    restored = Layer1VAE(input_dim=128, hidden_dim=32, latent_dim=8)
    restored.load_state_dict(torch.load(production))  # the registered file, by its path
    assert registry.get_model("layer1_vae", stage="staging") is None

    assert registry.compare_models("layer1_vae", ["v1.0.0", "v1.1.0"]) == \
        {"v1.0.0": 0.05, "v1.1.0": 0.04}
    assert registry.compare_models("layer1_vae", ["v1.0.0", "v1.1.0"], metric="accuracy") == \
        {"v1.0.0": 0.95, "v1.1.0": 0.90}
    assert [m.version for m in registry.search_models(min_accuracy=0.93)] == ["v1.0.0"]
    assert [m.version for m in registry.search_models(layer_name="layer1",
                                                      stage="production")] == ["v1.1.0"]
    registry.print_registry()
    assert "layer1_vae" in capsys.readouterr().out
    assert registry.delete_model("layer1_vae", "v1.0.0") is True
    assert registry.delete_model("layer1_vae", "v1.0.0") is False
    assert registry.list_models("layer1_vae") == {"layer1_vae": ["v1.1.0"]}


# -- the tuning functions --------------------------------------------------------------------

def test_tuning_functions(export, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    features, labels, ids = _samples(export[1])
    builder = DatasetBuilder(features, labels, ids)
    splits = builder.create_splits(SplitStrategy.RANDOM)
    builder.save_splits(splits, prefix="layer1")  # training/data/splits/layer1_*.npz
    objective = create_layer1_vae_objective(
        train_features=splits["train"].features, train_labels=splits["train"].labels,
        val_features=splits["val"].features, val_labels=splits["val"].labels)
    tuner = HyperparameterTuner(config=TuningConfig(study_name="layer1_vae_tuning", n_trials=1,
                                                    output_dir=Path("training/tuning")))
    results = tuner.tune(objective)
    assert set(results["best_params"]) == {"learning_rate", "batch_size", "hidden_dim",
                                           "latent_dim", "dropout", "beta"}
    assert results["best_value"] > 0 and results["n_trials"] == 1
    tuner.visualize()
    assert (tmp_path / "training/tuning/layer1_vae_tuning_history.png").exists()

    # The same study, on the split files: one more trial runs, the first is kept.
    results = tune_layer1_vae("training/data/splits/layer1_train.npz",
                              "training/data/splits/layer1_val.npz", n_trials=2,
                              study_name="layer1_vae_tuning")
    assert results["n_trials"] == 2 and results["best_params"]["batch_size"] in (16, 32, 64, 128)
    assert (tmp_path / "training/tuning/layer1_vae_tuning_importances.png").exists()
    assert not list(tmp_path.rglob("*.pkl"))  # the original pickled its study; nothing is
