"""Incidents: grouping by entity and window across layers, the ranking, the Community ID join,
and the files `score` writes beside its alerts."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from training.collection.collector import DataSource
from training.errors import ConfigError
from training.registry.registry import ModelMetadata, ModelRegistry
from training.scoring.alerts import OUTPUT_SCHEMA
from training.scoring.batch import score_events
from training.scoring.incidents import build_incidents
from training.scoring.tables import as_pandas, incidents_path, read_alerts, read_incidents
from training.tests.registry_fixtures import save_tiny

T0 = datetime(2026, 11, 20, 10, 5, tzinfo=timezone.utc)


def _row(layer, unit, percentile, *, alert=True, source_ip=None, minutes=0, community_id=None,
         event_type="conn", event_ids=None):
    at = T0 + timedelta(minutes=minutes)
    return {"unit": unit, "time": at, "score": 1.0, "is_alert": alert,
            "event_ids": event_ids or [unit], "layer": layer, "threshold": 0.5,
            "percentile": percentile, "source_ip": source_ip, "community_id": community_id,
            "event_type": event_type, "first_seen": at, "last_seen": at}


def test_alerts_group_by_entity_and_window_across_layers_and_rank_by_tail_weight():
    rows = [
        _row("layer1", "conn:C1", 99.0, source_ip="10.0.0.5", community_id="1:abc"),
        _row("layer1", "eve:9", 99.9, source_ip="10.0.0.5", minutes=20, community_id="1:abc",
             event_type="alert"),
        _row("layer1", "conn:C2", 90.0, source_ip="10.0.0.5", minutes=30),
        _row("layer3", "10.0.0.5@2026-11-20T10:00", 99.0, minutes=-5),
        _row("layer1", "conn:C3", 100.0, source_ip="10.0.0.7"),  # one alert, far in the tail
        _row("layer1", "conn:C4", 99.99, source_ip="10.0.0.5", minutes=70),  # the next hour
        _row("layer1", "conn:C5", 99.0, source_ip="10.0.0.8", alert=False),  # no incident
    ]
    incidents = build_incidents(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA)).to_pylist()
    assert [(i["rank"], i["entity"], i["window_start"].hour, i["alerts"]) for i in incidents] == [
        (1, "10.0.0.7", 10, 1), (2, "10.0.0.5", 10, 4), (3, "10.0.0.5", 11, 1)]
    assert incidents[0]["score"] == pytest.approx(6.0, abs=1e-4)  # above every benign score: MAX_TAIL
    first = incidents[1]
    # Layer 1: Fisher over p = 0.01, 0.001, 0.1 (stronger than Sidak's 1 - 0.999**3 = 0.003):
    # -2 ln p summed is -2 ln 1e-6 on 6 degrees of freedom; plus layer 3's one unit at 0.01: 2.
    assert first["score"] == pytest.approx(_fisher([0.01, 0.001, 0.1]) + 2.0, abs=1e-4)
    assert _fisher([0.01, 0.001, 0.1]) == pytest.approx(3.9576, abs=1e-4)
    assert first["layers"] == [{"layer": "layer1", "alerts": 3}, {"layer": "layer3", "alerts": 1}]
    assert (first["first_seen"], first["last_seen"]) == (T0 - timedelta(minutes=5),
                                                         T0 + timedelta(minutes=30))
    assert first["flows"] == [{"community_id": "1:abc", "event_ids": ["conn:C1", "eve:9"],
                               "event_types": ["conn", "alert"]}]
    assert [t["unit"] for t in first["top"]] == ["eve:9", "conn:C1",
                                                 "10.0.0.5@2026-11-20T10:00"]
    assert incidents[2]["score"] == pytest.approx(4.0, abs=1e-4)
    with pytest.raises(ConfigError, match="window_seconds must be > 0, got 0"):
        build_incidents(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA), window_seconds=0)
    # Past the `detailed` best incidents the lists are left out (null), the rest is the same.
    brief = build_incidents(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA),
                            detailed=1).to_pylist()
    assert brief[0] == incidents[0]
    assert [(i["flows"], i["top"]) for i in brief[1:]] == [(None, None)] * 2
    assert [{**i, "flows": None, "top": None} for i in incidents[1:]] == brief[1:]


def _fisher(p: list[float]) -> float:
    """-log10 of Fisher's p-value, by the closed form for 2n degrees of freedom."""
    half = -sum(math.log(x) for x in p)
    return -math.log10(math.exp(-half) * sum(half ** k / math.factorial(k)
                                             for k in range(len(p))))


