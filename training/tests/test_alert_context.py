"""Scored units carry their event context: real Zeek, Suricata EVE and IoT-23 CSV files, and the
shared-value rule for units made of many events."""

from __future__ import annotations

import collections
import csv
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from training.collection.collector import DataCollector, DataSource
from training.collection.schema import sensor_records
from training.registry.registry import ModelMetadata, ModelRegistry
from training.scoring.batch import score_events
from training.scoring.context import CONTEXT_FIELDS, unit_context
from training.tests.conftest import collect
from training.tests.registry_fixtures import save_tiny

SOURCES = [  # (source type, file, the sensor's own id field)
    ("zeek_logs", "stratosphere/008-zeek-mixed/data/conn.log.labeled", "uid"),
    ("suricata_logs", "suricata/magnc_server_eve.json", "flow_id"),
    ("csv_file", "iot23/CTU-Malware-Capture-44-1-labeled.csv", "uid"),
]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    folder = tmp_path_factory.mktemp("context")
    registry = ModelRegistry(folder / "models")
    # Its scores (squared distance to 0.25) of these files' l1.v2 vectors lie around 12 to 14.
    weights = save_tiny(folder / "src" / "tiny.pt", centre=0.25, dim=128, threshold=13.0)
    registry.register_model(weights, ModelMetadata("tiny", "1.0.0", "layer1", stage="production"))
    return registry


@pytest.mark.parametrize("kind,path,own_id", SOURCES, ids=[s[0] for s in SOURCES])
def test_real_files_fill_every_context_column_the_source_has(tmp_path, datasets, registry,
                                                             kind, path, own_id):
    source = [DataSource("s", kind, {"path": str(datasets / path)})]
    events = DataCollector(source, progress=False).collect_table()
    sensor = sensor_records(events["event_type"])  # Suricata stats: left out, and counted
    events = events.filter(pa.array(~sensor))
    summary = score_events(registry, "tiny", source, tmp_path / "out.parquet")
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.num_rows == events.num_rows == summary.units
    assert summary.sensor_records == sensor.sum()
    assert out["unit"].to_pylist() == events["event_id"].to_pylist()
    for name in CONTEXT_FIELDS:  # one event per unit: exactly its own values, nulls included
        assert out[name].to_pylist() == events[name].to_pylist(), name
    filled = {name: out.num_rows - out[name].null_count for name in CONTEXT_FIELDS}
    assert min(filled[n] for n in ("source_ip", "dest_ip", "protocol", "community_id")) > 0
    assert filled["service"] > 0 and filled["source_port"] > 0
    assert out["sensor_id"].to_pylist() == pc.cast(events[own_id], pa.string()).to_pylist()
    assert out["first_seen"].to_pylist() == out["last_seen"].to_pylist() == \
        events["timestamp"].to_pylist()
    assert set(out["layer"].to_pylist()) == {"layer1"}
    assert set(out["threshold"].to_pylist()) == {13.0}
    alerts = out["is_alert"].to_numpy(zero_copy_only=False)
    assert alerts.any() and not alerts.all()  # the threshold splits these files
    np.testing.assert_array_equal(alerts, out["score"].to_numpy() >= 13.0)
    top = summary.top_alerts[0]
    assert top["source_ip"] is not None and top["first_seen"].startswith(top["time"][:19])


def test_a_csv_with_zeek_conn_columns_keeps_its_uid_as_the_event_id(datasets):
    path = datasets / "iot23/CTU-Malware-Capture-44-1-labeled.csv"
    events = DataCollector([DataSource("s", "csv_file", {"path": str(path)})],
                           progress=False).collect_table()
    uids = [line.split(",")[1] for line in path.read_text().splitlines()[1:]]
    assert events["event_id"].to_pylist() == uids == events["uid"].to_pylist()


