"""Incident updates under `score --follow`: the last update of each incident is the incident a
batch run builds from the same scored units, across restarts.

Real data: the Stratosphere 008 Zeek conn.log, its lines sorted by time (live incidents keep
the last two hours, and this log's lines run up to 6 hours late), followed in three parts
with an untrained layer-1 VAE whose threshold makes about half of the events alert.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.scoring.follow import FollowOutputs, follow_events
from training.scoring.incidents import TOP_CONTEXT, build_incidents
from training.scoring.live_incidents import MAX_FLOWS
from training.scoring.tables import read_alerts
from training.sources.config import DataSource
from training.tests.test_follow import _register

LOG = "stratosphere/008-zeek-mixed/data/conn.log.labeled"


def _text(when) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_the_last_update_of_each_incident_is_the_batch_incident(tmp_path, datasets):
    lines = (datasets / LOG).read_text().splitlines(keepends=True)
    head = [x for x in lines if x.startswith("#") and not x.startswith("#close")]
    data = sorted((x for x in lines if not x.startswith("#")),
                  key=lambda x: float(x.split("\t", 1)[0]))
    registry = _register(tmp_path)
    log = tmp_path / "conn.log"
    log.write_text("".join(head))
    outputs = FollowOutputs(alerts=tmp_path / "alerts.jsonl", state=tmp_path / "state",
                            scores=tmp_path / "scores.jsonl",
                            incidents=tmp_path / "alerts.incidents.jsonl")
    # A connection three hours after the others: every hour of the log is over.
    late = data[-1].split("\t")
    late[0], late[1] = f"{float(late[0]) + 3 * 3600:.6f}", "Clater"
    third = len(data) // 3
    for part in (data[:third], data[third:2 * third], [*data[2 * third:], "\t".join(late)]):
        with log.open("a") as handle:
            handle.write("".join(part))
        summary = follow_events(registry, "vae", [DataSource("z", "zeek", {"path": str(log)})],
                                outputs, once=True)

    updates = _jsonl(outputs.incidents)
    assert summary.counts["incident_updates"] == len(updates) > 0
    # The open incidents are checkpointed in the state file, readable by this user only.
    assert (tmp_path / "state" / "state.json").stat().st_mode & 0o777 == 0o600
    latest = {}
    for doc in updates:  # in order: the last one of each incident wins
        assert doc["event"]["kind"] == "alert" and doc["event"]["action"] == "incident-update"
        latest[doc["event"]["id"]] = doc["maximus"]["incident"]
    batch = build_incidents(read_alerts(outputs.scores), detailed=10**6).to_pylist()
    assert len(latest) == len(batch) > 10
    live = {(i["entity"], i["window_start"]): i for i in latest.values()}
    for want in batch:
        got = live[(want["entity"], _text(want["window_start"]))]
        assert got["alerts"] == want["alerts"] and got["layers"] == want["layers"]
        assert got["score"] == pytest.approx(want["score"], rel=1e-9)
        assert (got["first_seen"], got["last_seen"]) == \
            (_text(want["first_seen"]), _text(want["last_seen"]))
        assert [t["unit"] for t in got["top"]] == [t["unit"] for t in want["top"]]
        # each top entry's context, from its alert row, live as in batch
        assert [{k: t[k] for k in TOP_CONTEXT} for t in got["top"]] == \
            [{k: t[k] for k in TOP_CONTEXT} for t in want["top"]]
        assert all(t["source_ip"] and t["dest_port"] is not None for t in got["top"])
        if len(want["flows"]) <= MAX_FLOWS:
            assert got["flows"] == want["flows"]
        else:
            assert got["flows"] == want["flows"][:MAX_FLOWS]


def test_an_hour_let_go_keeps_its_last_update(tmp_path):
    """Units that come more than two hours after their hour leave its incident as it was:
    an index keyed on the incident's id keeps the update with every alert it had."""
    from datetime import UTC, datetime

    import pyarrow as pa

    from training.scoring.alerts import OUTPUT_SCHEMA
    from training.scoring.ecs import AlertRule
    from training.scoring.live_incidents import LiveIncidents

    def rows(hour: int, n: int) -> pa.Table:
        when = datetime(2026, 1, 1, hour, 5, tzinfo=UTC)
        return pa.Table.from_pylist([
            {"unit": f"e{hour}-{i}", "time": when, "score": 5.0, "is_alert": True,
             "event_ids": [f"e{hour}-{i}"], "layer": "layer1", "threshold": 1.0,
             "source_ip": "10.0.0.1", "first_seen": when, "last_seen": when}
            for i in range(n)], schema=OUTPUT_SCHEMA)

    incidents = LiveIncidents(AlertRule("m", "1", "layer1", 1.0))
    first = incidents.update(rows(10, 5))
    assert [d["maximus"]["incident"]["alerts"] for d in first] == [5]
    assert [d["maximus"]["incident"]["alerts"] for d in incidents.update(rows(13, 1))] == [1]
    assert incidents.update(rows(10, 1)) == []  # 10:00 was let go when 13:00 came
    assert incidents.update(rows(11, 1))[0]["event"]["id"] != first[0]["event"]["id"]