def test_units_that_do_not_alert_count_toward_the_rank_and_ordinary_ones_do_not_dilute():
    rows = [_row("layer1", "conn:A0", 99.0, source_ip="10.0.0.1"),  # one alert at p = 0.01
            *(_row("layer1", f"conn:A{i}", 95.0, source_ip="10.0.0.1", alert=False)
              for i in range(1, 21)),  # and 20 units at p = 0.05 that do not alert
            _row("layer1", "conn:B0", 99.9, source_ip="10.0.0.2"),  # one alert at p = 0.001
            _row("layer1", "conn:C0", 100.0, source_ip="10.0.0.3"),  # past every benign score
            *(_row("layer1", f"conn:C{i}", 50.0, source_ip="10.0.0.3", alert=False)
              for i in range(1, 201)),  # among 200 ordinary units
            _row("layer1", "conn:D0", 90.0, source_ip="10.0.0.4", alert=False)]  # no alert
    incidents = build_incidents(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA)).to_pylist()
    assert [(i["entity"], i["alerts"]) for i in incidents] == [
        ("10.0.0.1", 1), ("10.0.0.3", 1), ("10.0.0.2", 1)]
    assert incidents[0]["score"] == pytest.approx(_fisher([0.01] + [0.05] * 20), rel=1e-6)
    # Fisher's test is diluted by the 200 (p = 0.5 each); Sidak's is not: 1 - (1 - 1e-6)**201.
    assert incidents[1]["score"] == pytest.approx(-math.log10(1 - (1 - 1e-6) ** 201), rel=1e-6)
    assert incidents[2]["score"] == pytest.approx(3.0, abs=1e-4)  # float32 percentiles


def test_an_hour_without_alerts_is_an_incident_when_its_layers_together_are_as_rare_as_one():
    """Three layers at their 99th percentile, none past its threshold (a jump host moving
    laterally): Fisher's method over the layers gives p = 1.1e-4, rarer than the 1e-3 of one
    alert at the default threshold, so it is an incident; two layers at the 98th (p = 0.013)
    are not."""
    quiet = [_row(layer, f"u:{layer}:{i}", pct, alert=False, source_ip="10.0.0.40",
                  minutes=10 * i, community_id=f"1:{layer}{i}")
             for layer in ("layer1", "layer2", "layer3")
             for i, pct in enumerate((99.0, 60.0, 98.5, 97.0))]
    calm = [_row(layer, f"c:{layer}", 98.0, alert=False, source_ip="10.0.0.41")
            for layer in ("layer1", "layer2")]
    alert = [_row("layer1", "conn:A", 99.9, source_ip="10.0.0.1")]
    table = pa.Table.from_pylist(quiet + calm + alert, schema=OUTPUT_SCHEMA)
    incidents = build_incidents(table).to_pylist()
    assert [(i["entity"], i["alerts"]) for i in incidents] == [("10.0.0.40", 0), ("10.0.0.1", 1)]
    first = incidents[0]
    # Per layer the stronger of Fisher over its 4 units and Sidak over its best, summed.
    layer = max(_fisher([0.01, 0.4, 0.015, 0.03]), -math.log10(1 - 0.99 ** 4))
    assert first["score"] == pytest.approx(3 * layer, rel=1e-4)
    assert first["layers"] == []
    # It lists its heaviest units: furthest in the tail first, with their flows and times.
    assert [t["unit"] for t in first["top"]] == ["u:layer1:0", "u:layer2:0", "u:layer3:0"]
    assert [f["community_id"] for f in first["flows"]] == ["1:layer10", "1:layer20",
                                                           "1:layer30"]
    assert first["first_seen"] == first["last_seen"] == T0


