"""Opaque artifacts (weights without a sidecar) and the registry results that serve the
original API and this one at once (`training.registry.results`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from training.artifacts.model_files import save_model, sha256_bytes
from training.errors import CheckpointError, RegistryError
from training.registry.registry import ModelMetadata, ModelRegistry
from training.registry.results import RegisteredModel, RegisteredPath
from training.tests.registry_fixtures import TinyDetector, save_tiny
from training.tests.test_model_registry import _Evil


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "models")


def _plain(path: Path, centre: float = 0.5) -> Path:
    """What the original saved: a bare state_dict, no sidecar."""
    model = TinyDetector(dim=4)
    with torch.no_grad():
        model.centre.fill_(centre)
    torch.save(model.state_dict(), path)
    return path


def test_a_plain_state_dict_is_an_opaque_artifact_until_a_sidecar_is_attached(registry, tmp_path,
                                                                             caplog):
    weights = _plain(tmp_path / "tiny.pt")
    found = registry.register_model(weights, ModelMetadata("tiny", "1.0.0", "layer1",
                                                           metrics={"accuracy": 0.9}))
    assert isinstance(found, RegisteredPath) and found.opaque and found.metadata.opaque
    assert os.fspath(found) == str(registry.artifacts_dir / "tiny/1.0.0/model.pt")
    assert found.version == "1.0.0" and found.exists()  # the metadata's and the path's
    assert found.weights_sha256 == sha256_bytes(weights.read_bytes())
    assert registry.verify("tiny", "1.0.0") == found.weights_sha256
    assert registry.transition_stage("tiny", "1.0.0", "production")
    got = registry.get_model("tiny", stage="production")
    assert isinstance(got, RegisteredPath) and got == found
    with pytest.raises(CheckpointError, match=r"without a sidecar: an opaque artifact.*"
                                              r"registry.attach_sidecar\('tiny', '1.0.0'"):
        got.model
    with pytest.raises(CheckpointError, match="opaque artifact"):
        registry.load_model("tiny")

    # Attaching checks that the weights load with it; nothing changes when they do not.
    with pytest.raises(CheckpointError, match="do not fit the TinyDetector"):
        registry.attach_sidecar("tiny", "1.0.0", TinyDetector, {"dim": 5})
    assert registry.get_metadata("tiny", "1.0.0").opaque
    stored = registry.attach_sidecar("tiny", "1.0.0", "TinyDetector", {"dim": 4},
                                     anomaly_threshold=1.5, reason="class known")
    assert not stored.opaque and stored.anomaly_threshold == 1.5 and stored.stage == "production"
    loaded = registry.load_model("tiny", stage="production")
    assert isinstance(loaded, RegisteredModel) and loaded.model.centre.tolist() == [0.5] * 4
    assert loaded.threshold == 1.5 and os.fspath(loaded) == os.fspath(found)
    assert registry.get_model("tiny").model.centre.tolist() == [0.5] * 4
    last = registry.history("tiny")[-1]
    assert (last.event, last.from_stage, last.to_stage, last.reason) == \
        ("register", "production", "production", "sidecar attached: TinyDetector: class known")
    with pytest.raises(RegistryError, match="already has a sidecar"):
        registry.attach_sidecar("tiny", "1.0.0", TinyDetector, {"dim": 4})
    # The attached sidecar is verified like a registered one.
    (registry.artifacts_dir / "tiny/1.0.0/model.json").write_text("{}")
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        registry.load_model("tiny", "1.0.0")


def test_opaque_weights_are_verified_and_never_unpickled(registry, tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"centre": _Evil(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="not registered: holds code or objects"):
        registry.register_model(tmp_path / "evil.pt", ModelMetadata("tiny", "6.6.6", "layer1"))
    torch.save(nn.Linear(2, 2), tmp_path / "module.pt")  # a whole pickled module
    with pytest.raises(CheckpointError, match="not registered: holds code or objects"):
        registry.register_model(tmp_path / "module.pt", ModelMetadata("tiny", "6.6.7", "layer1"))
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not a state_dict"):
        registry.register_model(tmp_path / "list.pt", ModelMetadata("tiny", "6.6.8", "layer1"))
    assert not marker.exists() and registry.list_models() == []
    registry.register_model(_plain(tmp_path / "ok.pt"), ModelMetadata("tiny", "1.0.0", "layer1"))
    path = registry.artifacts_dir / "tiny/1.0.0/model.pt"
    path.write_bytes(path.read_bytes()[:-8] + b"tampered")
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        registry.get_model("tiny", "1.0.0")
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        registry.verify("tiny")


def test_save_model_of_a_plain_module_writes_a_registrable_state_dict(registry, tmp_path):
    returned = save_model(nn.Linear(3, 2), tmp_path / "linear.pt")
    assert returned == tmp_path / "linear.pt" and not (tmp_path / "linear.json").exists()
    assert registry.register_model(returned, ModelMetadata("lin", "1.0.0", "layer1")).opaque


def test_results_serve_the_original_shapes_and_this_api(registry, tmp_path, caplog):
    weights = save_tiny(tmp_path / "tiny.pt", threshold=2.0)
    for version, accuracy in (("1.0.0", 0.8), ("1.1.0", 0.9)):
        registry.register_model(weights, ModelMetadata("tiny", version, "layer1",
                                                       metrics={"accuracy": accuracy}))
    registry.register_model(_plain(tmp_path / "p.pt"), ModelMetadata("plain", "0.1", "layer1"))
    listed = registry.list_models()
    assert listed == {"plain": ["0.1"], "tiny": ["1.0.0", "1.1.0"]}  # the original's mapping
    assert [m.version for m in listed] == ["0.1", "1.0.0", "1.1.0"] and len(listed) == 3
    assert listed["tiny"] == ["1.0.0", "1.1.0"] and "tiny" in listed and listed[0].opaque
    assert dict(listed.items()) == listed.as_dict() and listed != {"tiny": ["1.0.0"]}
    assert registry.list_models(model_name="plain") == {"plain": ["0.1"]}
    compared = registry.compare_models("tiny", ["1.0.0", "1.1.0"], "accuracy")
    assert compared == {"1.0.0": 0.8, "1.1.0": 0.9} and compared.best == "1.1.0"
    with caplog.at_level(logging.WARNING):  # no val_loss recorded: left out, never a 0
        unmeasured = registry.compare_models("tiny", ["1.0.0", "1.1.0"])
    assert unmeasured == {} and unmeasured.best is None
    assert unmeasured.missing == unmeasured["missing"] == ["1.0.0", "1.1.0"]
    assert "tiny 1.1.0: no val_loss recorded (it has accuracy), left out of the comparison" \
        in caplog.text
    caplog.clear()
    loaded = registry.get_model("tiny", "1.1.0")
    assert str(loaded) == os.fspath(loaded) and loaded.exists() and loaded.stage == "none"
    assert torch.load(loaded)["centre"].shape == (4,)
    with caplog.at_level(logging.WARNING):
        assert registry.get_model("tiny", "9.9.9") is None
    assert "no version '9.9.9'; known: 1.0.0, 1.1.0" in caplog.text
    with caplog.at_level(logging.ERROR):
        assert registry.transition_stage("tiny", "1.0.0", "shipped") is False
        assert registry.transition_stage("nope", "1.0.0", "staging") is False
        assert registry.transition_stage("tiny", "1.0.0", "production") is True
        assert registry.delete_model("tiny", "1.0.0") is False  # in production
        assert registry.delete_model("tiny", "7.0.0") is False
    assert "stage must be one of" in caplog.text and "is in production" in caplog.text
    assert registry.delete_model("tiny", "1.1.0") is True
