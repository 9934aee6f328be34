"""Hostile model files: sidecars and arrays that lie about what they hold.

A sidecar is validated in full when a model is registered or loaded, and refused with the
field named; sizes a file declares (a model's constructor arguments, an .npz member's inflated
size) are checked against configurable limits before anything of that size is allocated.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from training.artifacts.model_files import sidecar_path
from training.errors import CheckpointError
from training.tests.reliability.harness import last_json, run_child, small_model

pytestmark = pytest.mark.reliability


def _edit_sidecar(weights: Path, **changes: object) -> None:
    """Rewrite fields of a saved model's sidecar (Python's json writes NaN and Infinity)."""
    side = sidecar_path(weights)
    sidecar = json.loads(side.read_text())
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".")
            sidecar[outer][inner] = value
        else:
            sidecar[key] = value
    side.write_text(json.dumps(sidecar))


BAD_SIDECARS = {
    "threshold_text": ({"anomaly_threshold": "abc"}, "anomaly_threshold"),
    "threshold_nan": ({"anomaly_threshold": float("nan")}, "anomaly_threshold"),
    "threshold_inf": ({"anomaly_threshold": float("inf")}, "anomaly_threshold"),
    "threshold_bool": ({"anomaly_threshold": True}, "anomaly_threshold"),
    "init_args_list": ({"init_args": [1, 2]}, "init_args"),
    "init_arg_nan": ({"init_args.dropout": float("nan")}, "init_args"),
    "feature_spec_garbage": ({"feature_spec": "{not json"}, "feature_spec"),
    "sha256_short": ({"sha256": "abc"}, "sha256"),
    "model_class_number": ({"model_class": 7}, "model_class"),
}


@pytest.mark.parametrize("case", list(BAD_SIDECARS))
def test_sidecar_with_a_bad_field_is_refused_at_registration(tmp_path, case, observed):
    """Stage: registry register
    Fault: a saved model whose sidecar holds a bad value in one field (test id): threshold
        "abc", NaN, Infinity or true; init_args a list, or a NaN argument; a feature_spec that
        is not JSON; a 3-character sha256; a number as model_class. Before, "abc" was
        registered and promotable, then every score crashed; NaN and Infinity gave an
        IntegrityError traceback.
    Expected: CheckpointError naming the sidecar file and the field; no version registered, no
        artifact folder left; `load_model` refuses the same file the same way.
    """
    from training.artifacts.model_files import load_model
    from training.registry.registry import ModelMetadata, ModelRegistry

    changes, field = BAD_SIDECARS[case]
    weights = small_model(tmp_path / "m.pt")
    _edit_sidecar(weights, **changes)
    registry = ModelRegistry(tmp_path / "models")
    with pytest.raises(CheckpointError) as info:
        registry.register_model(weights, ModelMetadata("vae", "1.0.0", "layer1"))
    message = str(info.value)
    assert str(sidecar_path(weights)) in message and field in message, message
    assert registry.list_models() == []
    assert not (registry.artifacts_dir / "vae").exists() or \
        list((registry.artifacts_dir / "vae").iterdir()) == []
    with pytest.raises(CheckpointError, match=field):
        load_model(weights)
    observed(message)


HUGE = """
import json, os, re
from training.artifacts.model_files import load_model
from training.errors import PipelineError
from training.registry.registry import ModelMetadata, ModelRegistry

def peak_mb():
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) / 1024

def attempt(call):
    try:
        call()
        return {{"loaded": True}}
    except PipelineError as exc:
        return {{"error": type(exc).__name__, "message": str(exc)}}

def edit(**init_args):
    sidecar = json.loads(open({side!r}).read())
    sidecar["init_args"].update(init_args)
    open({side!r}, "w").write(json.dumps(sidecar))

result = {{"baseline": attempt(lambda: load_model({weights!r}))}}
result["baseline_mb"] = peak_mb()  # the same imports and a genuine load
edit(hidden_dim=3_000_000)
result["loaded"] = attempt(lambda: load_model({weights!r}))
result["registered"] = attempt(lambda: ModelRegistry({registry!r}).register_model(
    {weights!r}, ModelMetadata("vae", "1.0.0", "layer1")))