def test_a_score_past_every_benign_score_weighs_what_their_number_supports():
    """A percentile of 100 among 1,999 benign validation scores is a 1-in-2,000 event (the
    conformal p-value), not the 1 in a million of a file without `reference_scores`."""
    rows = [{**_row("layer1", "conn:A", 100.0, source_ip="10.0.0.1"), "reference_scores": 1999},
            {**_row("layer1", "conn:B", 99.0, source_ip="10.0.0.2"), "reference_scores": 99},
            _row("layer1", "conn:C", 100.0, source_ip="10.0.0.3")]
    incidents = build_incidents(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA)).to_pylist()
    assert [(i["entity"], round(i["score"], 4)) for i in incidents] == [
        ("10.0.0.3", 6.0), ("10.0.0.1", round(math.log10(2000), 4)),
        ("10.0.0.2", round(-math.log10((1 + 99 * 0.01) / 100), 4))]


def test_a_window_alert_is_first_seen_at_its_first_event_not_its_window_start():
    """A layer-3 unit's time is its bucket's start; the incident's first and last seen are
    those of its events (a vertical scan starting at 10:07 does not start at 10:05)."""
    row = {**_row("layer3", "10.0.0.5@2026-11-20T10:05", 99.9, minutes=0),
           "source_ip": "10.0.0.5", "first_seen": T0 + timedelta(minutes=2),
           "last_seen": T0 + timedelta(minutes=4)}
    (incident,) = build_incidents(pa.Table.from_pylist([row], schema=OUTPUT_SCHEMA)).to_pylist()
    assert (incident["first_seen"], incident["last_seen"]) == (T0 + timedelta(minutes=2),
                                                               T0 + timedelta(minutes=4))


def test_a_scores_file_from_before_reference_scores_reads_them_as_null(tmp_path):
    import pyarrow.parquet as pq

    rows = [_row("layer1", "conn:A", 100.0, source_ip="10.0.0.1")]
    old = pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA).drop_columns(["reference_scores"])
    pq.write_table(old, tmp_path / "old.parquet")
    table = read_alerts(tmp_path / "old.parquet")
    assert table["reference_scores"].to_pylist() == [None]
    assert build_incidents(table)["score"].to_pylist() == pytest.approx([6.0])


def test_without_a_calibration_only_alerts_weigh():
    """A model saved before calibrations gives no percentile: score / threshold stands in for
    an alert's weight, and ordinary units, however many, add nothing (their score / threshold
    is no tail probability)."""
    rows = [{**_row("layer1", "conn:A0", None, source_ip="10.0.0.1"), "score": 1.5},
            *({**_row("layer1", f"conn:A{i}", None, source_ip="10.0.0.1", alert=False),
               "score": 0.25} for i in range(1, 2001)),
            {**_row("layer1", "conn:B0", None, source_ip="10.0.0.2"), "score": 2.0}]
    incidents = build_incidents(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA)).to_pylist()
    assert [(i["entity"], i["alerts"]) for i in incidents] == [("10.0.0.2", 1), ("10.0.0.1", 1)]
    assert incidents[0]["score"] == pytest.approx(4.0)  # 2.0 / 0.5 as -log10 p


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_score_writes_incidents_beside_its_alerts(tmp_path, datasets, suffix):
    registry = ModelRegistry(tmp_path / "models")
    weights = save_tiny(tmp_path / "src" / "tiny.pt", centre=0.25, dim=128, threshold=13.0)
    registry.register_model(weights, ModelMetadata("tiny", "1.0.0", "layer1", stage="production"))
    log = datasets / "stratosphere/008-zeek-mixed/data/conn.log.labeled"
    output = tmp_path / f"alerts{suffix}"
    summary = score_events(registry, "tiny", [DataSource("z", "zeek_logs", {"path": str(log)})],
                           output)
    alerts = read_alerts(output, alerts_only=True)
    incidents = read_incidents(incidents_path(output))
    assert summary.incidents_output == str(tmp_path / f"alerts.incidents{suffix}")
    assert alerts.num_rows == summary.alerts > 0 and incidents.num_rows == summary.incidents > 0
    rows = incidents.to_pylist()
    assert sum(i["alerts"] for i in rows) == alerts.num_rows
    page = json.loads((tmp_path / "alerts.alerts.json").read_text())
    assert [(i["rank"], i["entity"], i["alerts"]) for i in page["incidents"]] == \
        [(i["rank"], i["entity"], i["alerts"]) for i in rows[:20]]
    assert (tmp_path / "alerts.alerts.html").read_text().count("<h2 id='incident-") == \
        len(page["incidents"])
    assert [i["rank"] for i in rows] == list(range(1, len(rows) + 1))
    assert [i["score"] for i in rows] == sorted((i["score"] for i in rows), reverse=True)
    by_entity = {}
    for alert in alerts.to_pylist():
        by_entity.setdefault(alert["source_ip"], []).append(alert["first_seen"])
    for incident in rows:
        seen = [t for t in by_entity[incident["entity"]]
                if incident["window_start"] <= t < incident["window_start"] + timedelta(hours=1)]
        assert (len(seen), min(seen), max(seen)) == (incident["alerts"], incident["first_seen"],
                                                     incident["last_seen"])
    if suffix == ".jsonl":  # the same values whichever format
        score_events(registry, "tiny", [DataSource("z", "zeek_logs", {"path": str(log)})],
                     tmp_path / "alerts.parquet")
        assert read_alerts(output).to_pylist() == read_alerts(tmp_path / "alerts.parquet").to_pylist()
        assert incidents.to_pylist() == read_incidents(tmp_path / "alerts.incidents.parquet").to_pylist()