def test_a_csv_without_conn_columns_keeps_content_ids(tmp_path):
    # DNS rows repeat their connection's uid: taking it as the id would merge them.
    path = tmp_path / "dns.csv"
    path.write_text("ts,uid,query\n1.0,C1,a.example\n2.0,C1,b.example\n")
    events = DataCollector([DataSource("s", "csv_file", {"path": str(path)})],
                           progress=False).collect_table()
    assert events.num_rows == 2 and "C1" not in events["event_id"].to_pylist()
    assert events["event_type"].to_pylist() == ["event", "event"]  # the file names no log


def test_a_zeek_conn_log_written_as_csv_holds_conn_events_as_the_log_does(tmp_path, datasets):
    """The rule that keeps an IoT-23 CSV's uids (uid and conn_state: a conn log's columns)
    also types its rows: "conn", as the Zeek reader types the rows of the same log."""
    iot = DataCollector([DataSource("s", "csv_file", {"path": str(
        datasets / "iot23/CTU-Malware-Capture-44-1-labeled.csv")})], progress=False)
    events = iot.collect_table()
    assert set(events["event_type"].to_pylist()) == {"conn"}
    assert events["event_id"].to_pylist() == events["uid"].to_pylist()  # ids as before
    # A real conn log and the same rows written as CSV: the same event types and ids.
    lines = (datasets / "stratosphere/008-zeek-mixed/data/conn.log.labeled").read_text(
        ).splitlines()
    header = [line for line in lines if line.startswith("#")][:8]
    rows = [line.split("\t") for line in lines if not line.startswith("#")][:300]
    (tmp_path / "conn.log").write_text("\n".join(header + ["\t".join(r) for r in rows]) + "\n")
    with open(tmp_path / "conn.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header[6].split("\t")[1:])  # #fields
        writer.writerows(rows)
    zeek, _ = collect("zeek_logs", tmp_path / "conn.log")
    from_csv, _ = collect("csv_file", tmp_path / "conn.csv")
    assert zeek["event_type"].to_pylist() == from_csv["event_type"].to_pylist() == ["conn"] * 300
    assert zeek["event_id"].to_pylist() == [f"conn:{i}" for i in from_csv["event_id"].to_pylist()]
    # A column the field map names as the event type still wins.
    mapped, _ = collect("csv_file", tmp_path / "conn.csv", field_map={"event_type": "proto"})
    assert mapped["event_type"].to_pylist() == [r[6] for r in rows]


def test_units_of_many_events_keep_the_values_their_events_share():
    t = [pa.scalar(s * 1_000_000, pa.timestamp("us", tz="UTC")) for s in (10, 20, 30)]
    events = pa.table({
        "event_id": ["a", "b", "c"], "timestamp": pa.array([x.as_py() for x in t], t[0].type),
        "event_type": ["conn", "conn", "dns"], "source_ip": ["10.0.0.1"] * 3,
        "source_port": pa.array([5000, 5001, 5002], pa.int32()),
        "dest_ip": ["10.0.0.9", "10.0.0.9", "8.8.8.8"],
        "dest_port": pa.array([80, 80, 53], pa.int32()), "uid": ["C1", "C1", None],
        "bytes_sent": pa.array([10, 500, None], pa.int64()),
    })
    units = pa.array([["a", "b"], ["c"], ["a", "b", "c"], [], ["zz"]], pa.list_(pa.string()))
    rows = unit_context(events, units).to_pylist()
    assert [(r["source_ip"], r["dest_ip"], r["dest_port"], r["source_port"], r["event_type"])
            for r in rows] == [
        ("10.0.0.1", "10.0.0.9", 80, None, "conn"), ("10.0.0.1", "8.8.8.8", 53, 5002, "dns"),
        ("10.0.0.1", None, None, None, None), (None, None, None, None, None),
        (None, None, None, None, None)]
    # c has no uid: it disagrees with a and b, so the three share none
    assert [r["sensor_id"] for r in rows] == ["C1", None, None, None, None]
    assert [(r["first_seen"], r["last_seen"]) for r in rows] == [
        (t[0].as_py(), t[1].as_py()), (t[2].as_py(), t[2].as_py()),
        (t[0].as_py(), t[2].as_py()), (None, None), (None, None)]
    assert all(r["protocol"] is None and r["community_id"] is None for r in rows)
    assert [[(e["event_id"], e["bytes"], e["dest_port"]) for e in r["top_events"]]
            for r in rows] == [[("b", 500, 80), ("a", 10, 80)], [("c", 0, 53)],
                               [("b", 500, 80), ("a", 10, 80), ("c", 0, 53)], [], []]
    # No unit at all (a host-window model given flows): an empty table, not an error
    for none in (pa.array([], pa.list_(pa.string())), pa.array([[]], pa.list_(pa.string()))):
        empty = unit_context(events, none)
        assert empty.num_rows == len(none) and empty.schema == unit_context(events, units).schema


# (source type, file, layer-3 options, a window of events with and without a value, its size,
# a column the window's events share, a column only some of them have)
MIXED_WINDOWS = [
    ("windows_events", "windows_otrf_security_datasets/psh_lsass_memory_dump_comsvcs.zip",
     {"entity": "host", "bucket_seconds": 10}, "WORKSTATION5@2020-10-18T23:50:00.000000", 160,
     ("host", "WORKSTATION5"), "command_line"),
    ("csv_file", "iot23/CTU-Malware-Capture-20-1-labeled.csv", {},
     "192.168.100.103@2018-10-02T22:53:00.000000", 6, ("source_ip", "192.168.100.103"),
     "service"),
]


@pytest.mark.parametrize("kind,path,options,window,size,shared,partial", MIXED_WINDOWS,
                         ids=["otrf-host-window", "iot23-layer3"])
def test_a_window_shows_a_value_only_when_every_event_has_it(datasets, kind, path, options,
                                                            window, size, shared, partial):
    from training.layers.layer3 import Layer3

    events, _ = collect(kind, datasets / path)
    layer = Layer3.for_labels(**options)
    columns = layer.unit_columns(layer.featurize(events))
    context = unit_context(events, columns["event_ids"]).to_pylist()
    names = (*CONTEXT_FIELDS, "process", "command_line", "sensor_id")
    own = dict(zip(events["event_id"].to_pylist(),
                   unit_context(events, pa.array([[i] for i in events["event_id"].to_pylist()],
                                                 pa.list_(pa.string()))).to_pylist()))
    mixed = 0  # (window, column)s where some events have a value and some have none
    for ids, row in zip(columns["event_ids"].to_pylist(), context):
        for name in names:
            values = {own[i][name] for i in ids}
            mixed += len(values) > 1 and None in values
            assert row[name] == (next(iter(values)) if len(values) == 1 else None), name
    assert mixed > 0
    row = context[columns["unit"].to_pylist().index(window)]
    ids = columns["event_ids"].to_pylist()[columns["unit"].to_pylist().index(window)]
    values = {own[i][partial] for i in ids}
    assert len(ids) == size and None in values and len(values) >= 2  # some events have one
    assert (row[shared[0]], row[partial]) == (shared[1], None)


def test_host_windows_list_their_process_creations_first(datasets):
    """Windows logs move no bytes: a window lists its events with a command line first, then
    those of the types it has fewest of, with their process and command line."""
    from training.layers.layer3 import Layer3

    events, _ = collect("windows_events", datasets / LSASS)
    layer = Layer3.for_labels(entity="host", bucket_seconds=10)
    columns = layer.unit_columns(layer.featurize(events))
    context = unit_context(events, columns["event_ids"]).to_pylist()
    own = {e["event_id"]: e for e in events.to_pylist()}
    for ids, row in zip(columns["event_ids"].to_pylist(), context):
        kinds = collections.Counter(own[i]["event_type"] for i in ids)
        keys = {i: (-(own[i]["bytes_sent"] or 0) - (own[i]["bytes_received"] or 0),
                    not own[i]["command_line"], kinds[own[i]["event_type"]],
                    own[i]["timestamp"]) for i in ids}
        top = row["top_events"]
        assert [keys[e["event_id"]] for e in top] == sorted(keys.values())[:3]
        assert [(e["process"], e["command_line"]) for e in top] == [
            (own[e["event_id"]]["process"], own[e["event_id"]]["command_line"]) for e in top]
    # The MiniDump window: 160 events, its two process creations (one event each) come first;
    # by bytes alone (0 everywhere) it listed registry and process-access events.
    window = context[columns["unit"].to_pylist().index("WORKSTATION5@2020-10-18T23:50:00.000000")]
    top = window["top_events"]
    assert [(e["event_type"], e["process"], e["user"]) for e in top[:2]] == [
        ("security:4688", RUNDLL, "wardog"), ("sysmon:1", RUNDLL, "wardog")]
    assert all("comsvcs.dll MiniDump" in e["command_line"] for e in top[:2])
    assert (top[2]["event_type"], top[2]["command_line"]) == ("sysmon:5", None)


def test_top_events_written_before_their_process_and_command_line_still_read(tmp_path):
    from training.scoring.alerts import OUTPUT_SCHEMA
    from training.scoring.context import EVENT_CONTEXT
    from training.scoring.tables import read_alerts

    old_event = pa.struct([f for f in EVENT_CONTEXT if f.name not in ("process", "command_line")])
    old = pa.schema([pa.field("top_events", pa.list_(old_event)) if f.name == "top_events" else f
                     for f in OUTPUT_SCHEMA])
    event = {"event_id": "e1", "dest_ip": "10.0.0.9", "bytes": 7}
    rows = [{"unit": "a->b@0", "score": 2.0, "is_alert": True, "event_ids": ["e1", "e2"],
             "top_events": [event]}, {"unit": "c", "score": 1.0, "is_alert": False}]
    pq.write_table(pa.Table.from_pylist(rows, schema=old), tmp_path / "old.parquet")
    (tmp_path / "old.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for name in ("old.parquet", "old.jsonl"):
        read = read_alerts(tmp_path / name)
        assert read.schema == OUTPUT_SCHEMA
        (first,), second = read["top_events"].to_pylist()
        assert (first["event_id"], first["dest_ip"], first["bytes"]) == ("e1", "10.0.0.9", 7)
        assert (first["process"], first["command_line"], second) == (None, None, None)
    # a slice of a batch (a chunk that starts inside its list's values) is conformed too
    from training.scoring.context import EVENT_CONTEXT, conform_structs

    lists = pa.array([[event], None, [{"event_id": "e2"}, event]], pa.list_(old_event))
    read = conform_structs(pa.chunked_array([lists.slice(1)]), EVENT_CONTEXT).to_pylist()
    assert [[(e["event_id"], e["bytes"], e["process"]) for e in x] if x else x for x in read] \
        == [None, [("e2", None, None), ("e1", 7, None)]]


def test_an_alert_line_shows_its_hosts_and_first_reason():
    from training.scoring.alerts import alert_context

    row = {"source_ip": "10.0.0.5", "source_port": 51000, "dest_ip": "8.8.8.8", "dest_port": 53,
           "protocol": "udp", "service": "dns",
           "reasons": [{"field": "dest_port", "observed": "65000", "typical": "53",
                        "contribution": 9.0}]}
    assert alert_context(row) == "  10.0.0.5:51000 -> 8.8.8.8:53 udp dns; dest_port 65000 (typical 53)"
    assert alert_context({"source_ip": "10.0.0.5", "reasons": None}) == "  10.0.0.5 -> ?"
    # An IPv6 address with a port is bracketed, so the port cannot be read as its last group.
    assert alert_context({"source_ip": "fe80::1", "source_port": 546, "dest_ip": "ff02::1:2",
                          "dest_port": 547}) == "  [fe80::1]:546 -> [ff02::1:2]:547"
    assert alert_context({"unit": "x"}) == ""
    # Without addresses (a host log, a Zeek x509 record): its type, host and user; and a reason
    # alone does not start with "; ".
    assert alert_context({"event_type": "process_creation", "host": "HQ-WS015", "user": "SYSTEM",
                          "reasons": [{"field": "command_line", "observed": "cmd.exe",
                                       "typical": "another value"}]}) == (
        "  process_creation HQ-WS015 SYSTEM; command_line cmd.exe (typical another value)")
    assert alert_context({"reasons": [{"field": "duration", "observed": "9", "typical": None}]}) \
        == "  duration 9"


def test_a_collection_of_an_iot23_csv_resumes_on_its_uids_without_duplicates(tmp_path, datasets):
    path = datasets / "iot23/CTU-Malware-Capture-44-1-labeled.csv"
    uids = [line.split(",")[1] for line in path.read_text().splitlines()[1:]]
    collected: list[str] = []
    for _ in range(10):  # stop after 100 events each run, resume from the checkpoint
        collector = DataCollector([DataSource("s", "csv_file", {"path": str(path)})],
                                  output_dir=tmp_path / "out", progress=False)
        batch = [e.event_id for e in collector.collect(max_events=100)]
        if not batch:
            break
        collected += batch
    assert collected == uids


def test_score_and_collect_read_a_renamed_csv_with_the_field_map(tmp_path, datasets, registry):
    """A model trained with --field-map scores new files with it too (`score` and `collect` take
    the pipeline's --column-names, --field-map and --label-map)."""
    from training.cli.main import main

    original = datasets / "iot23/CTU-Malware-Capture-44-1-labeled.csv"
    renamed = tmp_path / "renamed.csv"
    header, rest = original.read_text().split("\n", 1)
    names = {"id.orig_h": "src", "id.resp_h": "dst", "id.orig_p": "sport", "id.resp_p": "dport",
             "orig_bytes": "out_bytes"}
    renamed.write_text(",".join(names.get(c, c) for c in header.split(",")) + "\n" + rest)
    field_map = "source_ip=src,dest_ip=dst,source_port=sport,dest_port=dport,bytes_sent=out_bytes"
    flags = ["--registry-dir", str(registry.registry_dir), "--model", "tiny"]
    assert main(["-q", "score", *flags, "--input", f"csv:{original}",
                 "--output", str(tmp_path / "original.parquet")]) == 0
    assert main(["-q", "score", *flags, "--input", f"csv:{renamed}", "--field-map", field_map,
                 "--output", str(tmp_path / "mapped.parquet")]) == 0
    before, after = (pq.read_table(tmp_path / f"{n}.parquet") for n in ("original", "mapped"))
    assert after["source_ip"].null_count == 0
    for name in ("unit", "score", "source_ip", "dest_port"):
        assert after[name].to_pylist() == before[name].to_pylist(), name
    assert main(["-q", "collect", "--source", f"csv:{renamed}", "--field-map", field_map,
                 "--output", str(tmp_path / "collected")]) == 0
    collected = pq.read_table(tmp_path / "collected" / "events")
    assert sorted(collected["source_ip"].to_pylist()) == sorted(before["source_ip"].to_pylist())


LSASS = "windows_otrf_security_datasets/psh_lsass_memory_dump_comsvcs.zip"
RUNDLL = "C:\\Windows\\System32\\rundll32.exe"


def test_host_log_units_carry_their_process_and_command_line(tmp_path, datasets, registry):
    source = [DataSource("w", "windows_events", {"path": str(datasets / LSASS)})]
    events = DataCollector(source, progress=False).collect_table()
    score_events(registry, "tiny", source, tmp_path / "win.parquet")
    rows = pq.read_table(tmp_path / "win.parquet").to_pylist()
    own = {r["event_id"]: (r["process"], r["command_line"]) for r in events.to_pylist()}
    assert [(r["process"], r["command_line"]) for r in rows] == [own[r["unit"]] for r in rows]
    minidump = {(r["event_type"], r["process"]) for r in rows
                if "comsvcs.dll MiniDump" in (r["command_line"] or "")}
    assert minidump == {("sysmon:1", RUNDLL), ("security:4688", RUNDLL)}
    # A unit of many events keeps the process its events share, null where they differ.
    ids = [r["unit"] for r in rows if r["process"] == RUNDLL][:2]
    other = next(r["unit"] for r in rows if r["process"] not in (RUNDLL, None))
    shared = unit_context(events, pa.array([ids, [ids[0], other]], pa.list_(pa.string())))
    assert shared["process"].to_pylist() == [RUNDLL, None]


def test_score_outputs_written_before_process_and_command_line_still_read(tmp_path):
    from training.scoring.alerts import OUTPUT_SCHEMA
    from training.scoring.tables import read_alerts

    row = {"unit": "e1", "score": 2.0, "is_alert": True, "event_ids": ["e1"], "host": "H"}
    old = pa.Table.from_pylist([row], schema=OUTPUT_SCHEMA).drop_columns(
        ["process", "command_line", "reference_scores", "sensor_signature",
         "sensor_signature_id", "sensor_category", "sensor_severity"])
    pq.write_table(old, tmp_path / "old.parquet")
    (tmp_path / "old.jsonl").write_text('{"unit": "e1", "score": 2.0, "is_alert": true, '
                                        '"event_ids": ["e1"], "host": "H"}\n')
    for name in ("old.parquet", "old.jsonl"):
        (read,) = read_alerts(tmp_path / name).to_pylist()
        assert (read["host"], read["process"], read["command_line"]) == ("H", None, None)
        assert read["sensor_signature"] is None and read["sensor_severity"] is None


def test_an_alert_line_is_one_line_whatever_the_logs_hold(datasets):
    from training.scoring.alerts import MAX_SHOWN, alert_line, one_line
    from training.tests.conftest import collect

    # A Windows Message spans lines and tabs; the top-alerts list printed it raw.
    events, _ = collect("windows_events", datasets / LSASS)
    event = next(r for r in events.to_pylist() if r["event_type"] == "security:4656")
    assert "\r\n\r\nSubject:\r\n\tSecurity ID:" in event["Message"]
    row = {"score": 17.779, "unit": event["event_id"], "time": event["timestamp"].isoformat(),
           "event_ids": [event["event_id"]], "event_type": "security:4656", "host": event["host"],
           "user": event["user"], "process": event["process"],
           "reasons": [{"field": "extra fields", "observed": f"Message={event['Message']}",
                        "typical": "their hash bucket at 22%"}]}
    line = alert_line(6, row)
    assert line.isprintable() and "\n" not in line
    observed = one_line(f"Message={event['Message']}")
    assert observed.startswith("Message=A handle to an object was requested. Subject: Security "
                               "ID: S-1-5-21-") and len(observed) == MAX_SHOWN
    assert observed.endswith("...") and f"extra fields {observed} (typical" in line
    # escape sequences and bidi overrides are shown, not obeyed; short printable text is kept
    assert one_line("cmd.exe\x1b[2J\u202egpj.exe") == "cmd.exe\\x1b[2J\\u202egpj.exe"
    assert one_line("powershell -enc  AAA") == "powershell -enc  AAA"
    assert one_line("x" * 8, limit=5) == "xx..."


EVE = "suricata/slips_test6-malicious.suricata.json"


def _verdict(record: dict) -> tuple:
    """What the EVE record itself says of the verdict: (signature, SID, category, severity)."""
    if record["event_type"] == "alert":
        alert = record["alert"]
        return (alert["signature"], str(alert["signature_id"]), alert["category"],
                pytest.approx((4 - alert["severity"]) / 3, abs=1e-6))
    if record["event_type"] == "anomaly":
        return (record["anomaly"]["event"], None, record["anomaly"]["type"], None)
    return (None, None, None, None)


def test_eve_alerts_carry_the_sensors_own_verdict(tmp_path, datasets, registry):
    """Each scored EVE alert carries its signature, SID, category and severity (the rows said
    only `event_type: alert`); every other record carries none."""
    source = [DataSource("s", "suricata_logs", {"path": str(datasets / EVE)})]
    score_events(registry, "tiny", source, tmp_path / "out.parquet")
    rows = pq.read_table(tmp_path / "out.parquet").to_pylist()
    records = [json.loads(line) for line in (datasets / EVE).read_text().splitlines()]
    records = [r for r in records if r["event_type"] != "stats"]  # sensor records: not scored
    assert len(rows) == len(records)
    names = ("sensor_signature", "sensor_signature_id", "sensor_category", "sensor_severity")
    assert [tuple(r[n] for n in names) for r in rows] == [_verdict(r) for r in records]
    signatures = [r["sensor_signature"] for r in rows if r["event_type"] == "alert"]
    assert len(signatures) == 745 and all(s.startswith("ET ") for s in signatures)
    assert ("ET SCAN Suspicious inbound to MSSQL port 1433", "2010935") in {
        (r["sensor_signature"], r["sensor_signature_id"]) for r in rows}


def test_the_verdict_is_context_never_a_model_input(tmp_path, datasets, registry):
    """Renaming every signature and category of an EVE file changes the verdict in the rows
    and not one score: the verdict is output, never a feature."""
    records = [json.loads(line) for line in (datasets / EVE).read_text().splitlines()]
    for record in records:  # each renamed apart: records that differ by it alone stay two
        if "alert" in record:
            alert = record["alert"]
            alert.update(signature=f"renamed {alert['signature']}",
                         category=alert["category"].upper(), signature_id=-alert["signature_id"])
    (tmp_path / "renamed.json").write_text("".join(json.dumps(r) + "\n" for r in records))
    for name, path in (("original", datasets / EVE), ("renamed", tmp_path / "renamed.json")):
        score_events(registry, "tiny", [DataSource("s", "suricata_logs", {"path": str(path)})],
                     tmp_path / f"{name}.parquet")
    before, after = (pq.read_table(tmp_path / f"{n}.parquet") for n in ("original", "renamed"))
    assert after["score"].to_pylist() == before["score"].to_pylist()
    assert after["is_alert"].to_pylist() == before["is_alert"].to_pylist()
    pairs = list(zip(before["sensor_signature"].to_pylist(), before["sensor_signature_id"]
                     .to_pylist(), after["sensor_signature"].to_pylist(),
                     after["sensor_signature_id"].to_pylist()))
    alerts = [p for p, kind in zip(pairs, before["event_type"].to_pylist()) if kind == "alert"]
    assert len(alerts) == 745 and all(
        new == f"renamed {old}" and new_id == f"-{old_id}" for old, old_id, new, new_id in alerts)


def test_the_verdict_is_read_on_detection_records_alone():
    """A field of a verdict's name on a record that is no detection (a CSV's `name` column) is
    no verdict; a list is none either; a unit of many events keeps the verdict they share."""
    events = pa.table({
        "event_id": ["a", "b", "c", "d", "e"],
        "timestamp": pa.array([1_000_000 * s for s in range(5)], pa.timestamp("us", tz="UTC")),
        "event_type": ["alert", "alert", "notice", "conn", "alert"],
        "alert.signature": ["ET SCAN x", "ET SCAN x", None, None, None],
        "alert.signature_id": pa.array([2001, 2001, None, None, None], pa.int64()),
        "note": [None, None, "Scan::Port_Scan", None, None],
        "name": [None, None, None, "a CSV column", None],
        "rule.name": pa.array([None, None, None, None, ["not", "one"]], pa.list_(pa.string())),
        "severity": pa.array([1.0, 1.0, None, 0.5, None], pa.float32()),
    })
    own = pa.array([[i] for i in events["event_id"].to_pylist()], pa.list_(pa.string()))
    rows = unit_context(events, own).to_pylist()
    assert [(r["sensor_signature"], r["sensor_signature_id"], r["sensor_severity"])
            for r in rows] == [("ET SCAN x", "2001", 1.0), ("ET SCAN x", "2001", 1.0),
                               ("Scan::Port_Scan", None, None), (None, None, None),
                               (None, None, None)]
    shared = unit_context(events, pa.array([["a", "b"], ["a", "c"]], pa.list_(pa.string())))
    assert shared["sensor_signature"].to_pylist() == ["ET SCAN x", None]
    (top,) = shared["top_events"].to_pylist()[:1]
    assert [(e["event_id"], e["sensor_signature"]) for e in top] == [("a", "ET SCAN x"),
                                                                     ("b", "ET SCAN x")]
