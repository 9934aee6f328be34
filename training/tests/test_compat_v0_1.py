"""Backward compatibility with release 0.1.0 (commit b8ffad7): what it wrote loads and scores
unchanged.

`fixtures/v0_1` holds a pipeline working directory (its registry with archived, production and
challenger versions of the three layers' models), split files and a checkpoint from the README
quick start, 200 events to score and the scores that commit gave them; `make_fixtures.py` there
says what each file is and how to remake them, and `expected.json` what that commit's own API
read back from them.

Only the interfaces users have are used (a restructure may move everything else): the
`maximus-train` CLI, `training.model_registry`, `training.dataset_builder`,
`training.train_layer1_vae` and `training.evaluator`. The fixtures are copied to a temporary
folder first, so nothing may depend on where they were written.

Scores are compared to 1e-6 relative, everything else (units, times, event ids, alerts,
metrics, file contents) exactly. On the machine that made the fixtures the scores are the same
bits; a CPU that takes other kernels differs in the last float32 bits: with torch, MKL and oneDNN
held to AVX2 or to their baseline (ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS,
ONEDNN_MAX_CPU_ISA) up to 3.3e-7 relative (about 3 ulps). Any real change (features, weights,
threshold) moves them by orders of magnitude more, and `make_fixtures.py` refuses fixtures with
a score within 1e-5 of its threshold or of another test score, so alerts and ranking metrics
cannot flip at this tolerance.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

import training
from training.dataset_builder import load_splits
from training.evaluator import ModelEvaluator
from training.model_registry import ModelMetadata, ModelRegistry
from training.train_layer1_vae import Layer1VAE

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "v0_1"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
MODELS = ("layer1_vae", "layer2_gnn", "layer3_tcn")
CHECKPOINT = "quickstart/checkpoints/layer1_vae_best.pt"
# The CLI runs the package this test imported (a checkout, or the worktree of an old commit).
ENV = {"PYTHONPATH": str(Path(training.__file__).resolve().parents[1])}
RTOL = 1e-6  # see the module docstring
METRICS = ("roc_auc", "pr_auc", "threshold", "accuracy", "precision", "recall", "f1_score",
           "confusion_matrix", "n_samples", "n_unknown_excluded")


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of fixtures/v0_1 in a temporary folder."""
    root = tmp_path_factory.mktemp("v0_1")
    shutil.copytree(FIXTURES, root, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("make_fixtures.py", "__pycache__"))
    return root