def test_live_top_alerts_past_every_benign_score_order_by_how_far_above_the_threshold():
    from datetime import UTC, datetime

    import pyarrow as pa

    from training.scoring.alerts import OUTPUT_SCHEMA
    from training.scoring.ecs import AlertRule
    from training.scoring.live_incidents import LiveIncidents

    when = datetime(2026, 1, 1, 10, 5, tzinfo=UTC)
    rows = pa.Table.from_pylist([
        {"unit": f"e{i}", "time": when, "score": score, "is_alert": True, "event_ids": [f"e{i}"],
         "layer": "layer1", "threshold": 1.0, "percentile": 100.0, "source_ip": "10.0.0.1",
         "first_seen": when, "last_seen": when}
        for i, score in enumerate((12.26, 6.16, 6.60, 7.70, 6.65))], schema=OUTPUT_SCHEMA)
    (doc,) = LiveIncidents(AlertRule("m", "1", "layer1", 1.0)).update(rows)
    top = doc["maximus"]["incident"]["top"]
    assert [t["unit"] for t in top] == ["e0", "e3", "e4"]
    assert all("peak" not in t and "weight" not in t for t in top)


def test_live_flow_event_types_are_the_batch_ones():
    """An edge alert has no event type of its own: its flow's types come from the events it
    lists, and are null where one is unknown, live as in batch (`build_incidents`)."""
    from datetime import UTC, datetime

    import pyarrow as pa

    from training.scoring.alerts import OUTPUT_SCHEMA
    from training.scoring.ecs import AlertRule
    from training.scoring.live_incidents import LiveIncidents

    when = datetime(2026, 1, 1, 10, 5, tzinfo=UTC)

    def edge(unit, ids, listed, flow):
        return {"unit": unit, "time": when, "score": 2.0, "is_alert": True, "event_ids": ids,
                "layer": "layer2", "threshold": 1.0, "percentile": 99.9,
                "source_ip": "10.0.0.1", "community_id": flow, "event_type": None,
                "first_seen": when, "last_seen": when,
                "top_events": [{"event_id": i, "event_type": t} for i, t in listed]}

    rows = pa.Table.from_pylist([
        edge("10.0.0.1->10.0.0.2@w", ["conn:C1", "http:C1"],
             [("conn:C1", "conn"), ("http:C1", "http")], "1:a"),
        edge("10.0.0.1->10.0.0.3@w", ["conn:C2", "dns:C2", "y:C2"],
             [("conn:C2", "conn"), ("dns:C2", "dns")], "1:b")], schema=OUTPUT_SCHEMA)
    (doc,) = LiveIncidents(AlertRule("m", "1", "layer2", 1.0)).update(rows)
    live = {f["community_id"]: f["event_types"] for f in doc["maximus"]["incident"]["flows"]}
    (batch,) = build_incidents(rows).to_pylist()
    assert live == {f["community_id"]: f["event_types"] for f in batch["flows"]} == {
        "1:a": ["conn", "http"], "1:b": None}


def test_a_quiet_hour_goes_out_when_it_is_over_as_in_batch():
    """An hour without alerts whose layers together are as rare as an alert is an incident
    (`quiet_incidents`): live, it goes out once its hour is over, with what batch gives."""
    from datetime import UTC, datetime, timedelta

    import pyarrow as pa

    from training.scoring.alerts import OUTPUT_SCHEMA
    from training.scoring.ecs import AlertRule
    from training.scoring.live_incidents import LiveIncidents

    start = datetime(2026, 1, 1, 10, 5, tzinfo=UTC)

    def row(layer: str, i: int, percentile: float, hour: int = 0) -> dict:
        when = start + timedelta(hours=hour, minutes=10 * i)
        return {"unit": f"{layer}-{i}", "time": when, "score": 0.5, "is_alert": False,
                "event_ids": [f"{layer}-{i}"], "layer": layer, "threshold": 1.0,
                "percentile": percentile, "reference_scores": 5000, "source_ip": "10.0.0.40",
                "community_id": f"1:{layer}{i}", "first_seen": when, "last_seen": when}

    quiet = [row(layer, i, pct) for layer in ("layer1", "layer2", "layer3")
             for i, pct in enumerate((97.0, 99.0, 60.0, 98.5))]
    later = [row("layer1", 9, 50.0, hour=1)]
    incidents = LiveIncidents(AlertRule("m", "1", "fused", 1.0))
    assert incidents.update(pa.Table.from_pylist(quiet[:6], schema=OUTPUT_SCHEMA)) == []
    assert incidents.update(pa.Table.from_pylist(quiet[6:], schema=OUTPUT_SCHEMA)) == []
    (doc,) = incidents.update(pa.Table.from_pylist(later, schema=OUTPUT_SCHEMA))
    (want,) = build_incidents(pa.Table.from_pylist(quiet + later, schema=OUTPUT_SCHEMA)
                              ).to_pylist()
    got = doc["maximus"]["incident"]
    assert (got["alerts"], got["layers"]) == (want["alerts"], want["layers"]) == (0, [])
    assert got["score"] == pytest.approx(want["score"], rel=1e-9)
    assert [t["unit"] for t in got["top"]] == [t["unit"] for t in want["top"]] == [
        "layer1-1", "layer2-1", "layer3-1"]
    assert got["flows"] == want["flows"]
    assert (got["first_seen"], got["last_seen"]) == (_text(want["first_seen"]),
                                                     _text(want["last_seen"]))
