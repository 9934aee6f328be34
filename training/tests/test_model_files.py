"""training.artifacts.model_files: sidecars validated in full, declared sizes checked first."""

from __future__ import annotations

import json

import pytest
import torch

from training.artifacts.model_files import (
    DEFAULT_MODEL_LIMIT, declared_model, load_model, max_model_bytes, read_sidecar, sha256_bytes,
    sidecar_path,
)
from training.errors import CheckpointError, ConfigError
from training.registry.registry import ModelMetadata, ModelRegistry
from training.tests.registry_fixtures import save_tiny


@pytest.fixture
def weights(tmp_path):
    return save_tiny(tmp_path / "tiny.pt", dim=4, threshold=0.5)


def _edit(weights, **changes):
    side = sidecar_path(weights)
    side.write_text(json.dumps({**json.loads(side.read_text()), **changes}))


def test_a_genuine_sidecar_passes_and_declares_its_shapes(weights):
    sidecar = read_sidecar(weights)
    cls, shapes = declared_model(weights, sidecar)
    assert (cls.__name__, shapes) == ("TinyDetector", {"centre": (4,)})
    assert load_model(weights).threshold == 0.5


@pytest.mark.parametrize("changes, message", [
    ({"anomaly_threshold": "abc"}, "anomaly_threshold must be a finite number or null, got 'abc'"),
    ({"anomaly_threshold": float("-inf")},
     "anomaly_threshold must be a finite number or null, got -inf"),
    ({"init_args": {"dim": [1, {"x": float("nan")}]}}, "init_args dim.1.x is nan, not a finite "
                                                       "number"),
    ({"model_class": "os.system"}, "model_class must be a class name, got 'os.system'"),
    ({"sha256": "A" * 64}, "sha256 must be 64 lower-case hex digits"),
    ({"saved_at": 5}, "saved_at must be text, got 5"),
])
def test_a_bad_field_is_named(weights, changes, message):
    _edit(weights, **changes)
    with pytest.raises(CheckpointError) as info:
        read_sidecar(weights)
    assert str(info.value).startswith(f"{sidecar_path(weights)}: {message}")


def test_the_model_size_limit_comes_from_the_environment(weights, monkeypatch):
    assert max_model_bytes() == DEFAULT_MODEL_LIMIT
    monkeypatch.setenv("MAXIMUS_MAX_MODEL_BYTES", "16")
    assert max_model_bytes() == 16
    declared_model(weights, read_sidecar(weights))  # 4 float32: exactly 16 bytes
    monkeypatch.setenv("MAXIMUS_MAX_MODEL_BYTES", "15")
    with pytest.raises(CheckpointError, match="TinyDetector of 16 bytes, over the limit of 15"):
        load_model(weights)
    for bad in ("0", "-1", "lots"):
        monkeypatch.setenv("MAXIMUS_MAX_MODEL_BYTES", bad)
        with pytest.raises(ConfigError, match=f"MAXIMUS_MAX_MODEL_BYTES must be .* got '{bad}'"):
            max_model_bytes()


def test_weights_that_do_not_fit_the_declared_model_are_refused_before_building_it(weights):
    _edit(weights, init_args={"dim": 5})
    with pytest.raises(CheckpointError, match=r"centre is \(4,\) in the file, \(5,\) in the model"):
        load_model(weights)


class _Payload:
    """Unpickled, it would write `marker` (the test checks that it never does)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


PLAIN_WEIGHTS = ("holds code or objects other than weights (pickled io.open), refused: a "
                 "model file must be plain weights (a state_dict, as save_model and "
                 "torch.save(model.state_dict(), path) write); nothing in it was run")


def test_a_pickle_in_the_weights_is_refused_in_our_words_naming_the_users_file(weights,
                                                                                tmp_path):
    """Not PyTorch's advice to retry with weights_only=False (which would run it), and not
    the registry's temporary copy."""
    marker = tmp_path / "ran"
    torch.save({"centre": torch.zeros(4), "x": _Payload(marker)}, weights)
    _edit(weights, sha256=sha256_bytes(weights.read_bytes()))  # a sidecar that vouches for it
    with pytest.raises(CheckpointError) as info:
        load_model(weights)
    assert str(info.value) == f"{weights} {PLAIN_WEIGHTS}"
    assert info.value.__cause__ is None and info.value.__suppress_context__
    registry = ModelRegistry(tmp_path / "models")
    bare = tmp_path / "bare.pt"
    torch.save({"x": _Payload(marker)}, bare)
    for path in (weights, bare):
        with pytest.raises(CheckpointError) as info:
            registry.register_model(path, ModelMetadata("tiny", "1.0.0", "layer1"))
        assert str(info.value) == f"{path}: not registered: {PLAIN_WEIGHTS}"
    assert not marker.exists() and registry.list_models() == []


def test_a_damaged_weights_file_is_named_as_such(weights):
    weights.write_bytes(weights.read_bytes()[:100])
    _edit(weights, sha256=sha256_bytes(weights.read_bytes()))
    with pytest.raises(CheckpointError) as info:
        load_model(weights)
    assert str(info.value).startswith(f"{weights}: not a readable PyTorch weights file, or a "
                                      "damaged one (RuntimeError: PytorchStreamReader failed")



def test_a_pickle_in_a_trainer_state_is_refused_in_our_words(tmp_path):
    from training.trainer.resume import RESUME_ADVICE, load_state

    marker, state = tmp_path / "ran", tmp_path / "vae_last_state.pt"
    torch.save({"x": _Payload(marker)}, state)
    with pytest.raises(CheckpointError) as info:
        load_state(state)
    assert str(info.value) == (
        f"{state} holds code or objects other than weights (pickled io.open), refused: the "
        f"trainer state must hold tensors and plain values only; nothing in it was run; "
        f"{RESUME_ADVICE}")
    assert not marker.exists()
