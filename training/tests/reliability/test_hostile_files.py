"""Hostile files: inputs built to execute code, exhaust memory or crash a parser.

Each is refused with a clear package error, or processed in bounded memory with the bad part
quarantined. Nothing in a file is ever executed: every pickle payload here would create a
marker file when unpickled, and the marker must not exist afterwards.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from training.artifacts.model_files import load_model, save_model, sha256_bytes, sidecar_path
from training.detectors.vae import Layer1VAE
from training.errors import CheckpointError, PipelineError, SchemaError, SourceError
from training.data_preprocessor import DataPreprocessor, LayerArrays, LayerType
from training.tests.reliability.harness import collect_in_child

pytestmark = pytest.mark.reliability


class Payload:
    """Unpickling this runs `open(marker, "w")`: proof that a file's code was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# -- pickled payloads ---------------------------------------------------------------------------

def _malicious_model(directory: Path, marker: Path) -> Path:
    """A .pt holding a payload beside weights, with a sidecar whose sha256 matches it (the
    attacker controls both files)."""
    path = directory / "layer1_vae_best.pt"
    model = Layer1VAE(hidden_dim=8, latent_dim=2)
    save_model(model, path)
    state = dict(model.state_dict())
    state["payload"] = Payload(marker)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    path.write_bytes(buffer.getvalue())
    side = sidecar_path(path)
    sidecar = json.loads(side.read_text())
    sidecar["sha256"] = sha256_bytes(buffer.getvalue())
    side.write_text(json.dumps(sidecar))
    return path


def test_pickle_payload_in_model_file_is_refused(tmp_path, observed):
    """Stage: model files
    Fault: a .pt whose state dict carries an object with a `__reduce__` payload, and a sidecar
        re-signed with the file's sha256.
    Expected: `load_model` raises CheckpointError (weights_only refuses the global); the payload
        never runs (its marker file does not exist).
    """
    marker = tmp_path / "executed"
    path = _malicious_model(tmp_path, marker)
    with pytest.raises(CheckpointError, match="holds code or objects other than weights") as info:
        load_model(path)
    assert not marker.exists()
    observed(info.value)


def test_bare_torch_load_of_the_seed_quick_start_is_weights_only(tmp_path, observed):
    """Stage: model files
    Fault: the seed README's own step 5, `model.load_state_dict(torch.load(path))` with no
        sidecar check, pointed at a .pt carrying a `__reduce__` payload.
    Expected: torch.load (weights_only by default in the pinned torch) raises UnpicklingError;
        the payload never runs. A genuine checkpoint loads through the same line.
    """
    marker = tmp_path / "executed"
    path = _malicious_model(tmp_path, marker)
    with pytest.raises(pickle.UnpicklingError) as info:
        Layer1VAE(hidden_dim=8, latent_dim=2).load_state_dict(torch.load(path))
    assert not marker.exists()
    genuine = tmp_path / "genuine.pt"
    save_model(Layer1VAE(hidden_dim=8, latent_dim=2), genuine)
    Layer1VAE(hidden_dim=8, latent_dim=2).load_state_dict(torch.load(genuine))
    observed(str(info.value).splitlines()[0])


def test_pickle_payload_in_preprocessed_npz_is_refused(tmp_path, observed):
    """Stage: preprocessing save
    Fault: a genuine layer1_samples.npz with one member replaced by an object array whose
        element has a `__reduce__` payload (np.save pickles it).
    Expected: `LayerArrays.load` and `load_samples` raise SourceError (allow_pickle=False);
        the payload never runs.
    """
    from training.demo.generator import generate_demo_events
    pre = DataPreprocessor(output_dir=tmp_path)
    arrays = pre.featurize(generate_demo_events(100, seed=1)["events"], LayerType.LAYER1_SENSORY)
    path = pre.save_samples(arrays, "layer1_samples")
    marker = tmp_path / "executed"
    with np.load(path, allow_pickle=False) as data:
        members = {k: data[k] for k in data.files}
    members["attack_type"] = np.array([Payload(marker)], dtype=object)
    with open(path, "wb") as handle:
        np.savez(handle, **members)
    for load in (LayerArrays.load, pre.load_samples):
        with pytest.raises(SourceError, match="allow_pickle=False") as info:
            load(path)
    assert not marker.exists()
    observed(info.value)


# -- the classical detectors' fitted state ------------------------------------------------------

