"""The detection harness (training/evaluation/harness): a smoke run on one real capture with one
seed, whose isolation-forest figure must equal scikit-learn's on the same units, and its parts
on small hand-made inputs (flows from units, port rarity, direction-blind events, the NSL-KDD
split, a default that is a baseline, the tables)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sklearn.ensemble import IsolationForest

from training.evaluation.harness import (
    BASELINES, Capture, HarnessConfig, Method, layer_units, load_capture, run_harness, run_layer,
)
from training.evaluation.harness.blind import direction_blind
from training.evaluation.harness.captures import nsl_kdd_split
from training.evaluation.harness.fused import flow_tails
from training.evaluation.harness.methods import port_rarity
from training.evaluation.harness.run import measure_layer
from training.evaluation.harness.units import LayerUnits
from training.evaluation.harness.tables import BEGIN, END, markdown, write_section
from training.evaluation.metrics import pr_auc, roc_auc
from training.tests import synthetic_traffic as traffic

DATASETS = Path("../shared/datasets")
needs_data = pytest.mark.skipif(not (DATASETS / "iot23").is_dir(),
                                reason=f"the real captures are not at {DATASETS}")


# -- the smoke run ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def smoke():
    """The whole harness on IoT-23 capture 44-1, one seed, short training (it checks the
    plumbing, not the detectors: the figures of record come from the full run)."""
    config = HarnessConfig(captures=["iot23-44"], seeds=[0], epochs=2, bootstrap=50,
                           datasets=DATASETS)
    return run_harness(config)


@needs_data
def test_smoke_run_measures_every_layer_and_method(smoke):
    layers = smoke["captures"]["iot23-44"]["layers"]
    assert sorted(layers) == ["layer1", "layer2", "layer3"]
    for report in layers.values():
        assert list(report["methods"]) == ["IF", "AE", "port rarity", "default", "ECOD", "kNN",
                                           "IF candidate"]
        for level in ("unit", "flow"):
            figures = report["levels"][level]
            assert figures["positive"] > 0 and set(figures["methods"]) == set(report["methods"])
            assert "delta" in figures["methods"]["default"]
        assert report["units"]["covered_flows"] <= report["units"]["flows"]


@needs_data
def test_smoke_isolation_forest_figure_equals_scikit_learn_directly(smoke):
    units = layer_units(load_capture("iot23-44", DATASETS), "layer1")
    train = np.asarray(units.train.features, np.float32)
    # The detector fits on its training rows in lexicographic order (batch order is noise).
    forest = IsolationForest(n_estimators=200, random_state=0).fit(
        train[np.lexsort(train.T[::-1])])
    scores = -forest.score_samples(np.asarray(units.test.features, np.float32))
    labels = np.asarray(units.test.labels)
    known = labels >= 0
    figures = smoke["captures"]["iot23-44"]["layers"]["layer1"]["levels"]["unit"]["methods"]["IF"]
    assert figures["roc_auc"]["per_seed"] == [pytest.approx(
        roc_auc(scores[known], labels[known] == 1), abs=1e-12)]
    assert figures["pr_auc"]["per_seed"] == [pytest.approx(
        pr_auc(scores[known], labels[known] == 1), abs=1e-12)]


@needs_data
def test_smoke_candidate_forest_is_reported_as_the_baseline(smoke):
    report = smoke["captures"]["iot23-44"]["layers"]["layer2"]
    assert report["methods"]["IF candidate"]["same_as"] == "IF"
    assert "delta" not in report["levels"]["unit"]["methods"]["IF candidate"]
    text = markdown(smoke)
    assert "| iot23-44 | IF candidate | " in text and "same method as IF" in text
    assert "| iot23-44 | development | layer2 | default (Layer2GNN) |" in text


@needs_data
def test_smoke_fused_score_is_measured_per_flow_beside_every_layer(smoke):
    layers = smoke["captures"]["iot23-44"]["layers"]
    fused = smoke["captures"]["iot23-44"]["fused"]["flow"]
    names = {f"{layer} default" for layer in layers} | {"fused (fisher)", "fused (min-p)",
                                                               "fused (min-p+fisher)"}
    assert names <= set(fused["methods"])
    for layer, report in layers.items():  # each layer's default: its own flow-level figures
        own = report["levels"]["flow"]["methods"]["default"]["roc_auc"]["per_seed"]
        assert fused["methods"][f"{layer} default"]["roc_auc"]["per_seed"] == own
    baselines = {f"{layer} {b}" for layer in layers for b in ("IF", "AE", "port rarity")}
    assert set(fused["best_baseline"].values()) <= baselines
    assert "delta" in fused["methods"]["fused (fisher)"]
    text = markdown(smoke)
    assert "fused score per flow" in text and "| iot23-44 | fused (fisher) | " in text
    assert "| iot23-44 | development | all | fused (fisher) |" in text


def test_a_flow_takes_the_smallest_tail_probability_of_its_units_per_layer():
    units = LayerUnits(None, None, None, None, None, np.zeros(2), np.array([0, 1, 1]),
                       np.array([0, 0, 1]), np.zeros(3))
    np.testing.assert_array_equal(flow_tails(units, np.array([[0.5, 0.2], [0.1, 0.9]])),
                                  [[0.2, 0.2, np.nan], [0.1, 0.9, np.nan]])


@needs_data
def test_nsl_kdd_difficulty_is_never_a_feature():
    capture = load_capture("nsl-kdd", DATASETS)
    assert all("difficulty" not in t.column_names for t in (capture.train, capture.val,
                                                            capture.test))
    hard = capture.subsets["difficulty<21"]
    assert hard.shape == (capture.test.num_rows,) and 0 < hard.sum() < len(hard)
    labels = capture.test["is_threat"].to_numpy()
    assert (capture.train["is_threat"].to_numpy() == 0).all() and (labels == 1).sum() == 11_743
    assert capture.train.num_rows + capture.val.num_rows == 13_449 // 2


# -- the parts ----------------------------------------------------------------------------------

def test_nsl_kdd_split_is_fixed_and_keeps_every_attack_for_testing():
    labels = np.array([0] * 10 + [1] * 4)
    train, val, test = nsl_kdd_split(labels)
    assert len(train) + len(val) == 5 and len(val) == 1
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(14))
    assert set(range(10, 14)) <= set(test.tolist())
    assert [a.tolist() for a in nsl_kdd_split(labels)] == [train.tolist(), val.tolist(),
                                                           test.tolist()]


def _flows(rows: list[dict]) -> pa.Table:
    return traffic.table(rows)


def test_direction_blind_hides_which_end_is_local():
    rows = [{"timestamp": traffic.T0, "source_ip": "192.168.1.5", "dest_ip": "8.8.8.8",
             "dest_port": 53, "protocol": "udp", "bytes_sent": 10, "bytes_received": 90,
             "direction": "outbound", "is_threat": 0},
            {"timestamp": traffic.T0, "source_ip": "8.8.8.8", "dest_ip": "192.168.1.5",
             "dest_port": 53, "protocol": "udp", "bytes_sent": 90, "bytes_received": 10,
             "direction": "inbound", "is_threat": 0}]
    table = _flows(rows).append_column("local_orig", pa.array([True, False]))
    blind = direction_blind(table)
    assert "local_orig" not in blind.column_names and blind["direction"].null_count == 2
    assert table["direction"].null_count == 0  # the input is unchanged
    out = blind.to_pylist()
    # The two flows between the same hosts come out oriented alike, bytes moving with their end.
    assert out[0]["source_ip"] == out[1]["source_ip"] and out[0]["dest_ip"] == out[1]["dest_ip"]
    assert (out[0]["bytes_sent"], out[0]["bytes_received"]) == (out[1]["bytes_sent"],
                                                                 out[1]["bytes_received"])
    assert all(ip.startswith("10.") for r in out for ip in (r["source_ip"], r["dest_ip"]))
    assert all(r["dest_port"] == 53 for r in out)


def _toy_capture() -> Capture:
    train = _flows(traffic.office_rows(1, hosts=6, minutes=60))
    val = _flows(traffic.office_rows(4, hosts=6, minutes=20))
    test = _flows(traffic.office_rows(2, hosts=6, minutes=60)
                  + traffic.exfiltration_rows(3, infected=2, minute=10, count=5))
    return Capture("toy", "development", "synthetic office", train, val, test)


def test_flows_take_the_largest_score_of_their_units():
    units = layer_units(_toy_capture(), "layer2")
    scores = np.arange(units.n_units, dtype=np.float64)
    flows = units.flow_scores(scores)
    for flow in range(len(flows)):
        mine = units.pair_unit[units.pair_flow == flow]
        assert flows[flow] == (scores[mine].max() if len(mine) else -np.inf)
    assert units.flow_scores(np.stack([scores, -scores])).shape == (2, len(flows))


def test_port_rarity_is_the_smoothed_log_frequency_of_the_port():
    units = layer_units(_toy_capture(), "layer1")
    fit = [*units.capture.train.to_pylist(), *units.capture.val.to_pylist()]
    test = units.capture.test.to_pylist()
    scores = port_rarity(units)
    for i in (0, len(test) - 1):
        key = (test[i]["protocol"], test[i]["dest_port"])
        count = sum((r["protocol"], r["dest_port"]) == key for r in fit)
        assert scores[i] == pytest.approx(-np.log((count + 1) / (len(fit) + 1)))


def test_a_default_that_is_a_baseline_is_reported_as_that_baseline():
    units = layer_units(_toy_capture(), "layer1")
    baseline = BASELINES[0]  # IF, 200 trees
    runs = run_layer(units, [baseline, Method("default", "iforest", {"n_estimators": 200})],
                     seeds=[0], epochs=1)
    assert runs["default"]["same_as"] == "IF"
    assert runs["default"]["scores"] is runs["IF"]["scores"]  # not trained twice
    results = {"seeds": [0], "epochs": 1, "bootstrap": 20, "seconds": 1.0, "cpu_seconds": 1.0,
               "load_before": [0.0], "load_after": [0.0], "captures": {"toy": {
                   "role": "development", "layers": {"layer1": {
                       "methods": runs, "levels": measure_layer(units, runs, 20)}}}}}
    text = markdown(results)
    assert ("| toy | development | layer1 | default (IsolationForestDetector) | same method as "
            "IF |") in text


def test_tables_go_between_the_markers(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nkept\n")
    write_section(path, "first")
    assert path.read_text() == f"# Benchmarks\n\nkept\n\n{BEGIN}\nfirst\n{END}\n"
    path.write_text(path.read_text() + "\n## After\n")
    write_section(path, "second")
    assert path.read_text() == f"# Benchmarks\n\nkept\n\n{BEGIN}\nsecond\n{END}\n\n## After\n"


@needs_data
def test_a_run_without_the_layer_defaults_measures_the_other_methods():
    """HarnessConfig(methods=...) without "default" stopped with KeyError: 'default' (trial W):
    there is then no layer default to fuse, and the rest is measured."""
    config = HarnessConfig(captures=["iot23-44"], layers=["layer1"], seeds=[0], epochs=1,
                           bootstrap=20, datasets=DATASETS, methods=BASELINES)
    report = run_harness(config)["captures"]["iot23-44"]["layers"]["layer1"]
    assert list(report["methods"]) == ["IF", "AE", "port rarity"]
