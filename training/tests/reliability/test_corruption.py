"""Corruption: files damaged after they were written (truncated, bit-flipped, emptied, replaced)
are detected with a clear package error, never loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from training.data_preprocessor import DataPreprocessor, LayerArrays, LayerType
from training.detectors.vae import Layer1VAE
from training.errors import CheckpointError, PipelineError
from training.model_files import load_model, save_model, sidecar_path
from training.tests.reliability.harness import flip_bit, truncate

pytestmark = pytest.mark.reliability

DAMAGE = {
    "truncated": lambda path: truncate(path, 0.5),
    "bit-flipped": lambda path: flip_bit(path, 0.5),
    "emptied": lambda path: path.write_bytes(b""),
}


@pytest.fixture(scope="module")
def events() -> list[dict]:
    from training.demo_data import generate_demo_events
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
