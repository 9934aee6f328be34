"""The fused score: the combination rules on hand-made p-values, events mapped to their units,
the fused detector a pipeline run registers, and `score --model fused` with it."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from training.cli.main import main
from training.errors import CheckpointError, ConfigError, NotFoundError, SchemaError
from training.evaluation.calibration import Calibration
from training.evaluation.fusion import Fusion, event_tail_probabilities, event_tail_units, fused_scores
from training.registry.registry import ModelRegistry
from training.scoring.alerts import OUTPUT_SCHEMA
from training.pipeline.fusion import fusion_summary
from training.scoring.fused import load_fusion, save_fusion, score_fused
from training.scoring.incidents import build_incidents
from training.scoring.tables import read_alerts, read_incidents

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "v0_1"
NAN = float("nan")


def test_fisher_adds_evidence_across_layers():
    scores = fused_scores(np.array([[0.05, 0.05], [0.01, NAN], [NAN, NAN], [1.0, 1.0]]),
                          "fisher")
    # chi2 with 4 degrees of freedom at x = -4 ln 0.05: exp(-x/2) (1 + x/2)
    x = -4 * math.log(0.05)
    assert scores[0] == pytest.approx(-math.log10(math.exp(-x / 2) * (1 + x / 2)), rel=1e-12)
    assert scores[1] == pytest.approx(2.0, rel=1e-12)  # one layer: its own p-value
    assert scores[2] == 0.0 and scores[3] == pytest.approx(0.0, abs=1e-12)
    assert scores[0] > -math.log10(0.05)  # two weak signals beat one of them


def test_min_p_takes_the_smallest_with_a_bonferroni_factor():
    scores = fused_scores(np.array([[0.01, 0.5, NAN], [0.6, 0.7, 0.9], [NAN, NAN, NAN]]),
                          "min-p")
    np.testing.assert_allclose(scores, [-math.log10(0.02), 0.0, 0.0], atol=1e-12)


def test_the_default_rule_breaks_min_p_ties_by_fisher_and_nothing_else():
    """Three flows of one window share its p (1e-4); their own layer-1 p tells them apart. A
    min-p 1e-3 decades apart is not reordered, whatever Fisher says."""
    p = np.array([[0.9, 1e-4], [0.02, 1e-4], [0.3, 1e-4], [0.9, 0.9977e-4]])
    min_p, default = fused_scores(p, "min-p"), fused_scores(p)
    assert min_p[0] == min_p[1] == min_p[2]
    assert default[1] > default[2] > default[0]  # the tie, ordered by the other layer
    assert (default - min_p < 1e-4).all() and (default >= min_p).all()
    assert default[3] > default[1]  # a stronger min-p stays ahead
    assert len(set(default[:3].astype(np.float32).tolist())) == 3  # resolved in float32 too


def test_fisher_keeps_the_order_of_p_values_too_small_for_a_float_survival():
    scores = fused_scores(np.array([[1e-200, 1e-200], [1e-150, 1e-150]]), "fisher")
    assert np.isfinite(scores).all() and scores[0] > scores[1] > 290


def test_an_unknown_rule_is_refused_with_the_choices():
    with pytest.raises(ConfigError,
                       match="fusion rule must be one of min-p\\+fisher, min-p, fisher, got 'max'"):
        fused_scores(np.ones((1, 1)), "max")


def test_each_event_takes_the_smallest_tail_probability_of_its_units():
    units = pa.array([["a", "b"], ["b"], ["z"], []], pa.list_(pa.string()))
    p = event_tail_probabilities(["a", "b", "c"], units, np.array([0.5, 0.1, 0.01, 0.2]))
    np.testing.assert_array_equal(p, [0.5, 0.1, NAN])
    with pytest.raises(SchemaError, match="3 tail probabilities for 4 units"):
        event_tail_probabilities(["a"], units, np.ones(3))


def _fusion(models=({"layer": "layer1", "model_name": "layer1_vae", "version": "1.0.0"},)):
    return Fusion("min-p", tuple(models), Calibration.fit(np.arange(100.0), rule="quantile:0.9"))


def test_a_fusion_file_reads_back_and_refuses_other_formats(tmp_path):
    fusion = _fusion()
    assert load_fusion(save_fusion(fusion, tmp_path).parent) == fusion
    (tmp_path / "fusion.json").write_text(json.dumps({**fusion.to_dict(), "format": "x"}))
    with pytest.raises(SchemaError, match="format 'x', expected 'maximus.fusion.v1'"):
        load_fusion(tmp_path)
    with pytest.raises(NotFoundError, match="no fused detector in"):
        load_fusion(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="at least one layer model"):
        _fusion(models=())



def test_a_missing_fusion_says_why_its_pipeline_run_skipped_it(tmp_path):
    (tmp_path / "models").mkdir()
    why = "no event is in a validation part and in no training or test part"
    (tmp_path / "pipeline.json").write_text(json.dumps({"fusion": {"skipped": why}}))
    with pytest.raises(NotFoundError, match=f"registers one; the last run in {tmp_path} "
                                            f"skipped it: {why}"):
        load_fusion(tmp_path / "models")


def test_models_of_the_previous_layout_still_score_but_cannot_be_fused(tmp_path):
    """v0.1 models carry no calibration: each still scores alone (test_compat_v0_1), and a
    fusion naming one is refused with what to do."""
    shutil.copytree(FIXTURES / "workdir" / "models", tmp_path / "models")
    registry = ModelRegistry(tmp_path / "models", create=False)
    version = registry.get_metadata("layer1_vae", stage="production").version
    save_fusion(_fusion([{"layer": "layer1", "model_name": "layer1_vae", "version": version}]),
                tmp_path / "models")
    events = pa.table({"event_id": ["e1"]})
    with pytest.raises(CheckpointError, match=f"layer1_vae {version} has no calibration.*"
                                              "retrain it"):
        score_fused(registry, events, tmp_path / "out.parquet")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """A pipeline run on 1,500 demo events, every layer one epoch."""
    from training.demo.generator import write_demo_file
    from training.pipeline.config import config_from_dict
    from training.pipeline.run import run_pipeline

    folder = tmp_path_factory.mktemp("fused")
    demo = write_demo_file(folder / "demo.json", n_events=1_500, seed=3)
    config = config_from_dict({"workdir": str(folder / "run"),
                               "sources": [{"type": "json_file", "path": str(demo)}],
                               "train": {"epochs": 1}})
    return folder, demo, run_pipeline(config)


def test_the_pipeline_calibrates_evaluates_and_registers_the_fused_detector(demo_run):
    folder, _, result = demo_run
    fusion = result.fusion
    assert [m["layer"] for m in fusion["models"]] == ["layer1", "layer2", "layer3"]
    assert [m["version"] for m in fusion["models"]] == ["1.0.0"] * 3
    assert fusion["rule"] == "min-p+fisher" and fusion["validation_events"] > 0
    n = fusion["validation_events"]  # the layers' rule; too few scores for it, said so
    assert fusion["threshold_rule"] == (
        "unlabeled: threshold at the 99.9th percentile of validation events' fused scores - "
        f"{n:,} of them cannot support that percentile, so the threshold is at or just above "
        f"the largest (expected alert rate {1 / (n + 1):.2%})")
    test = fusion["test"]
    assert set(test) == {"fused", "layer1", "layer2", "layer3"}
    assert all(0.0 <= m["roc_auc"] <= 1.0 for m in test.values())
    assert test["fused"]["n_units"] == fusion["test_events"] == test["layer1"]["n_units"]
    registered = load_fusion(folder / "run" / "models")
    assert registered.threshold == fusion["threshold"]
    assert json.loads((folder / "run" / "pipeline.json").read_text())["fusion"] == fusion
    assert "Fused score (per event)" in Path(result.report).read_text()  # the run's own report
    # At one epoch the gate refuses layer 1 here (below chance on the test part): the fusion
    # still combines every layer it trained, one fixed rule, and says which were refused.
    refused = [f"{o.model_name} {o.version}" for o in result.layers if o.stage != "production"]
    assert refused and fusion["not_in_production"] == refused
    # The alert rate beside the validation events' (a warning sign when far apart).
    rate = fusion["test"]["fused"]["alert_rate"]
    assert f" alerts ({rate:.2%}; {fusion['expected_alert_rate']:.2%} of the validation " \
           "events)" in fusion_summary(fusion)
    assert fusion_summary(fusion).endswith(
        f"; with versions the gate did not promote: {', '.join(refused)}")


def test_fused_validation_events_have_no_test_unit_and_test_events_no_validation_unit(
        tmp_path):
    # Two layers over the same 100 demo events, cut at different times: events that are
    # validation units in one and test units in the other calibrate nothing and test nothing.
    from training.demo.generator import write_demo_file
    from training.layers.layer1 import Layer1
    from training.pipeline.fusion import TrainedLayer, event_parts

    events = _events(write_demo_file(tmp_path / "demo.json", n_events=100, seed=5))
    layer = Layer1()
    units = layer.featurize(events)
    times = np.sort(events["timestamp"].cast(pa.timestamp("us")).to_numpy())
    ids = np.asarray(units.sample_ids, dtype=object)
    when = dict(zip(events["event_id"].to_pylist(),
                    events["timestamp"].cast(pa.timestamp("us")).to_numpy()))
    trained = [TrainedLayer(layer, None, None, name, "1.0.0",
                            layer.split(units, "temporal", (0.5, 0.25, 0.25), 0, at=at), units)
               for name, at in (("a", (times[25], times[75])), ("b", (times[25], times[50])))]
    val, test = event_parts(trained, ids, test_sources=False)
    at = np.array([when[i] for i in ids])
    np.testing.assert_array_equal(val, (at >= times[25]) & (at < times[50]))
    np.testing.assert_array_equal(test, at >= times[75])
    assert val.sum() == 25 and test.sum() == 25
    # With test sources their events are the test events, and every part here is train or val.
    val, test = event_parts(trained, ids, test_sources=True)
    np.testing.assert_array_equal(val, (at >= times[25]) & (at < times[75]))
    assert not test.any()


def test_every_layer_is_cut_at_the_same_times_so_validation_events_are_validation_units(
        demo_run):
    # Each layer's saved parts, as the times of the events in them: no event of a later part
    # in any layer comes before one of an earlier part in any other. Without the shared cut
    # times, 43% of the fused validation events of the 10,000 demo events had a test unit.
    from training.datasets.builder import load_splits
    from training.features.layer2_graphs import Layer2Graphs
    from training.features.layer3_windows import Layer3Windows
    from training.layers.registry import get_layer

    folder, _, result = demo_run
    run = folder / "run"
    events = pq.read_table(run / "events.parquet")
    time_of = dict(zip(events["event_id"].to_pylist(),
                       events["timestamp"].cast(pa.timestamp("us")).to_pylist()))
    splits = run / "splits"
    parts = {"layer1": load_splits(splits, "layer1")}
    for name, kind in (("layer2", Layer2Graphs), ("layer3", Layer3Windows)):
        parts[name] = {p: kind.load(splits / f"{name}_{p}.npz") for p in ("train", "val", "test")}
    spans = {}
    for name, layer_parts in parts.items():
        layer = get_layer(name)()
        for part, units in layer_parts.items():
            ids = layer.unit_columns(units)["event_ids"]
            ids = ids.flatten() if pa.types.is_list(ids.type) else ids
            times = [time_of[i] for i in ids.cast(pa.string()).to_pylist()]
            spans[name, part] = (min(times), max(times))
    for earlier, later in (("train", "val"), ("val", "test")):
        last = max(spans[name, earlier][1] for name in parts)
        first = min(spans[name, later][0] for name in parts)
        assert last < first, (earlier, later, spans)
    # So every event of layer 1's validation part calibrates the fused threshold.
    assert result.fusion["validation_events"] == len(parts["layer1"]["val"])


def test_score_fused_gives_every_event_the_fusion_of_its_layers_tail_probabilities(
        demo_run, capsys):
    from training.scoring.batch import score_events

    folder, demo, _ = demo_run
    models = folder / "run" / "models"
    code = main(["score", "--model", "fused", "--registry-dir", str(models), "--input",
                 f"json:{demo}", "--output", str(folder / "fused.parquet"), "--top", "2"])
    assert code == 0
    printed = capsys.readouterr()
    assert "1,500 events (1,500 fused units) with fused layer1_vae 1.0.0 + layer2_gnn 1.0.0 + " \
           "layer3_tcn 1.0.0" in printed.out
    assert "the fused detector combines layer1_vae 1.0.0, which is in stage none, not " \
           "production: the gate of the pipeline run that trained it did not promote it" \
           in printed.err  # refused at one epoch
    assert main(["score", "--model", "fused", "--stage", "production", "--registry-dir",
                 str(models), "--input", f"json:{demo}", "--output", str(folder / "x.parquet")]
                ) == 2
    assert "the fused detector scores with the versions its fusion.json names" in (
        capsys.readouterr().err)
    out = pq.read_table(folder / "fused.parquet")
    assert out.column_names == [*OUTPUT_SCHEMA.names, "tail_layer1", "tail_layer2",
                                "tail_layer3"]  # the rows of a layer's, then the tails
    assert set(out["layer"].to_pylist()) == {"fused"}
    alerting = out["is_alert"].to_numpy(zero_copy_only=False)  # reasons for alerts only
    assert (out["reasons"].is_null().to_numpy(zero_copy_only=False) == ~alerting).all()
    assert out["source_ip"].null_count < 1_500  # the events' context
    tails = np.column_stack([out[c].to_numpy(zero_copy_only=False) for c in
                             ("tail_layer1", "tail_layer2", "tail_layer3")]).astype(float)
    scores = out["score"].to_numpy()
    np.testing.assert_allclose(scores, fused_scores(tails).astype(np.float32), rtol=1e-6)
    fusion = load_fusion(models)
    np.testing.assert_array_equal(out["is_alert"].to_numpy(zero_copy_only=False),
                                  scores >= np.float32(fusion.threshold))
    # Layer 1's tail probability is the one its own model's scores and calibration give.
    registry = ModelRegistry(models)
    alone = score_events(registry, "layer1_vae", _events(demo), folder / "l1.parquet",
                         version="1.0.0")
    l1 = pq.read_table(folder / "l1.parquet")
    assert alone.units == out.num_rows and l1["unit"].to_pylist() == out["unit"].to_pylist()
    calibration = registry.load_model("layer1_vae", "1.0.0").calibration
    np.testing.assert_allclose(tails[:, 0], calibration.tail_probability(
        l1["score"].to_numpy().astype(np.float64)), rtol=1e-4, atol=1e-6)
    assert np.isnan(tails[:, 2]).any() and not np.isnan(tails[:, 0]).any()  # windows need history
    # Its incidents and alerts page beside it: the incidents of its layers' own units (each
    # event, edge and window once), as each layer's model scores them alone.
    for name in ("layer2_gnn", "layer3_tcn"):
        score_events(registry, name, _events(demo), folder / f"{name}.parquet", version="1.0.0")
    alone = build_incidents([read_alerts(folder / f"{name}.parquet")
                             for name in ("l1", "layer2_gnn", "layer3_tcn")])
    incidents = read_incidents(folder / "fused.incidents.parquet")
    assert incidents.num_rows == alone.num_rows > 0
    assert {x["layer"] for row in incidents["layers"].to_pylist() for x in row} == {
        "layer1", "layer2", "layer3"}
    for column in ("rank", "entity", "window_start", "alerts", "layers", "first_seen",
                   "last_seen"):
        assert incidents[column].to_pylist() == alone[column].to_pylist(), column
    np.testing.assert_allclose(incidents["score"].to_numpy(), alone["score"].to_numpy(),
                               rtol=1e-9)
    assert (folder / "fused.alerts.html").exists()


def _events(path):
    from training.collection.collector import DataCollector, DataSource

    return DataCollector([DataSource("demo", "json_file", {"path": str(path)})],
                         progress=False).collect_table()


def test_with_test_sources_the_fused_detector_is_evaluated_on_their_events(tmp_path):
    from training.demo.generator import write_demo_file
    from training.pipeline.config import config_from_dict
    from training.pipeline.run import run_pipeline

    train = write_demo_file(tmp_path / "train.json", n_events=800, seed=3)
    test = write_demo_file(tmp_path / "test.json", n_events=500, seed=4)
    config = config_from_dict({"workdir": str(tmp_path / "run"), "layers": ["layer1", "layer2"],
                               "sources": [{"type": "json_file", "path": str(train)}],
                               "test_sources": [{"type": "json_file", "path": str(test)}],
                               "train": {"epochs": 1}})
    fusion = run_pipeline(config).fusion
    assert [m["layer"] for m in fusion["models"]] == ["layer1", "layer2"]
    assert fusion["test_events"] == 500 == fusion["test"]["fused"]["n_units"]
    assert fusion["test"]["layer1"]["n_units"] == 500


def test_a_fused_alert_rate_far_above_the_validation_events_is_a_warning(datasets, tmp_path):
    # Trained on demo events, tested on an OTRF Windows recording (Sysmon and Security events
    # of other hosts): nearly every event alerts, and the fused line says so as the layers'
    # promotion does.
    from training.demo.generator import write_demo_file
    from training.pipeline.config import config_from_dict
    from training.pipeline.run import run_pipeline

    train = write_demo_file(tmp_path / "train.json", n_events=800, seed=3)
    recording = datasets / "windows_otrf_security_datasets" / "psh_lsass_memory_dump_comsvcs.zip"
    config = config_from_dict({"workdir": str(tmp_path / "run"), "layers": ["layer1"],
                               "sources": [{"type": "json_file", "path": str(train)}],
                               "test_sources": [{"type": "windows_events",
                                                 "path": str(recording)}],
                               "train": {"epochs": 5}})
    fusion = run_pipeline(config).fusion
    fused = fusion["test"]["fused"]  # the recording's 175 events carry no label
    assert fused["alert_rate"] > 3 * fusion["expected_alert_rate"]
    assert fusion["warning"].startswith(
        f"{fused['alert_rate']:.2%} of the 175 test events not labeled threat alert where the "
        f"validation events promise {fusion['expected_alert_rate']:.2%} (at most "
        f"{3 * fusion['expected_alert_rate']:.2%} tolerated, binomial p ")
    assert fusion_summary(fusion).endswith(f"; warning: {fusion['warning']}")


def test_a_fusion_of_one_layer_on_a_small_capture_ranks_and_alerts_as_the_layer(datasets,
                                                                               tmp_path):
    # IoT-23 44-1: 48 benign validation events, 16 tied at the largest score, too few for the
    # exponential tail. Every test event past them used to tie at the floor p-value (fused
    # ROC-AUC 0.663 beside the layer's 1.000, no fused alert), and the run's alerts file
    # counted 32 alerts where its figures had 1 (a threshold one float64 ulp above a float32
    # score).
    from training.pipeline.config import config_from_dict
    from training.pipeline.run import run_pipeline
    from training.scoring.tables import read_alerts

    path = datasets / "iot23" / "CTU-Malware-Capture-44-1-labeled.csv"
    config = config_from_dict({"workdir": str(tmp_path / "run"), "layers": ["layer1"],
                               "sources": [{"type": "csv", "path": str(path)}],
                               "train": {"epochs": 3}})
    result = run_pipeline(config)
    (layer1,) = result.layers
    fused = result.fusion["test"]["fused"]
    assert fused["roc_auc"] == layer1.metrics["roc_auc"]
    assert fused["n_alerts"] == layer1.metrics["n_alerts"] == result.alerts["alerts"]
    alerts = read_alerts(Path(result.report).parent / result.alerts["alerts_file"])
    assert alerts.num_rows == layer1.metrics["n_alerts"]


def test_a_fused_version_replaced_in_production_is_named_with_its_successor(demo_run, tmp_path,
                                                                            caplog):
    """Promoted, then replaced by a newer version (as retrain does): the warning says so and
    what refreshes the fusion, not that the gate refused it."""
    from training.registry.metadata import ModelMetadata
    from training.scoring.fused import FusedDetector

    folder, _, _ = demo_run
    models = shutil.copytree(folder / "run" / "models", tmp_path / "models")
    registry = ModelRegistry(models)
    registry.transition_stage("layer1_vae", "1.0.0", "production", reason="by hand")
    registry.register_model(folder / "run" / "checkpoints" / "layer1_vae_best.pt",
                            ModelMetadata("layer1_vae", "1.1.0", "layer1"))
    registry.transition_stage("layer1_vae", "1.1.0", "production", reason="retrained")
    caplog.clear()  # the promotions' own warnings (1.0.0: the gate did not deploy it)
    with caplog.at_level("WARNING"):
        FusedDetector(registry)
    (warning,) = [r.getMessage() for r in caplog.records if "layer1_vae" in r.getMessage()]
    assert warning.startswith("the fused detector combines layer1_vae 1.0.0, which is in stage "
                              "archived, not production: it left production at ")
    assert warning.endswith(
        "(replaced by 1.1.0; actor " + registry.history("layer1_vae")[-1].actor + ") and "
        "1.1.0 is the production version; fusion.json keeps the versions the pipeline run "
        "that wrote it trained (retrain and promote do not change it): re-run the pipeline on "
        "this workdir to train and fuse new ones, or score --model layer1_vae to use 1.1.0 "
        "alone")


def test_800_000_event_ids_are_one_array_for_the_layer_and_the_fusion():
    """pyarrow converts a numpy text array of more than 16 MiB into chunks: a pipeline and a
    fused score of 730,000 Zeek events failed with "Cannot convert ChunkedArray to Array"
    (trial L, D1). Layer 1's unit columns and the fusion's event lookup take any number."""
    from training.datasets.split import DatasetSplit
    from training.layers.layer1 import Layer1

    n = 800_000
    ids = np.array([f"conn:C{i:017d}" for i in range(n)])  # 23 characters, as Zeek uids
    assert isinstance(pa.array(ids, pa.string()), pa.ChunkedArray)  # what pyarrow gives
    units = DatasetSplit("test", np.zeros((n, 1), np.float32), np.zeros(n, np.int64), ids,
                         np.arange(n))
    columns = Layer1().unit_columns(units)
    assert isinstance(columns["unit"], pa.Array) and columns["event_ids"][n - 1].as_py() == [
        ids[-1]]
    p, unit = event_tail_units(ids, columns["event_ids"], np.full(n, 0.5))
    assert (p == 0.5).all() and (unit == np.arange(n)).all()