def test_pandas_is_optional(tmp_path):
    table = build_incidents(OUTPUT_SCHEMA.empty_table())
    try:
        import pandas  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(ConfigError, match="pandas is not installed"):
            as_pandas(table)
    else:
        assert list(as_pandas(table).columns) == table.column_names


def test_alert_files_of_several_layers_make_one_incident_table(tmp_path):
    from training.scoring.tables import incidents_across_layers, write_table

    rows = [_row("layer1", "conn:C1", 99.9, source_ip="10.0.0.5"),
            _row("layer3", "10.0.0.5@2026-11-20T10:00", 99.0),
            _row("layer1", "conn:C2", 90.0, source_ip="10.0.0.9")]
    write_table(pa.Table.from_pylist(rows[::2], schema=OUTPUT_SCHEMA), tmp_path / "l1.parquet")
    write_table(pa.Table.from_pylist(rows[1:2], schema=OUTPUT_SCHEMA), tmp_path / "l3.jsonl")
    out = incidents_across_layers([tmp_path / "l1.parquet", tmp_path / "l3.jsonl"],
                                  tmp_path / "all.jsonl")
    assert out.to_pylist() == read_incidents(tmp_path / "all.jsonl").to_pylist() == \
        build_incidents(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA)).to_pylist()
    assert [(i["entity"], [x["layer"] for x in i["layers"]]) for i in out.to_pylist()] == [
        ("10.0.0.5", ["layer1", "layer3"]), ("10.0.0.9", ["layer1"])]
    assert (tmp_path / "all.alerts.html").exists()
    with pytest.raises(ConfigError, match="no scored units file there"):
        incidents_across_layers([tmp_path / "nope.parquet"], tmp_path / "x.jsonl")


def test_incidents_past_every_benign_score_rank_by_how_far_above_the_threshold():
    rows = [_row("layer1", "conn:A", 100.0, source_ip="10.0.0.1"),
            _row("layer1", "conn:B", 100.0, source_ip="10.0.0.2")]
    rows[1]["score"] = 3.0  # six times its threshold; the first is twice its threshold
    incidents = build_incidents(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA)).to_pylist()
    assert [i["entity"] for i in incidents] == ["10.0.0.2", "10.0.0.1"]
    assert [i["score"] for i in incidents] == pytest.approx([6.0, 6.0], abs=1e-9)


