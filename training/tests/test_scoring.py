"""Scoring with a registered model: exact scores and alerts, outputs, refusals, real Zeek logs."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from training.artifacts.model_files import save_model
from training.cli.main import main
from training.collection.collector import DataCollector, DataSource
from training.errors import CheckpointError, SchemaError
from training.features.encoding import FeatureSpec
from training.features.layer1 import Layer1Featurizer
from training.registry.registry import ModelMetadata, ModelRegistry
from training.scoring.batch import score_events
from training.tests.registry_fixtures import TinyDetector, save_tiny

EVENTS = [
    {"event_id": f"e{i}", "timestamp": f"2026-11-20T10:00:0{i}Z", "event_type": "conn",
     "source_ip": f"10.0.0.{i}", "dest_ip": "8.8.8.8", "dest_port": port, "protocol": "tcp",
     "bytes_sent": size, "label": "benign"}
    for i, (port, size) in enumerate([(443, 900), (443, 1200), (22, 10**7), (53, 60), (3389, 5)])
]


@pytest.fixture
def events_file(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in EVENTS))
    return path


def _expected(path, centre: float) -> tuple[list[str], np.ndarray]:
    table = DataCollector([DataSource("t", "json_file", {"path": str(path)})],
                          progress=False).collect_table()
    features = Layer1Featurizer().featurize(table).astype(np.float64)
    return table["event_id"].to_pylist(), ((features - centre) ** 2).sum(axis=1)


def _register(tmp_path, threshold: float, **save) -> ModelRegistry:
    registry = ModelRegistry(tmp_path / "models")
    weights = save_tiny(tmp_path / "src" / "tiny.pt", centre=0.25, dim=128, threshold=threshold,
                        **save)
    registry.register_model(weights, ModelMetadata("tiny", "1.0.0", "layer1", stage="production"))
    return registry


def test_scores_alerts_and_event_ids_are_exact(tmp_path, events_file):
    ids, expected = _expected(events_file, 0.25)
    threshold = float(np.sort(expected)[-2])  # exactly two alerts
    registry = _register(tmp_path, threshold)
    source = [DataSource("t", "json_file", {"path": str(events_file)})]
    summary = score_events(registry, "tiny", source, tmp_path / "out.parquet", top_k=1)

    out = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [r["unit"] for r in out] == ids and [r["event_ids"] for r in out] == [[i] for i in ids]
    np.testing.assert_allclose([r["score"] for r in out], expected, rtol=1e-5)
    assert [r["is_alert"] for r in out] == list(expected >= threshold)
    assert [r["time"].second for r in out] == [0, 1, 2, 3, 4]
    assert (summary.events, summary.units, summary.alerts) == (5, 5, 2)
    assert (summary.version, summary.layer, summary.threshold) == ("1.0.0", "layer1", threshold)
    best = int(np.argmax(expected))
    assert [a["unit"] for a in summary.top_alerts] == [ids[best]]

    jsonl = score_events(registry, "tiny", source, tmp_path / "out.jsonl", top_k=5)
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(r["unit"], r["is_alert"], r["event_ids"]) for r in lines] == \
        [(r["unit"], r["is_alert"], r["event_ids"]) for r in out]
    np.testing.assert_allclose([a["score"] for a in jsonl.top_alerts],
                               sorted(expected[expected >= threshold], reverse=True), rtol=1e-5)


def test_a_run_replaces_the_whole_set_beside_its_output(tmp_path, events_file):
    """The scores and the files beside them are one set: a run that quarantines nothing
    removes an earlier run's quarantine file, which would otherwise pass for its own."""
    registry = _register(tmp_path, threshold=1.0)
    out = tmp_path / "out" / "s.parquet"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(events_file.read_text() + '{"event_id": "cut\n')
    first = score_events(registry, "tiny", [DataSource("t", "json_file", {"path": str(bad)})],
                         out)
    assert (first.quarantined, first.quarantine) == (1, str(out.parent / "s.quarantine.jsonl"))
    assert json.loads((out.parent / "s.quarantine.jsonl").read_text())["line"] == 6

    second = score_events(registry, "tiny", [DataSource("t", "json_file",
                                                        {"path": str(events_file)})], out)
    assert (second.quarantined, second.quarantine) == (0, None)
    assert second.incidents_output == str(out.parent / "s.incidents.parquet")
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "s.alerts.html", "s.alerts.json", "s.incidents.parquet", "s.parquet"]


def test_refuses_models_whose_transform_cannot_be_reproduced(tmp_path, events_file):
    source = [DataSource("t", "json_file", {"path": str(events_file)})]
    registry = ModelRegistry(tmp_path / "models")
    for version, spec, threshold in (
            ("1.0.0", None, 1.0),
            ("2.0.0", FeatureSpec("layer1", "l1.v0", {"dim": 128}), 1.0),
            ("3.0.0", Layer1Featurizer().spec, None)):
        path = tmp_path / version / "tiny.pt"
        save_model(TinyDetector(dim=128), path, feature_spec=spec, threshold=threshold)
        registry.register_model(path, ModelMetadata("tiny", version, "layer1"))
    with pytest.raises(SchemaError, match="has no FeatureSpec"):
        score_events(registry, "tiny", source, tmp_path / "a.parquet", version="1.0.0")
    with pytest.raises(SchemaError, match="cannot drive the layer-1 featurizer"):
        score_events(registry, "tiny", source, tmp_path / "b.parquet", version="2.0.0")
    with pytest.raises(CheckpointError, match="no anomaly threshold"):
        score_events(registry, "tiny", source, tmp_path / "c.parquet", version="3.0.0")
    assert not list(tmp_path.glob("*.parquet"))  # nothing half-written