def _fitted(name: str):
    """A small row detector of each kind, fitted when it learns in one pass."""
    from training.detectors.rows import row_detector

    rows = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    if name == "autoencoder":  # weights, not fitted arrays: its initial weights will do
        return row_detector(name)(input_dim=3)
    return row_detector(name)(input_dim=3, seed=0).fit(rows)


def _resigned(path: Path, state: dict) -> None:
    """Replace the weights at `path` by `state`, re-signing the sidecar (the attacker controls
    both files)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    path.write_bytes(buffer.getvalue())
    side = sidecar_path(path)
    sidecar = json.loads(side.read_text())
    sidecar["sha256"] = sha256_bytes(buffer.getvalue())
    side.write_text(json.dumps(sidecar))


@pytest.mark.parametrize("name", ["ecod", "knn", "iforest", "autoencoder"])
def test_pickle_payload_in_a_classical_detector_file_is_refused(tmp_path, name, observed):
    """Stage: model files
    Fault: the saved state of each row detector (test id: ecod, knn, iforest, autoencoder: its
        fitted arrays or weights) with an object carrying a `__reduce__` payload added, and the
        sidecar re-signed with the file's sha256.
    Expected: `load_model` raises CheckpointError (weights_only refuses the global); the payload
        never runs. The genuine file loads and scores like the saved model.
    """
    model = _fitted(name)
    path = tmp_path / f"{name}.pt"
    save_model(model, path)
    rows = torch.from_numpy(np.random.default_rng(1).normal(size=(8, 3)).astype(np.float32))
    assert torch.equal(load_model(path).model.anomaly_score(rows), model.eval().anomaly_score(rows))
    marker = tmp_path / "executed"
    _resigned(path, {**model.state_dict(), "payload": Payload(marker)})
    with pytest.raises(CheckpointError, match="holds code or objects other than weights") as info:
        load_model(path)
    assert not marker.exists()
    observed(info.value)


def _cycle(state: dict) -> dict:
    left = state["left"].clone()
    left[0, 1] = 0  # node 1 points back to the root: a walk that never ends
    return {**state, "left": left}


def _far_child(state: dict) -> dict:
    right = state["right"].clone()
    right[0, 0] = 10**6  # a child outside the tree's arrays
    return {**state, "right": right}


def _bad_feature(state: dict) -> dict:
    feature = state["feature"].clone()
    feature[0, 0] = 99  # the model reads 3 features
    return {**state, "feature": feature}


def _nan_threshold(state: dict) -> dict:
    threshold = state["threshold"].clone()
    threshold[0, 0] = float("nan")
    return {**state, "threshold": threshold}


def _unsorted(state: dict) -> dict:
    return {**state, "sorted_rows": state["sorted_rows"].flip(0)}


def _too_wide(state: dict) -> dict:
    return {**state, "reference": torch.zeros(64, 5)}


def _wrong_dtype(state: dict) -> dict:
    return {**state, "reference": state["reference"].double()}


def _too_few(state: dict) -> dict:
    return {**state, "reference": state["reference"][:2]}


HOSTILE_STATES = {
    "iforest-cycle": ("iforest", _cycle, "a split whose children come after it"),
    "iforest-far-child": ("iforest", _far_child, "inside its tree"),
    "iforest-feature": ("iforest", _bad_feature, r"features must be in \[0, 3\)"),
    "iforest-nan": ("iforest", _nan_threshold, "NaN or infinite"),
    "ecod-unsorted": ("ecod", _unsorted, "sorted within each column"),
    "knn-width": ("knn", _too_wide, "has 5 features, the model reads 3"),
    "knn-dtype": ("knn", _wrong_dtype, "must be a 2-d torch.float32 tensor"),
    "knn-too-few": ("knn", _too_few, "k=5 needs at least 5"),
}


@pytest.mark.parametrize("case", list(HOSTILE_STATES))
def test_inconsistent_fitted_state_is_refused(tmp_path, case, observed):
    """Stage: model files
    Fault: a classical detector's fitted arrays rewritten (test id): an isolation-forest tree
        whose node points back to the root (a walk that never ends), a child index far outside
        the tree, a split on feature 99 of 3, a NaN threshold; ECOD columns out of order; a kNN
        reference 5 features wide for a 3-feature model, in float64, or with fewer rows than k;
        the sidecar re-signed each time.
    Expected: `load_model` raises CheckpointError naming the detector, the array and the rule,
        before any score is computed: nothing hangs, reads out of bounds or scores NaN.
    """
    name, damage, rule = HOSTILE_STATES[case]
    model = _fitted(name)
    path = tmp_path / f"{name}.pt"
    save_model(model, path)
    _resigned(path, damage(dict(model.state_dict())))
    with pytest.raises(CheckpointError, match=rule) as info:
        load_model(path)
    observed(info.value)


# -- absurd sizes -------------------------------------------------------------------------------

def test_npz_member_declaring_a_huge_array_is_refused(tmp_path, observed):
    """Stage: preprocessing save
    Fault: a layer1_samples.npz whose features member declares shape (10**12, 128) float32
        (466 TiB) in its .npy header but holds 64 bytes.
    Expected: a package error naming the file, raised at once: nothing of that size is ever
        allocated (no MemoryError, no swap storm).
    """
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 128)})
    path = tmp_path / "layer1_samples.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("features.npy", header.getvalue() + bytes(64))
    for load in (LayerArrays.load, DataPreprocessor(output_dir=tmp_path).load_samples):
        with pytest.raises(PipelineError, match="layer1_samples.npz") as info:
            load(path)
    observed(info.value)


def test_csv_header_with_a_million_columns_is_refused(tmp_path, observed):
    """Stage: collection
    Fault: a CSV file whose header line declares 1,000,000 columns (6.9 MB on one line).
    Expected: SourceError naming the file and the column limit; peak memory stays bounded.
    """
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(1_000_000)) + "\n1,2,3\n")
    result = collect_in_child("csv_file", {"path": str(path)})
    assert result.get("error") == "SourceError", result
    assert str(path) in result["message"] and "1000000 columns" in result["message"]
    assert result["max_rss_mb"] < 1024, result
    observed(f"{result['message']} (peak {result['max_rss_mb']:.0f} MiB)")


def test_parquet_footer_declaring_a_huge_length_is_refused(tmp_path, observed):
    """Stage: collection
    Fault: a Parquet file whose footer length field (the 4 bytes before the closing PAR1) is
        rewritten to 2**31 - 1, far beyond the file.
    Expected: SourceError naming the file; nothing is read past the file or allocated for it.
    """
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"timestamp": ["2024-01-01T00:00:00Z"], "source_ip": ["10.0.0.1"]}),
                   path)
    data = bytearray(path.read_bytes())
    data[-8:-4] = struct.pack("<i", 2**31 - 1)
    path.write_bytes(bytes(data))
    result = collect_in_child("parquet_file", {"path": str(path)})
    assert result.get("error") == "SourceError" and str(path) in result["message"], result
    observed(result["message"])


def test_overlong_line_is_refused_in_bounded_memory(tmp_path, observed):
    """Stage: collection
    Fault: a gzip JSON Lines file (200 kB) whose second line inflates to 80 MiB without a
        line break.
    Expected: SourceError naming the file and line 2 (longer than the 64 MiB line limit);
        peak memory stays a small multiple of that limit.
    """
    path = tmp_path / "long.jsonl.gz"
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    parts = [packer.compress(b'{"timestamp": "2024-01-01T00:00:00Z", "x": 1}\n{"x": "')]
    parts += [packer.compress(b"A" * (1 << 20)) for _ in range(80)]
    path.write_bytes(b"".join(parts) + packer.flush())
    result = collect_in_child("json_file", {"path": str(path)})
    assert result.get("error") == "SourceError", result
    assert str(path) in result["message"] and "line 2" in result["message"]
    assert result["max_rss_mb"] < 1024, result
    observed(f"{result['message']} (peak {result['max_rss_mb']:.0f} MiB)")


# -- decompression bombs ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gzip_bomb(tmp_path_factory) -> Path:
    """1 GiB of JSON Lines events in a 1 MB gzip file."""
    line = json.dumps({"timestamp": "2024-01-01T00:00:00Z", "source_ip": "10.0.0.1",
                       "dest_ip": "10.0.0.2", "dest_port": 443}).encode() + b"\n"
    chunk = line * ((1 << 20) // len(line))
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [packer.compress(chunk) for _ in range(1024)]
    path = tmp_path_factory.mktemp("bomb") / "events.jsonl.gz"
    path.write_bytes(b"".join(parts) + packer.flush())
    assert path.stat().st_size < 4 << 20
    return path


def test_gzip_bomb_is_refused_at_the_configured_limit(gzip_bomb, observed):
    """Stage: collection
    Fault: a 1 GiB decompression bomb (JSON Lines in a ~1 MB .gz) read with
        connection_params max_decompressed_bytes = 4 MiB.
    Expected: SourceError naming the file and max_decompressed_bytes, raised once the limit is
        passed; peak memory bounded (well under the inflated size).
    """
    result = collect_in_child("json_file", {"path": str(gzip_bomb),
                                            "max_decompressed_bytes": 4 << 20,
                                            "block_size": 1 << 20})
    assert result.get("error") == "SourceError", result
    assert str(gzip_bomb) in result["message"]
    assert "max_decompressed_bytes=4194304" in result["message"]
    assert result["max_rss_mb"] < 512, result
    observed(f"{result['message']} (peak {result['max_rss_mb']:.0f} MiB)")



# -- deeply nested JSON -------------------------------------------------------------------------

def _nested(depth: int, kind: str) -> str:
    return ('{"a":' * depth + "1" + "}" * depth) if kind == "object" else (
        "[" * depth + "1" + "]" * depth)


@pytest.mark.parametrize("depth", [200, 1_000, 100_000])
def test_deeply_nested_json_lines_are_quarantined(tmp_path, depth, observed):
    """Stage: collection
    Fault: a JSON Lines file whose second and third lines hold an object and an array nested
        `depth` levels (test id: 200, 1,000 or 100,000; the last crashed pyarrow's JSON reader
        with a segmentation fault, 1,000 overflowed Python's recursion), between good lines.
    Expected: the collection ends normally; exactly the two deep lines are quarantined (line
        2 and 3, "nested deeper than" the limit or the parser's depth limit); the good lines
        are events.
    """
    good = '{"timestamp": "2024-01-01T00:00:00Z", "source_ip": "10.0.0.1", "n": %d}'
    lines = [good % 1, '{"timestamp": "2024-01-01T00:00:01Z", "deep": %s}' % _nested(depth, "object"),
             '{"timestamp": "2024-01-01T00:00:02Z", "deep": %s}' % _nested(depth, "array"),
             good % 4]
    path = tmp_path / "deep.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = collect_in_child("json_file", {"path": str(path)})
    assert "error" not in result, result
    assert result["events"] == 2, result["stats"]
    assert [r["line"] for r in result["rejects"]] == [2, 3]
    assert all("nested deeper than" in r["reason"] or "depth limit" in r["reason"]
               for r in result["rejects"]), [r["reason"] for r in result["rejects"]]
    observed("; ".join(sorted({r["reason"][:80] for r in result["rejects"]})))


def test_deeply_nested_json_document_element_is_quarantined(tmp_path, observed):
    """Stage: collection
    Fault: a JSON array document whose second element nests 500 levels (orjson could parse it
        but not write it back: a TypeError escaped the reader before).
    Expected: that element is quarantined ("nested deeper than 128 levels"), the other two are
        events.
    """
    path = tmp_path / "events.json"
    path.write_text('[{"timestamp": "2024-01-01T00:00:00Z", "n": 1}, {"deep": %s}, '
                    '{"timestamp": "2024-01-01T00:00:02Z", "n": 3}]' % _nested(500, "object"))
    result = collect_in_child("json_file", {"path": str(path)})
    assert "error" not in result, result
    assert result["events"] == 2
    [reject] = result["rejects"]
    assert reject["reason"] == "event 1 is nested deeper than 128 levels"
    observed(reject["reason"])


def test_deeply_nested_event_dict_is_refused_by_preprocess_event(observed):
    """Stage: preprocessing
    Fault: `preprocess_event` on an event dict nesting 900 levels (json.loads makes up to ~1,000).
    Expected: SchemaError "event 0 is nested deeper than 128 levels", not a RecursionError.
    """
    event = json.loads('{"timestamp": "2024-01-01T00:00:00Z", "deep": %s}'
                       % _nested(900, "object"))
    with pytest.raises(SchemaError, match="nested deeper than 128 levels") as info:
        DataPreprocessor(output_dir=Path("unused")).preprocess_event(event)
    observed(info.value)


# -- registry: path traversal and pickles -------------------------------------------------------

TRAVERSAL = ["../evil", "..", "vae/../../evil", "/tmp/evil", ".hidden", "a\\..\\b", "vae\x00x",
             "", "x" * 129]


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("field", ["model_name", "version", "attached file"])
def test_path_traversal_in_registry_names_is_refused(tmp_path, field, observed):
    """Stage: registry register
    Fault: `register_model` with a model name, a version or an attached file name (test id)
        that tries to leave the registry folder: "../evil", "..", "vae/../../evil",
        "/tmp/evil", ".hidden", backslashes, a NUL byte, "", 129 characters.
    Expected: ConfigError for each, before anything is written: no file appears anywhere under
        the test folder, the registry's versions and log are unchanged; lookups with such names
        read nothing outside the registry.
    """
    from training.errors import ConfigError, NotFoundError
    from training.registry.registry import ModelMetadata
    from training.tests.reliability.harness import registry_state, seeded_registry

    registry = seeded_registry(tmp_path)
    before, files = registry_state(registry), _tree(tmp_path)
    messages = set()
    for bad in TRAVERSAL:
        name, version, files_arg = "vae", "3.0.0", None
        if field == "model_name":
            name = bad
        elif field == "version":
            version = bad
        else:
            files_arg = {bad: tmp_path / "a.pt"}
        with pytest.raises(ConfigError) as info:
            registry.register_model(tmp_path / "new.pt", ModelMetadata(name, version, "layer1"),
                                    files=files_arg)
        messages.add(str(info.value).split(",")[0])
        if field == "attached file":
            with pytest.raises((ConfigError, NotFoundError)):
                registry.read_file("vae", bad, "1.0.0")
        else:
            with pytest.raises((ConfigError, NotFoundError)):
                registry.load_model(name, None if field == "model_name" else version)
    assert registry_state(registry) == before and _tree(tmp_path) == files
    observed("; ".join(sorted(messages)))


def test_registry_folder_symlinked_outside_is_refused(tmp_path, observed):
    """Stage: registry register
    Fault: the registry's artifacts/<model> folder replaced by a symlink to a folder outside
        the registry, then a version of that model registered.
    Expected: ConfigError ("resolves outside the registry's artifact folder"); nothing is
        written to the symlink's target.
    """
    from training.errors import ConfigError
    from training.registry.registry import ModelMetadata, ModelRegistry
    from training.tests.reliability.harness import small_model

    registry = ModelRegistry(tmp_path / "models")
    outside = tmp_path / "outside"
    outside.mkdir()
    (registry.artifacts_dir / "vae").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ConfigError, match="outside") as info:
        registry.register_model(small_model(tmp_path / "m.pt"), ModelMetadata("vae", "1.0.0",
                                                                            "layer1"))
    assert list(outside.iterdir()) == [] and registry.list_models() == []
    observed(info.value)


def test_pickle_payload_is_refused_at_registration(tmp_path, observed):
    """Stage: registry register
    Fault: `register_model` of a .pt carrying a `__reduce__` payload, with a sidecar re-signed
        with the file's sha256.
    Expected: CheckpointError; no version is registered, no artifact folder remains, and the
        payload never runs (no marker file).
    """
    from training.registry.registry import ModelMetadata, ModelRegistry

    registry = ModelRegistry(tmp_path / "models")
    marker = tmp_path / "executed"
    path = _malicious_model(tmp_path, marker)
    with pytest.raises(CheckpointError) as info:
        registry.register_model(path, ModelMetadata("vae", "1.0.0", "layer1"))
    assert not marker.exists() and registry.list_models() == []
    assert not (registry.artifacts_dir / "vae").exists() or \
        list((registry.artifacts_dir / "vae").iterdir()) == []
    observed(info.value)


# -- split files --------------------------------------------------------------------------------

def test_pickle_payload_in_split_file_is_refused(tmp_path, observed):
    """Stage: split save
    Fault: layer1_train.npz whose sample_ids member is an object array holding a `__reduce__`
        payload (pickled by np.savez).
    Expected: `DatasetSplit.load` / `load_splits` raise SourceError (allow_pickle=False); the
        payload never runs.
    """
    from training.datasets.split import DatasetSplit

    marker = tmp_path / "executed"
    path = tmp_path / "layer1_train.npz"
    np.savez(path, features=np.zeros((1, 4), np.float32), labels=np.zeros(1, np.int8),
             sample_ids=np.array([Payload(marker)], dtype=object))
    with pytest.raises(PipelineError, match="layer1_train.npz") as info:
        DatasetSplit.load(path)
    assert not marker.exists()
    observed(info.value)


def test_split_member_declaring_a_huge_array_is_refused(tmp_path, observed):
    """Stage: split save
    Fault: layer1_train.npz whose features member declares shape (10**12, 128) float32 in its
        .npy header but holds 64 bytes.
    Expected: a package error naming the file, at once; nothing of that size allocated.
    """
    from training.datasets.split import DatasetSplit

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 128)})
    path = tmp_path / "layer1_train.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("features.npy", header.getvalue() + bytes(64))
    with pytest.raises(PipelineError, match="layer1_train.npz") as info:
        DatasetSplit.load(path)
    observed(info.value)
