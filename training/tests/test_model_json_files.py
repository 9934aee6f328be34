"""The JSON files beside a model (its sidecar, a registered file, the registry's fusion.json)
read as regular files only: a FIFO swapped in for one hung `score` and `evaluate` until someone
wrote to it, and a fusion.json that is not JSON was "an unexpected JSONDecodeError (a bug)"
(red-team trial)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from training.artifacts.model_files import read_sidecar, sidecar_path
from training.collection.collector import DataSource
from training.errors import CheckpointError, ConfigError, SchemaError
from training.evaluation.calibration import Calibration
from training.evaluation.fusion import Fusion
from training.registry.artifacts import read_verified
from training.registry.registry import ModelRegistry
from training.scoring.fused import load_fusion, save_fusion, score_fused


def _raised_within(seconds: float, fifo: Path, call: Callable[[], object]) -> BaseException:
    """What `call` raised, failing the test if it is still blocked after `seconds` (then a
    writer opens and closes `fifo`, so that the blocked read ends)."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # the reader sees the end
        pytest.fail(f"reading {fifo} blocked")
    assert raised, "nothing was raised"
    return raised[0]


def test_a_fifo_as_a_models_sidecar_or_registered_file_is_refused_without_blocking(tmp_path):
    model = tmp_path / "model.pt"
    os.mkfifo(sidecar_path(model))
    error = _raised_within(30, sidecar_path(model), lambda: read_sidecar(model))
    assert isinstance(error, CheckpointError)
    assert str(error) == (f"{sidecar_path(model)}: cannot read the sidecar (a FIFO, not a "
                          "regular file)")
    registered = tmp_path / "registered.json"
    os.mkfifo(registered)
    error = _raised_within(30, registered, lambda: read_verified(registered, "0" * 64))
    assert isinstance(error, CheckpointError)
    assert str(error) == (f"{registered}: the registered file cannot be read (a FIFO, not a "
                          "regular file)")


def test_a_fusion_file_that_is_a_fifo_or_not_json_is_named(tmp_path):
    fusion = Fusion("min-p", ({"layer": "layer1", "model_name": "layer1_vae",
                               "version": "1.0.0"},),
                    Calibration.fit(np.arange(100.0), rule="quantile:0.9"))
    path = save_fusion(fusion, tmp_path)
    path.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n")  # say, a link to /etc/passwd
    with pytest.raises(SchemaError, match=f"^{path}: not a fused detector's JSON "
                                          r"\(Expecting value: line 1 column 1"):
        load_fusion(tmp_path)
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(SchemaError, match=f"^{path}: not a fused detector's JSON"):
        load_fusion(tmp_path)
    path.unlink()
    os.mkfifo(path)
    error = _raised_within(30, path, lambda: load_fusion(tmp_path))
    assert isinstance(error, SchemaError)
    assert str(error) == f"{path}: cannot read it (a FIFO, not a regular file)"


def test_score_fused_refuses_an_output_that_is_its_input(tmp_path):
    """`score --model fused` made this check in the command line only; the Python API
    replaced the events with their scores."""
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({"timestamp": "2024-01-01T00:00:00Z"}) + "\n")
    registry = ModelRegistry(tmp_path / "models")
    with pytest.raises(ConfigError, match="output must not replace a file this command "
                                          "reads: .*events.jsonl is one of its inputs"):
        score_fused(registry, DataSource("mine", "json", {"path": str(events)}), events)
    assert json.loads(events.read_text()) == {"timestamp": "2024-01-01T00:00:00Z"}