def test_a_file_that_is_not_a_scoring_output_is_refused_by_name(tmp_path):
    import pyarrow.parquet as pq

    from training.errors import SchemaError
    from training.scoring.tables import incidents_across_layers, write_table

    pq.write_table(pa.table({"score": [1.0]}), tmp_path / "other.parquet")
    with pytest.raises(SchemaError, match="other.parquet: not a scored units file written by score"):
        read_alerts(tmp_path / "other.parquet")
    (tmp_path / "bad.jsonl").write_text('{"unit": "a", "score": "high"}\n')
    with pytest.raises(SchemaError, match="bad.jsonl: not a scored units file"):
        read_alerts(tmp_path / "bad.jsonl")
    # Each JSON Lines file read as the other: refused, not rows of nulls (trial H, D6).
    rows = [_row("layer1", "conn:C1", 99.9, source_ip="10.0.0.5")]
    write_table(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA), tmp_path / "s.jsonl")
    incidents_across_layers([tmp_path / "s.jsonl"], tmp_path / "i.jsonl")
    with pytest.raises(SchemaError, match=r"i.jsonl: not a scored units file written by "
                                          r"score \(its first record has no unit or is_alert\)"):
        read_alerts(tmp_path / "i.jsonl")
    with pytest.raises(SchemaError, match=r"s.jsonl: not an incidents file written by score"):
        read_incidents(tmp_path / "s.jsonl")
    assert read_alerts(tmp_path / "s.jsonl").num_rows == 1
    assert read_incidents(tmp_path / "i.jsonl").num_rows == 1


def test_host_log_alerts_group_by_their_host():
    rows = [_row("layer1", "security:4688:1", 99.0), _row("layer1", "security:4688:2", 99.9)]
    for row in rows:
        row["host"] = "ws-07"
    incidents = build_incidents(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA)).to_pylist()
    assert [(i["entity"], i["alerts"]) for i in incidents] == [("ws-07", 2)]


def test_fishers_evidence_far_in_the_tail_is_finite_and_right():
    """Where chi2.logsf underflows, the evidence comes from the incomplete gamma function's
    asymptote, checked against mpmath's exact value."""
    import math

    import mpmath
    import numpy as np

    from training.scoring.incidents import layer_evidence

    for n, per_unit in ((100, 20.0), (1000, 8.0), (10_000, 3.0)):
        log_p_sum = -per_unit * n  # every unit at p = e**-per_unit
        got = layer_evidence(np.array([log_p_sum]), np.array([float(n)]),
                             np.array([-per_unit]))[0]
        exact = -float(mpmath.log10(mpmath.gammainc(n, -log_p_sum, mpmath.inf,
                                                    regularized=True)))
        sidak = -math.log10(-math.expm1(n * math.log1p(-math.exp(-per_unit))))
        assert np.isfinite(got) and abs(got - max(exact, sidak)) < 1e-3 * max(exact, 1.0)


def test_top_alerts_past_every_benign_score_order_by_how_far_above_the_threshold():
    # The trial's incident: every alert past all benign validation scores (percentile 100),
    # so all weigh MAX_TAIL; file order used to pick 12.26, 6.16, 6.60.
    rows = [_row("layer2", f"10.0.0.1->10.0.0.{i}@w", 100.0, source_ip="10.0.0.1")
            for i in range(5)]
    for row, score in zip(rows, (12.26, 6.16, 6.60, 7.70, 6.65)):
        row["score"], row["threshold"] = score, 1.0
    rows.append(_row("layer2", "10.0.0.1->10.0.0.9@w", 99.0, source_ip="10.0.0.1"))
    rows[-1]["score"], rows[-1]["threshold"] = 50.0, 1.0  # higher, but not as far in the tail
    (incident,) = build_incidents(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA)).to_pylist()
    assert [t["score"] for t in incident["top"]] == pytest.approx([12.26, 7.70, 6.65])


def test_flow_event_types_come_from_the_events_or_are_null_when_unknown():
    def edge(unit, ids, listed, flow):
        row = _row("layer2", unit, 99.9, source_ip="10.0.0.1", community_id=flow,
                   event_type=None, event_ids=ids)
        row["top_events"] = [{"event_id": i, "event_type": t} for i, t in listed]
        return row

    rows = [edge("10.0.0.1->10.0.0.2@w", ["conn:C1", "http:C1"],
                 [("conn:C1", "conn"), ("http:C1", "http")], "1:a"),
            edge("10.0.0.1->10.0.0.3@w", ["conn:C2", "dns:C2", "x:C2", "y:C2"],
                 [("conn:C2", "conn"), ("dns:C2", "dns"), ("x:C2", "ssl")], "1:b"),
            _row("layer1", "conn:C1", 99.0, source_ip="10.0.0.1", community_id="1:a",
                 event_ids=["conn:C1"])]
    (incident,) = build_incidents(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA)).to_pylist()
    # 1:b's edge lists three of its four events: the fourth's type is unknown, not absent.
    assert {f["community_id"]: f["event_types"] for f in incident["flows"]} == {
        "1:a": ["conn", "http"], "1:b": None}


