"""Suricata EVE times and the sensor's name (`training.sources.suricata`), on the real
slips_test6 capture: a flow is timed by its start, and EVE's `host` (the sensor) is no entity."""

from __future__ import annotations

import collections
import json
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from training.collection.collector import DataCollector
from training.errors import CheckpointError
from training.scoring.tail import Tail
from training.sources.config import DataSource
from training.sources.suricata import RECIPE
from training.tests.conftest import collect

EVE = "suricata/slips_test6-malicious.suricata.json"
LOGGED = datetime(2021, 6, 6, 13, 57, 37, 272281, tzinfo=timezone.utc)  # most records' timestamp
WINDOW_US = 300 * 1_000_000  # layer 2's 5-minute graphs


def _records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(timezone.utc)


def test_a_flow_is_timed_by_its_start_not_when_it_was_logged(datasets):
    # The trial: 3,571 of the 5,000 events shared one time (the flows' logging time), so the
    # time split, the 5-minute graphs and the layer-3 windows collapsed into one.
    path = datasets / EVE
    records = _records(path)
    events, _ = collect("suricata_logs", path)
    times = events["timestamp"].to_pylist()
    for record, time in zip(records, times, strict=True):
        kind = record["event_type"]
        expected = record["flow"]["start"] if kind == "flow" else record["timestamp"]
        assert time == _utc(expected), (kind, record.get("flow_id"))
    flows = [t for r, t in zip(records, times) if r["event_type"] == "flow"]
    assert len(flows) == len(set(flows)) == 3_512  # logged with one timestamp, started apart
    assert (min(flows), max(flows)) == (
        datetime(2021, 6, 6, 13, 57, 39, 105835, tzinfo=timezone.utc),
        datetime(2021, 6, 7, 13, 56, 4, 947028, tzinfo=timezone.utc))
    assert times.count(LOGGED) == 59  # the alerts and dns records logged then: was 3,571
    assert len(set(times)) == 4_454  # was 1,397
    micros = pc.cast(events["timestamp"], pa.int64()).to_numpy()
    windows = collections.Counter(micros // WINDOW_US)
    assert max(windows.values()) == 64  # the fullest 5-minute window: was 3,573 events


def test_an_alert_keeps_its_own_time_though_it_carries_its_flows_start(datasets):
    alert = _records(datasets / EVE)[9]
    assert alert["event_type"] == "alert" and alert["flow"]["start"] != alert["timestamp"]
    events, _ = collect("suricata_logs", datasets / EVE)
    assert events["timestamp"][9].as_py() == _utc(alert["timestamp"])


def test_follow_times_flows_as_collect_does(datasets):
    # score --follow maps its reads through the same source: one code path, one time.
    tail = Tail([DataSource("eve", "suricata_logs", {"path": str(datasets / EVE)})])
    reads = []
    while polled := [read.canonical.table for read in tail.poll()]:
        reads += polled
    followed = pa.concat_tables(reads, promote_options="default")
    collected, _ = collect("suricata_logs", datasets / EVE)
    assert followed["timestamp"].to_pylist() == collected["timestamp"].to_pylist()
    assert followed["host"].null_count == followed.num_rows


def test_a_flow_without_a_readable_start_keeps_its_logging_time(tmp_path):
    logged = "2024-01-02T03:04:05.000000+0000"
    flow = {"timestamp": logged, "event_type": "flow", "src_ip": "10.0.0.1", "src_port": 1,
            "dest_ip": "10.0.0.2", "dest_port": 2, "proto": "TCP"}
    path = tmp_path / "eve.json"
    path.write_text("".join(json.dumps(r) + "\n" for r in (
        {**flow, "flow": {"start": "not a time", "end": "2024-01-02T03:04:04.000000+0000"}},
        {**flow, "flow": {"pkts_toserver": 1}},
        {**flow, "event_type": "netflow", "netflow": {"start": "2024-01-02T03:00:00.5+0000"}})))
    events, collector = collect("suricata_logs", path)
    assert collector.quarantined == []
    assert events["timestamp"].to_pylist() == [_utc(logged), _utc(logged),
                                               datetime(2024, 1, 2, 3, 0, 0, 500000,
                                                        tzinfo=timezone.utc)]
    # A time field named in the config is used as given.
    events, _ = collect("suricata_logs", path, field_map={"timestamp": "timestamp"},
                        time_field=None)
    assert events["timestamp"].to_pylist() == [_utc(logged)] * 2 + [
        datetime(2024, 1, 2, 3, 0, 0, 500000, tzinfo=timezone.utc)]
    events, _ = collect("suricata_logs", path, time_field="netflow.start")
    assert events["timestamp"][2].as_py() == datetime(2024, 1, 2, 3, 0, 0, 500000,
                                                      tzinfo=timezone.utc)


def test_the_sensors_name_is_no_host(datasets):
    # EVE's host is Suricata's sensor-name: with it as the canonical host every event of the
    # sensor was one entity, and layer-1 reasons read "host stratosphere.org".
    events, _ = collect("suricata_logs", datasets / EVE)
    assert events["host"].null_count == events.num_rows == 5_000
    assert set(events["observer.hostname"].to_pylist()) == {"stratosphere.org"}  # kept
    assert "raw.host" not in events.column_names
    # A field map that reads host from it is followed.
    events, _ = collect("suricata_logs", datasets / EVE, field_map={"host": "host"})
    assert set(events["host"].to_pylist()) == {"stratosphere.org"}
    assert "observer.hostname" not in events.column_names


def test_a_collection_made_by_the_old_eve_rules_is_not_resumed(datasets, tmp_path):
    out = tmp_path / "out"
    source = DataSource("eve", "suricata_logs", {"path": str(datasets / EVE)})
    DataCollector([source], output_dir=out, progress=False).collect_table()
    checkpoint = out / "checkpoint.json"
    state = json.loads(checkpoint.read_text())
    assert state["recipe"]["sources"][0]["params"]["eve_rules"] == RECIPE
    del state["recipe"]["sources"][0]["params"]["eve_rules"]  # as written before them
    checkpoint.write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="made with other settings"):
        DataCollector([source], output_dir=out, progress=False).collect_table(
            resume_from_checkpoint=True)


def test_a_folder_reads_logrotates_names_too(datasets, tmp_path):
    """/var/log/suricata holds eve.json beside logrotate's eve.json.1, eve.json.2.gz and
    eve.json-20221201: they were skipped as "not of its format" (trial T)."""
    import gzip

    lines = (datasets / EVE).read_text().splitlines(keepends=True)[:400]
    folder = tmp_path / "suricata"
    folder.mkdir()
    (folder / "eve.json").write_text("".join(lines[:100]))
    (folder / "eve.json.1").write_text("".join(lines[100:200]))
    (folder / "eve.json.2.gz").write_bytes(gzip.compress("".join(lines[200:300]).encode()))
    (folder / "eve.json-20221201").write_text("".join(lines[300:]))
    collector = DataCollector([DataSource("s", "suricata", {"path": str(folder)})],
                              progress=False)
    assert collector.collect_table().num_rows == 400