def test_real_zeek_log_every_event_scored_once(tmp_path, datasets):
    log = datasets / "stratosphere/008-zeek-mixed/data/conn.log.labeled"
    source = [DataSource("zeek", "zeek_logs", {"path": str(log)})]
    table = DataCollector(source, progress=False).collect_table()
    registry = _register(tmp_path, threshold=30.0)
    summary = score_events(registry, "tiny", source, tmp_path / "zeek.parquet")
    out = pq.read_table(tmp_path / "zeek.parquet")
    assert summary.events == summary.units == out.num_rows == table.num_rows == 5663
    assert out["unit"].to_pylist() == table["event_id"].to_pylist()
    features = Layer1Featurizer().featurize(table).astype(np.float64)
    np.testing.assert_allclose(out["score"].to_numpy(), ((features - 0.25) ** 2).sum(1), rtol=1e-5)
    assert summary.alerts == int((out["score"].to_numpy() >= 30.0).sum())


def test_score_command(tmp_path, events_file, capsys):
    _, expected = _expected(events_file, 0.25)
    _register(tmp_path, float(np.sort(expected)[-2]))
    code = main(["score", "--model", "tiny", "--alias", "champion", "--input",
                 f"json:{events_file}", "--output", str(tmp_path / "s.jsonl"), "--top", "1",
                 "--registry_dir", str(tmp_path / "models")])
    printed = capsys.readouterr().out.splitlines()
    assert code == 0
    assert printed[0].startswith("scored 5 events (5 layer1 units) with tiny 1.0.0 in ")
    assert printed[1].startswith("alerts: 2 (score >= ")
    assert printed[2].startswith(f"   1. {expected.max():.6g}  e")
    assert len((tmp_path / "s.jsonl").read_text().splitlines()) == 5
    assert main(["score", "--model", "nope", "--input", f"json:{events_file}", "--output",
                 str(tmp_path / "t.jsonl"), "--registry-dir", str(tmp_path / "models")]) == 1
    assert "no model named 'nope'; known: tiny" in capsys.readouterr().err


@pytest.mark.parametrize("layer", ["layer2", "layer3"])
def test_layers_2_and_3_score_every_edge_and_window_with_its_events(tmp_path, datasets, layer):
    import torch

    from training.detectors.gnn import Layer2GNN
    from training.detectors.tcn import Layer3TCN
    from training.features.layer2 import Layer2GraphBuilder
    from training.features.layer3 import Layer3WindowBuilder
    from training.layers.layer2_batches import Layer2Data, fit_layer2_scaling
    from training.layers.layer3_batches import Layer3Data, fit_layer3_scaling

    log = datasets / "stratosphere/008-zeek-mixed/data/conn.log.labeled"
    source = [DataSource("zeek", "zeek_logs", {"path": str(log)})]
    table = DataCollector(source, progress=False).collect_table()
    torch.manual_seed(0)
    if layer == "layer2":
        built = Layer2GraphBuilder().featurize(table)
        spec = fit_layer2_scaling(built)
        data = Layer2Data(built, spec)
        model = Layer2GNN(node_dim=data.node_dim, edge_dim=data.edge_dim).eval()
        expected = data.edge_scores(model)
        pointers, ids = built.arrays["event_ptr"], built.event_id.to_pylist()
    else:
        built = Layer3WindowBuilder().featurize(table)
        spec = fit_layer3_scaling(built, benign_only=False)
        data = Layer3Data(built, spec)
        model = Layer3TCN(input_dim=data.input_dim).eval()
        expected = data.scores(model)
        pointers, ids = built.event_ptr, built.event_id.to_pylist()
    threshold = float(np.quantile(expected, 0.9))
    save_model(model, tmp_path / "m.pt", feature_spec=spec, threshold=threshold)
    registry = ModelRegistry(tmp_path / "models")
    registry.register_model(tmp_path / "m.pt", ModelMetadata("m", "1.0.0", layer, stage="production"))

    summary = score_events(registry, "m", source, tmp_path / "out.parquet")
    out = pq.read_table(tmp_path / "out.parquet")
    assert summary.layer == layer and summary.events == table.num_rows
    assert summary.units == out.num_rows == len(expected) > 0
    np.testing.assert_allclose(out["score"].to_numpy(), expected, rtol=1e-4, atol=1e-6)
    assert out["is_alert"].to_pylist() == list(out["score"].to_numpy() >= threshold)
    assert out["event_ids"].to_pylist() == [ids[a:b] for a, b in zip(pointers[:-1], pointers[1:])]
    separator = "->" if layer == "layer2" else "@"
    assert all(separator in unit for unit in out["unit"].to_pylist()[:50])