def test_a_top_entry_carries_its_alert_s_context_and_older_files_still_read(tmp_path):
    """The incidents file reads on its own: a top entry names what and who (addresses,
    ports, service, the sensor's signature) as its alert row has them; it named only the
    layer and unit, and an analyst joined the scores file for the rest (trial I, D2). A file
    written before reads with those fields null."""
    import pyarrow.parquet as pq

    from training.scoring.incidents import INCIDENT_SCHEMA, TOP_CONTEXT, TOP_ENTRY

    row = _row("layer1", "eve:7", 99.9, source_ip="10.0.0.5", event_type="alert")
    row.update(dest_ip="10.0.0.9", dest_port=445, protocol="tcp", service="smb",
               sensor_signature="ET EXPLOIT x")
    (incident,) = build_incidents(pa.Table.from_pylist([row], schema=OUTPUT_SCHEMA)).to_pylist()
    (top,) = incident["top"]
    assert {k: top[k] for k in TOP_CONTEXT} == {
        "event_type": "alert", "source_ip": "10.0.0.5", "source_port": None,
        "dest_ip": "10.0.0.9", "dest_port": 445, "protocol": "tcp", "service": "smb",
        "host": None, "user": None, "sensor_signature": "ET EXPLOIT x"}
    old_entry = pa.struct([f for f in TOP_ENTRY if f.name not in TOP_CONTEXT])
    old = pa.schema([pa.field("top", pa.list_(old_entry)) if f.name == "top" else f
                     for f in INCIDENT_SCHEMA])
    incident["top"] = [{k: v for k, v in top.items() if k not in TOP_CONTEXT}]
    pq.write_table(pa.Table.from_pylist([incident], schema=old), tmp_path / "old.parquet")
    (read,) = read_incidents(tmp_path / "old.parquet").to_pylist()
    assert read["top"][0]["unit"] == "eve:7" and read["top"][0]["source_ip"] is None


@pytest.mark.parametrize("calibrated", [True, False])
@pytest.mark.parametrize("threshold", [0.5, -2.0])
def test_the_alerts_explained_first_are_those_the_incidents_list_as_their_top(calibrated,
                                                                               threshold):
    """`explain_order` (which alerts of a batch get reasons past the cap) follows what
    `build_incidents` lists: taking as many as the alerting incidents' `top` entries gives
    exactly those, whatever the ties, for a model without a calibration or with a negative
    threshold too (review: the order was reversed there)."""
    import numpy as np

    from training.scoring.incidents import explain_order

    rng = np.random.default_rng(7)
    n = 400
    scores = np.round(rng.normal(1.0, 1.0, n), 1)  # ties within and across incidents
    percentiles = np.clip(np.round(rng.uniform(90, 101, n), 1), 0, 100) if calibrated else None
    rows = [{"unit": f"conn:C{i}", "time": T0 + timedelta(minutes=int(rng.integers(0, 240))),
             "score": float(scores[i]), "is_alert": bool(scores[i] >= threshold),
             "event_ids": [f"conn:C{i}"], "layer": "layer1", "threshold": threshold,
             "percentile": None if percentiles is None else float(percentiles[i]),
             "reference_scores": 2000 if calibrated else None,
             "source_ip": f"10.0.0.{int(rng.integers(1, 30))}"} for i in range(n)]
    for row in rows:
        row["first_seen"] = row["last_seen"] = row["time"]
    table = pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA)
    listed = [[entry["unit"] for entry in incident["top"]]
              for incident in build_incidents(table).to_pylist() if incident["alerts"]]
    tops = [unit for top in listed for unit in top]
    alerts = np.flatnonzero([row["is_alert"] for row in rows])
    assert len(tops) < len(alerts)  # some alerts are in no top
    first = alerts[explain_order(table, alerts, len(tops))]
    assert sorted(rows[i]["unit"] for i in first) == sorted(tops)
    # The heaviest of each incident first, the best incidents first.
    for k in (len(listed), len(listed) // 2):
        first = alerts[explain_order(table, alerts, k)]
        assert [rows[i]["unit"] for i in first] == [top[0] for top in listed[:k]]
