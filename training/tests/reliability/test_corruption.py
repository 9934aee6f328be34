"""Corruption: files damaged after they were written (truncated, bit-flipped, emptied, replaced)
are detected with a clear package error, never loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from training.artifacts.model_files import load_model, save_model, sidecar_path
from training.detectors.vae import Layer1VAE
from training.errors import CheckpointError, PipelineError
from training.data_preprocessor import DataPreprocessor, LayerArrays, LayerType
from training.tests.reliability.harness import flip_bit, truncate

pytestmark = pytest.mark.reliability

DAMAGE = {
    "truncated": lambda path: truncate(path, 0.5),
    "bit-flipped": lambda path: flip_bit(path, 0.5),
    "emptied": lambda path: path.write_bytes(b""),
}


@pytest.fixture(scope="module")
def events() -> list[dict]:
    from training.demo.generator import generate_demo_events
    return generate_demo_events(100, seed=3)["events"]


# -- preprocessed samples (.npz) ----------------------------------------------------------------

@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_preprocessed_npz_is_refused(tmp_path, events, damage, observed):
    """Stage: preprocessing save
    Fault: layer1_samples.npz written by `save_samples`, then truncated to half, bit-flipped in
        the middle (inside the features array) or emptied (test id).
    Expected: `LayerArrays.load` and `DataPreprocessor.load_samples` raise a package error
        naming the file (zip CRC / structure checks); no samples are returned.
    """
    pre = DataPreprocessor(output_dir=tmp_path)
    path = pre.save_samples(pre.featurize(events, LayerType.LAYER1_SENSORY), "layer1_samples")
    assert len(LayerArrays.load(path)) == 100
    DAMAGE[damage](path)
    for load in (LayerArrays.load, pre.load_samples):
        with pytest.raises(PipelineError, match="layer1_samples.npz") as info:
            load(path)
    observed(info.value)


# -- model files (.pt + JSON sidecar) -----------------------------------------------------------

def _saved_model(directory: Path) -> Path:
    torch.manual_seed(0)
    path = directory / "layer1_vae_best.pt"
    save_model(Layer1VAE(hidden_dim=16, latent_dim=4), path, threshold=0.5)
    assert load_model(path).threshold == 0.5
    return path


@pytest.mark.parametrize("damage", ["truncated", "bit-flipped"])
def test_damaged_model_weights_are_refused_by_sha256(tmp_path, damage, observed):
    """Stage: model files
    Fault: the .pt weights of a saved Layer1VAE truncated to half or with one bit flipped
        (test id); the sidecar is untouched.
    Expected: `load_model` raises CheckpointError "sha256 mismatch" before reading the weights.
    """
    path = _saved_model(tmp_path)
    DAMAGE[damage](path)
    with pytest.raises(CheckpointError, match="sha256 mismatch") as info:
        load_model(path)
    observed(info.value)


@pytest.mark.parametrize("damage", ["missing", "truncated", "bit-flipped-sha256"])
def test_damaged_model_sidecar_is_refused(tmp_path, damage, observed):
    """Stage: model files
    Fault: the JSON sidecar of a saved model deleted, truncated, or with one character of its
        recorded sha256 changed (test id).
    Expected: `load_model` raises CheckpointError naming the sidecar or the mismatch; the weights
        are not loaded without a sidecar that vouches for them.
    """
    path = _saved_model(tmp_path)
    side = sidecar_path(path)
    if damage == "missing":
        side.unlink()
    elif damage == "truncated":
        truncate(side, 0.5)
    else:
        sidecar = json.loads(side.read_text())
        digest = sidecar["sha256"]
        sidecar["sha256"] = ("0" if digest[0] != "0" else "1") + digest[1:]
        side.write_text(json.dumps(sidecar))
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    assert side.name in str(info.value) or "sha256 mismatch" in str(info.value)
    observed(info.value)


# -- registry -----------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["weights-bit-flipped", "weights-truncated",
                                    "sidecar-threshold-edited", "weights-replaced"])
def test_damaged_registry_artifact_is_refused(tmp_path, damage, observed):
    """Stage: registry artifacts
    Fault: the production version's files in the registry changed after registration: one
        bit of model.pt flipped, model.pt cut in half, the threshold in model.json edited, or
        model.pt replaced by another valid model with its own matching sidecar (test id).
    Expected: `get_model(stage="production")` raises CheckpointError (sha256 against the value
        recorded in the database); the other versions still load.
    """
    from training.tests.reliability.harness import seeded_registry, small_model

    registry = seeded_registry(tmp_path)
    folder = registry.artifacts_dir / "vae" / "1.0.0"
    if damage == "weights-bit-flipped":
        flip_bit(folder / "model.pt", 0.6)
    elif damage == "weights-truncated":
        truncate(folder / "model.pt")
    elif damage == "sidecar-threshold-edited":
        sidecar = json.loads((folder / "model.json").read_text())
        sidecar["anomaly_threshold"] = 99.0
        (folder / "model.json").write_text(json.dumps(sidecar, indent=2, sort_keys=True))
    else:
        other = small_model(tmp_path / "other.pt", seed=9)
        (folder / "model.pt").write_bytes(other.read_bytes())
        (folder / "model.json").write_bytes(sidecar_path(other).read_bytes())
    with pytest.raises(CheckpointError, match="sha256") as info:
        registry.get_model("vae", stage="production")
    assert registry.get_model("vae", "1.1.0").metadata.version == "1.1.0"
    observed(info.value)


def test_registry_row_with_altered_sha256_is_refused(tmp_path, observed):
    """Stage: registry SQLite
    Fault: the weights_sha256 recorded for 1.0.0 in registry.db altered by one hex digit
        (a change inside the database file that SQLite itself cannot notice).
    Expected: `get_model` refuses the version with CheckpointError (the sidecar's sha256 no
        longer matches the database's record); nothing is loaded.
    """
    import sqlite3

    from training.tests.reliability.harness import seeded_registry

    registry = seeded_registry(tmp_path)
    with sqlite3.connect(registry.db_path) as conn:
        [(digest,)] = conn.execute("SELECT weights_sha256 FROM versions WHERE version = '1.0.0'")
        altered = ("0" if digest[0] != "0" else "1") + digest[1:]
        conn.execute("UPDATE versions SET weights_sha256 = ? WHERE version = '1.0.0'", (altered,))
    with pytest.raises(CheckpointError) as info:
        registry.get_model("vae", "1.0.0")
    observed(info.value)


@pytest.mark.parametrize("damage", ["truncated", "header-overwritten"])
def test_damaged_registry_database_is_reported_clearly(tmp_path, damage, observed):
    """Stage: registry SQLite
    Fault: registry.db cut to half its size, or its first 100 bytes (the SQLite header)
        overwritten with zeros (test id).
    Expected: opening the registry or listing its models raises a RegistryError naming
        registry.db; no model is loaded from it.
    """
    from training.errors import RegistryError
    from training.registry.registry import ModelRegistry
    from training.tests.reliability.harness import seeded_registry

    registry = seeded_registry(tmp_path)
    data = registry.db_path.read_bytes()
    damaged = data[: len(data) // 2] if damage == "truncated" else bytes(100) + data[100:]
    registry.db_path.write_bytes(damaged)
    with pytest.raises(RegistryError, match="registry.db") as info:
        ModelRegistry(registry.registry_dir).list_models("vae")
    observed(info.value)


def test_emptied_registry_database_is_not_taken_for_a_new_registry(tmp_path, observed):
    """Stage: registry SQLite
    Fault: registry.db truncated to 0 bytes while artifacts/vae/1.0.0 and 1.1.0 exist.
    Expected: opening the registry raises RegistryError (the database lost its versions);
        the artifact folders are left untouched.
    """
    from training.errors import RegistryError
    from training.registry.registry import ModelRegistry
    from training.tests.reliability.harness import seeded_registry

    registry = seeded_registry(tmp_path)
    registry.db_path.write_bytes(b"")
    with pytest.raises(RegistryError) as info:
        ModelRegistry(registry.registry_dir)
    assert sorted(p.name for p in (registry.artifacts_dir / "vae").iterdir()) == ["1.0.0", "1.1.0"]
    observed(info.value)


# -- split files --------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_split_file_is_refused(tmp_path, damage, observed):
    """Stage: split save
    Fault: layer1_test.npz of a saved set of splits truncated, bit-flipped or emptied (test id).
    Expected: `load_splits` raises a package error (SourceError) naming layer1_test.npz.
    """
    import numpy as np

    from training.datasets.builder import DatasetBuilder, SplitStrategy

    rng = np.random.default_rng(0)
    builder = DatasetBuilder(rng.random((200, 8), dtype=np.float32),
                             (np.arange(200) % 5 == 0).astype(np.int8),
                             [f"e{i}" for i in range(200)], output_dir=tmp_path)
    builder.save_splits(builder.create_splits(SplitStrategy.STRATIFIED), "layer1")
    DAMAGE[damage](tmp_path / "layer1_test.npz")
    with pytest.raises(PipelineError, match="layer1_test.npz") as info:
        DatasetBuilder.load_splits(tmp_path, "layer1")
    observed(info.value)


# -- training checkpoints -----------------------------------------------------------------------

def _train(directory: Path, epochs: int, resume: bool = False):
    from training.trainer.batches import TensorBatches
    from training.trainer.loop import LayerTrainer, TrainingConfig

    torch.manual_seed(0)
    config = TrainingConfig(model_name="vae", layer_name="layer1", checkpoint_dir=str(directory),
                            log_dir=str(directory / "logs"), tensorboard=False, seed=0,
                            num_epochs=epochs, device="cpu", early_stopping_patience=None)
    trainer = LayerTrainer(Layer1VAE(input_dim=8, hidden_dim=8, latent_dim=2), config=config)
    x = torch.rand(64, 8, generator=torch.Generator().manual_seed(0))
    trainer.train(TensorBatches(x, batch_size=16), TensorBatches(x[:16], batch_size=16),
                  resume=resume)
    return trainer


@pytest.mark.parametrize("damage", ["truncated", "bit-flipped"])
def test_damaged_best_checkpoint_is_refused(tmp_path, damage, observed):
    """Stage: training
    Fault: vae_best.pt written by `LayerTrainer` (2 epochs) truncated or bit-flipped (test id).
    Expected: `load_model` on it raises CheckpointError "sha256 mismatch" (its sidecar's
        sha256); the damaged weights are never loaded.
    """
    _train(tmp_path, 2)
    DAMAGE[damage](tmp_path / "vae_best.pt")
    with pytest.raises(CheckpointError, match="sha256 mismatch") as info:
        load_model(tmp_path / "vae_best.pt")
    observed(info.value)


@pytest.mark.parametrize("damage", [
    "truncated",
    "bit-flipped",
])
def test_damaged_last_state_is_refused_on_resume(tmp_path, damage, observed):
    """Stage: training
    Fault: vae_last_state.pt (the resume checkpoint, 2 epochs done) truncated, or with one bit
        flipped in the middle of its tensor data (test id), then `train(resume=True)`.
    Expected: the resume raises CheckpointError naming the file; training never continues
        from damaged state.
    """
    _train(tmp_path, 2)
    DAMAGE[damage](tmp_path / "vae_last_state.pt")
    with pytest.raises(CheckpointError, match="vae_last_state.pt") as info:
        _train(tmp_path, 3, resume=True)
    observed(info.value)