edit(hidden_dim=6_000)
result["unfit"] = attempt(lambda: load_model({weights!r}))
result["peak_mb"] = peak_mb()
edit(hidden_dim=8)
os.environ["MAXIMUS_MAX_MODEL_BYTES"] = "100000"
result["lowered"] = attempt(lambda: load_model({genuine!r}))
del os.environ["MAXIMUS_MAX_MODEL_BYTES"]
result["default"] = attempt(lambda: load_model({genuine!r}))
print(json.dumps(result))
"""


def test_sidecar_declaring_a_huge_model_is_refused_before_allocating(tmp_path, observed):
    """Stage: model files
    Fault: a small saved Layer1VAE whose sidecar declares hidden_dim 3,000,000 (weights of
        hidden_dim 8, sha256 intact), loaded with `load_model` and registered; the same with
        hidden_dim 6,000 (a 150 MB model, under the limit); then a genuine model of
        hidden_dim 256 loaded with MAXIMUS_MAX_MODEL_BYTES lowered to 100,000. Before, the
        declared model was built (2-4 GB for some sizes) before the mismatch was refused.
    Expected: CheckpointError naming the sidecar, the declared size and the limit's variable
        (hidden_dim 6,000: the shapes that do not fit the weights), raised before allocating:
        the loading process grows by less than 100 MiB over a genuine load. The genuine
        model is refused under the lowered limit and loads under the default one.
    """
    from training.artifacts.model_files import save_model
    from training.detectors.vae import Layer1VAE

    weights = small_model(tmp_path / "m.pt")
    genuine = tmp_path / "genuine.pt"
    save_model(Layer1VAE(hidden_dim=256, latent_dim=16), genuine)
    result = last_json(run_child(HUGE.format(
        side=str(sidecar_path(weights)), weights=str(weights), genuine=str(genuine),
        registry=str(tmp_path / "models"))))
    assert result["baseline"] == {"loaded": True}, result
    for case in ("loaded", "registered"):
        message = result[case].get("message", "")
        assert result[case].get("error") == "CheckpointError", result[case]
        assert f"{sidecar_path(weights)}: init_args " in message, message
        assert "MAXIMUS_MAX_MODEL_BYTES" in message, message
    assert result["unfit"].get("error") == "CheckpointError", result["unfit"]
    assert "the weights do not fit the Layer1VAE" in result["unfit"]["message"]
    growth = result["peak_mb"] - result["baseline_mb"]
    assert growth < 100, result
    assert result["lowered"].get("error") == "CheckpointError", result["lowered"]
    assert "100,000" in result["lowered"]["message"], result["lowered"]
    assert result["default"] == {"loaded": True}, result["default"]
    observed(f"{result['loaded']['message']} (peak +{growth:.0f} MiB)")


# -- compressed arrays ---------------------------------------------------------------------------

def _npz_bomb(path: Path, inflated: int) -> Path:
    """A layer-1 sample file whose features member is `inflated` bytes of zeros, deflated."""
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 128), np.float32))
    header["shape"] = (inflated // 512, 128)
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("features.npy", "w", force_zip64=True) as member:
            member.write(buffer.getvalue())
            chunk = bytes(1 << 20)
            for _ in range(inflated // len(chunk)):
                member.write(chunk)
    return path


LOAD_NPZ = """
import json, os, re
from training.data_preprocessor import LayerArrays
from training.errors import PipelineError

def peak_mb():
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) / 1024

def attempt(path):
    try:
        LayerArrays.load(path)
        return {{"loaded": True}}
    except PipelineError as exc:
        return {{"error": type(exc).__name__, "message": str(exc)}}

result = {{"baseline": attempt({small!r}), "baseline_mb": peak_mb()}}
os.environ["MAXIMUS_MAX_INFLATED_BYTES"] = str(8 << 20)
result["lowered"] = attempt({path!r})
result["peak_mb"] = peak_mb()
del os.environ["MAXIMUS_MAX_INFLATED_BYTES"]
result["default"] = attempt({path!r})
print(json.dumps(result))
"""


def test_compressed_npz_inflating_past_the_limit_is_refused(tmp_path, observed):
    """Stage: preprocessing save
    Fault: layer1_samples.npz whose deflated features member (about 64 kB on disk) inflates to
        64 MiB, loaded with MAXIMUS_MAX_INFLATED_BYTES lowered to 8 MiB (default 256 MiB); a
        3 MB file of this kind cost 2-4 GB before it was refused.
    Expected: SourceError naming the file, the inflated size and the variable, raised before
        inflating: the loading process grows by less than 32 MiB over loading a small file.
        Under the default limit the file passes the size check (and is refused only as not a
        feature file).
    """
    path = _npz_bomb(tmp_path / "layer1_samples.npz", 64 << 20)
    small = _npz_bomb(tmp_path / "small.npz", 1 << 20)
    assert path.stat().st_size < 1 << 20
    result = last_json(run_child(LOAD_NPZ.format(path=str(path), small=str(small))))
    lowered = result["lowered"]
    assert lowered.get("error") == "SourceError", result
    assert lowered["message"] == (f"{path}: compressed members inflate to 67,108,992 bytes, over "
                                  "the limit of 8,388,608; set MAXIMUS_MAX_INFLATED_BYTES higher "
                                  "if the file is genuine")
    growth = result["peak_mb"] - result["baseline_mb"]
    assert growth < 32, result
    assert "MAXIMUS_MAX_INFLATED_BYTES" not in result["default"].get("message", ""), result
    observed(f"{lowered['message']} (peak +{growth:.0f} MiB)")
