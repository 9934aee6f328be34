"""A fused alert's reasons: those of the layer unit that drove it (its smallest tail
probability), named with the layer, explained once with the layer's own alerts."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from training.evaluation.fusion import event_tail_units

NAN = float("nan")


def test_each_event_gets_the_unit_of_its_smallest_tail_probability():
    units = pa.array([["a", "b"], ["b"], ["z"], [], ["a"]], pa.list_(pa.string()))
    p, unit = event_tail_units(["a", "b", "c"], units, np.array([0.5, 0.1, 0.01, 0.2, 0.5]))
    np.testing.assert_array_equal(p, [0.5, 0.1, NAN])
    # "a": units 0 and 4 tie at 0.5, the first is taken; "c": no unit covers it.
    np.testing.assert_array_equal(unit, [0, 1, -1])


def _fused_run(datasets, tmp_path_factory, capture: str):
    """Layers 1 and 2 trained (one epoch) and fused on an IoT-23 capture: (the run's folder,
    its registry, the capture's events)."""
    from training.collection.collector import DataCollector, DataSource
    from training.pipeline.config import config_from_dict
    from training.pipeline.run import run_pipeline
    from training.registry.registry import ModelRegistry

    folder = tmp_path_factory.mktemp(f"fused_{capture}")
    path = datasets / "iot23" / f"CTU-Malware-Capture-{capture}-labeled.csv"
    run_pipeline(config_from_dict({"workdir": str(folder / "run"),
                                   "layers": ["layer1", "layer2"],
                                   "sources": [{"type": "csv", "path": str(path)}],
                                   "train": {"epochs": 1}}))
    events = DataCollector([DataSource(capture, "csv", {"path": str(path)})],
                           progress=False).collect_table()
    return folder, ModelRegistry(folder / "run" / "models"), events


@pytest.fixture(scope="module")
def iot44(datasets, tmp_path_factory):
    """Layers 1 and 2 trained (one epoch) and fused on IoT-23 44-1; its events scored by the
    fused detector and by each layer alone."""
    from training.scoring.batch import score_events
    from training.scoring.fused import score_fused
    from training.scoring.tables import read_alerts

    folder, registry, events = _fused_run(datasets, tmp_path_factory, "44-1")
    score_fused(registry, events, folder / "fused.parquet")
    alone = {}
    for name in ("layer1_vae", "layer2_gnn"):
        score_events(registry, name, events, folder / f"{name}.parquet", version="1.0.0")
        alone[name] = read_alerts(folder / f"{name}.parquet").to_pylist()
    return pq.read_table(folder / "fused.parquet").to_pylist(), alone


def test_a_fused_alert_carries_the_reasons_of_the_layer_unit_that_drove_it(iot44):
    fused, alone = iot44
    alerts = [r for r in fused if r["is_alert"]]
    assert alerts and all(r["reasons"] for r in alerts)  # trial F D4: none had any
    assert not any(r["reasons"] for r in fused if not r["is_alert"])
    # The layer with the smallest tail probability (the first on a tie) names every reason.
    drivers = {}
    for row in alerts:
        tails = [(row["tail_layer1"], 0), (row["tail_layer2"], 1)]
        layer = ("layer1", "layer2")[min((p, i) for p, i in tails if p is not None)[1]]
        drivers[row["unit"]] = layer
        assert {x["field"].split(": ")[0] for x in row["reasons"]} == {layer}
    assert set(drivers.values()) == {"layer1", "layer2"}  # each layer drives some here
    # Where that unit alerts in its own layer too, the reasons are that alert's, field for
    # field: layer 1's unit is the event, layer 2's the highest-scoring edge holding it.
    own = {r["unit"]: r for r in alone["layer1_vae"]}
    edges = {}
    for edge in sorted(alone["layer2_gnn"], key=lambda r: -r["score"]):
        for event in edge["event_ids"]:
            edges.setdefault(event, edge)
    compared = {"layer1": 0, "layer2": 0}
    for row in alerts:
        layer = drivers[row["unit"]]
        unit = own[row["unit"]] if layer == "layer1" else edges[row["unit"]]
        if unit["is_alert"]:
            compared[layer] += 1
            assert row["reasons"] == [{**x, "field": f"{layer}: {x['field']}"}
                                      for x in unit["reasons"]]
    assert compared["layer1"] > 0 and compared["layer2"] > 0


@pytest.fixture(scope="module")
def iot20(datasets, tmp_path_factory):
    """Layers 1 and 2 trained (one epoch) and fused on IoT-23 20-1 (3,209 events): layer 1
    alerts on 24 of them and drives 5 fused alerts, not those of its 5 highest scores;
    (registry, events)."""
    return _fused_run(datasets, tmp_path_factory, "20-1")[1:]


def _layer1_explained(detector, events) -> tuple[set[str], set[str], list[dict]]:
    """Layer 1's units (events) with reasons in one batch scored with units: its own alerts',
    and those driving fused alerts (a fused alert names its driver's layer in its reasons);
    and layer 1's rows."""
    fused, _, layer_rows = detector.score_with_units(events)
    rows = layer_rows[0].to_pylist()
    driving = {r["unit"] for r in fused.to_pylist()
               if r["reasons"] and r["reasons"][0]["field"].startswith("layer1: ")}
    return {r["unit"] for r in rows if r["reasons"]}, driving, rows


def test_a_layer_explains_at_most_the_cap_over_its_own_alerts_and_the_fused_ones_together(
        iot20, caplog):
    """At most `max_explained` units of a layer carry reasons in a batch, its own alerts and
    the units driving fused alerts counted once together (was up to twice the cap: each set
    capped on its own), the highest-scoring in the layer first."""
    from training.scoring.fused import FusedDetector

    registry, events = iot20
    own, driving, rows = _layer1_explained(FusedDetector(registry), events)
    score = {r["unit"]: r["score"] for r in rows}
    assert len(own) == 24 and len(driving) == 5  # uncapped: every one explained
    assert set(sorted(own, key=lambda u: -score[u])[:5]) != driving
    everyone = own | driving

    with caplog.at_level(logging.WARNING, logger="training.scoring.alerts"):
        own, driving, _ = _layer1_explained(FusedDetector(registry, max_explained=4), events)
    # both sets past the cap: 4 units in all (were 7), the heaviest of 4 incidents (a host's
    # hour) before any incident's second
    hour = {r["unit"]: (r["source_ip"], r["first_seen"].replace(minute=0, second=0,
                                                                microsecond=0)) for r in rows}
    assert len(own | driving) == 4 and own | driving <= everyone
    assert len({hour[u] for u in own | driving}) == 4
    # what was capped is named: not only alerts (review R6)
    assert "more than 4 alerts and units driving fused alerts in a batch: only 4 of each " \
           "batch carry reasons, the heaviest of each incident first, the best incidents " \
           "first" in caplog.messages
    own, driving, _ = _layer1_explained(FusedDetector(registry, max_explained=1000), events)
    assert own | driving == everyone
    with pytest.raises(ValueError, match="max_explained must be >= 1, got 0"):
        FusedDetector(registry, max_explained=0)


def test_past_the_cap_each_incidents_top_alerts_carry_reasons_first(iot20):
    """Past `max_explained` alerts in a batch, the alerts an incident lists as its top get
    reasons before other alerts: an incident's top alert that scored below the batch's
    highest had none (the last stop's leftover; on 20-1, the heaviest of 2 of layer 1's 6
    incidents with alerts, capped at their 10 top alerts)."""
    from training.layers.registry import layer_for_spec
    from training.scoring.alerts import AlertRows
    from training.scoring.incidents import build_incidents

    registry, events = iot20
    for name in ("layer1_vae", "layer2_gnn"):
        loaded = registry.load_model(name, "1.0.0")
        layer = layer_for_spec(loaded.feature_spec, name)

        def incidents(cap: int) -> tuple[pa.Table, list[list[dict]]]:
            rows = pa.Table.from_batches([AlertRows(
                layer, loaded.model, float(loaded.threshold), loaded.calibration,
                max_explained=cap).score(events)[0]])
            alerting = build_incidents(rows).filter(pa.compute.field("alerts") > 0)
            return rows, alerting["top"].to_pylist()

        everything, tops = incidents(10_000)
        shown = sum(len(top) for top in tops)  # the top alerts of the alerting incidents
        alerts = pa.compute.sum(everything["is_alert"]).as_py()
        assert shown < alerts and len(tops) >= 5  # the cap below binds
        rows, tops = incidents(shown)
        assert pa.compute.sum(pa.compute.is_valid(rows["reasons"])).as_py() == shown
        assert all(entry["reasons"] for top in tops for entry in top), name