@pytest.fixture(scope="module")
def scoring(fixtures: Path) -> Iterator[dict[str, subprocess.Popen]]:
    """`maximus-train score` of the input by each production model, all three started at
    once (each is mostly interpreter and torch start-up); the tests wait for them."""
    runs = {}
    for name in MODELS:
        command = [sys.executable, "-m", "training.cli", "score", "--registry-dir",
                   "workdir/models", "--model", name, "--input", "json:input/events.json",
                   "--output", f"out/{name}.parquet"]
        runs[name] = subprocess.Popen(command, cwd=fixtures, env={**os.environ, **ENV},
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield runs
    for run in runs.values():
        if run.poll() is None:
            run.kill()
        run.communicate()


def _scores(model: torch.nn.Module, features: np.ndarray) -> np.ndarray:
    """`anomaly_score` of every row in one call on one thread, as the recorded scores were
    (and as `maximus-train score` scores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model.eval()
        with torch.inference_mode():
            return model.anomaly_score(torch.from_numpy(features)).numpy()
    finally:
        torch.set_num_threads(before)


def _metrics(evaluator: ModelEvaluator) -> dict[str, Any]:
    found = evaluator.evaluate(benchmark_latency=False).to_dict()
    return {k: found[k] for k in METRICS}


def _same_fields(found: dict[str, Any], recorded: dict[str, Any]) -> dict[str, Any]:
    """`found` limited to the recorded fields (fields added since 0.1.0 are not compared)."""
    return {k: found.get(k, "<missing>") for k in recorded}


# -- the registry of a pipeline working directory ------------------------------------------


def test_registry_lists_the_same_versions_stages_aliases_and_history(fixtures, scoring):
    # `scoring` is requested here, the first test, so the CLI runs overlap the checks below.
    registry = ModelRegistry(fixtures / "workdir" / "models")
    recorded = EXPECTED["registry"]
    found = [m.to_dict() for m in registry.list_models()]
    assert [(m["model_name"], m["version"], m["stage"], m["aliases"]) for m in found] == [
        ("layer1_vae", "1.0.0", "archived", []),
        ("layer1_vae", "1.1.0", "production", ["champion"]),
        ("layer2_gnn", "1.0.0", "archived", []),
        ("layer2_gnn", "1.1.0", "production", ["champion"]),
        ("layer3_tcn", "1.0.0", "production", ["champion"]),
        ("layer3_tcn", "1.1.0", "none", ["challenger"]),
    ]
    assert [_same_fields(f, r) for f, r in zip(found, recorded["versions"], strict=True)
            ] == recorded["versions"]
    assert {name: registry.aliases(name) for name in MODELS} == recorded["aliases"]
    history = [asdict(t) for t in registry.history()]
    assert len(history) == len(recorded["history"]) == 21
    assert [_same_fields(h, r) for h, r in zip(history, recorded["history"], strict=True)
            ] == recorded["history"]


def test_production_models_load_verified_with_their_threshold_and_feature_spec(fixtures):
    registry = ModelRegistry(fixtures / "workdir" / "models")
    for name in MODELS:
        loaded = registry.get_model(name, stage="production")
        assert {"version": loaded.metadata.version, "model_class": type(loaded.model).__name__,
                "threshold": loaded.threshold,
                "feature_fingerprint": loaded.feature_spec.fingerprint,
                } == EXPECTED["registry"]["production"][name]


def test_an_old_registry_takes_new_changes(fixtures, tmp_path):
    """Rollback uses the version each promotion replaced, a column 0.1.0 filled in."""
    models = shutil.copytree(fixtures / "workdir" / "models", tmp_path / "models")
    registry = ModelRegistry(models)
    assert registry.rollback("layer1_vae", reason="compat test") == "1.0.0"
    assert [(m.version, m.stage, m.aliases) for m in registry.list_models("layer1_vae")] == [
        ("1.0.0", "production", ["champion"]), ("1.1.0", "archived", [])]
    assert registry.get_model("layer1_vae", stage="production").metadata.version == "1.0.0"


@pytest.mark.parametrize("name", MODELS)
def test_scoring_with_each_production_model_gives_the_recorded_scores_and_alerts(
        fixtures, scoring, name):
    out, err = scoring[name].communicate(timeout=120)
    assert scoring[name].returncode == 0, err
    recorded = EXPECTED["scores"][name]
    assert f"with {name} {recorded['version']} " in out
    assert f"alerts: {recorded['alerts']} " in out
    found = pq.read_table(fixtures / "out" / f"{name}.parquet")
    expected = pq.read_table(fixtures / "scores" / f"{name}.parquet")
    # The recorded columns, unchanged; the context, percentile and reasons columns come after.
    assert found.schema.names[:len(expected.schema)] == expected.schema.names
    assert found.select(expected.schema.names).schema == expected.schema
    assert found.column("unit").to_pylist() == expected.column("unit").to_pylist()
    np.testing.assert_allclose(found.column("score").to_numpy(),
                               expected.column("score").to_numpy(), rtol=RTOL, atol=0)
    for column in ("time", "is_alert", "event_ids"):
        assert found.column(column).to_pylist() == expected.column(column).to_pylist(), column
    assert (found.num_rows, sum(found.column("is_alert").to_pylist())) == (
        recorded["rows"], recorded["alerts"])


# -- split files and a checkpoint from the README quick start ------------------------------


@pytest.mark.parametrize("prefix", ["layer1", "timed"])
def test_split_files_load_with_their_rows_columns_and_feature_spec(fixtures, prefix):
    splits = load_splits(fixtures / "quickstart" / "data" / "splits", prefix)
    assert sorted(splits) == ["test", "train", "val"]
    for name, split in splits.items():
        recorded = EXPECTED["splits"][prefix][name]
        found = {
            "rows": len(split), "feature_shape": list(split.features.shape),
            "features_sha256": hashlib.sha256(
                np.ascontiguousarray(split.features, dtype=np.float32).tobytes()).hexdigest(),
            "labels": split.labels.tolist(), "sample_ids": split.sample_ids.tolist(),
            "indices": split.indices.tolist(), "columns": sorted(split.columns),
            "spec_fingerprint": None if split.spec is None else split.spec.fingerprint,
            "spec_layer": None if split.spec is None else split.spec.layer,
            "layer": split.layer, "split_set": split.split_set,
        }
        assert found == recorded, f"{prefix}_{name}"
    # README step 3 builds the dataset from features, labels and ids alone: no FeatureSpec
    assert (splits["test"].spec is None) == (prefix == "layer1")


def test_checkpoint_loads_into_Layer1VAE_as_the_quick_start_step5_does(fixtures):
    test = load_splits(fixtures / "quickstart" / "data" / "splits", "layer1")["test"]
    model = Layer1VAE()
    model.load_state_dict(torch.load(fixtures / CHECKPOINT, weights_only=True))
    recorded = EXPECTED["checkpoint"]
    np.testing.assert_allclose(_scores(model, test.features),
                               np.array(recorded["test_scores"], dtype=np.float32), rtol=RTOL,
                               atol=0)
    evaluator = ModelEvaluator(model=model, test_features=test.features, test_labels=test.labels)
    assert _metrics(evaluator) == recorded["bare"]


def test_checkpoint_with_its_sidecar_registers_and_scores_at_its_threshold(fixtures, tmp_path):
    test = load_splits(fixtures / "quickstart" / "data" / "splits", "layer1")["test"]
    registry = ModelRegistry(tmp_path / "models")
    registry.register_model(fixtures / CHECKPOINT, ModelMetadata("layer1_vae", "0.1.0", "layer1"))
    loaded = registry.get_model("layer1_vae", "0.1.0")
    recorded = EXPECTED["checkpoint"]
    assert isinstance(loaded.model, Layer1VAE)
    assert loaded.sidecar["init_args"] == recorded["init_args"]
    assert loaded.sidecar["feature_spec"] == recorded["feature_spec"]
    assert loaded.threshold == recorded["threshold"]
    np.testing.assert_allclose(_scores(loaded.model, test.features),
                               np.array(recorded["test_scores"], dtype=np.float32), rtol=RTOL,
                               atol=0)
    evaluator = ModelEvaluator(loaded.model, test.features, test.labels,
                               threshold=loaded.threshold)
    assert _metrics(evaluator) == recorded["with_sidecar"]
