"""A mapped field holding an object, or a list where the format writes one value
(`training.collection.value_shapes`): quarantined with file, line and field like a value that
does not convert, while containers (ECS's `source: {ip: ...}`) and Zeek's sets are read as
before (trial D5)."""

from __future__ import annotations

import json
import re

import orjson
import pytest

from training.collection.canonical_record import canonical_record
from training.collection.collector import DataCollector, DataSource
from training.collection.event_dicts import EVENT_SOURCE, events_table
from training.errors import SchemaError
from training.tests.conftest import collect

OBJECT = "is an object where one value belongs"


@pytest.fixture
def conn_lines(datasets) -> list[dict]:
    """The first 12 records of a real Zeek JSON conn.log."""
    lines = (datasets / "slips_zeek_json_test9" / "conn.log").read_text().splitlines()
    return [json.loads(line) for line in lines[:12]]


def _write(path, records: list[dict]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_a_zeek_field_holding_an_object_is_quarantined_with_file_line_and_field(conn_lines,
                                                                               tmp_path):
    bad = [dict(r) for r in conn_lines]
    bad[4]["proto"] = {"x": 1}  # line 5
    bad[7]["orig_bytes"] = {"a": {"b": 2}}  # line 8
    bad[9]["service"] = {}  # line 10: flattened into no column at all, not into a null
    log = _write(tmp_path / "conn.log", bad)
    collector = DataCollector([DataSource("zeek0", "zeek_logs", {"path": log})],
                              output_dir=tmp_path / "out", progress=False)
    events = collector.collect_to()
    quarantine = [orjson.loads(line) for line in
                  (tmp_path / "out" / "quarantine.jsonl").read_bytes().splitlines()]
    assert [(q["file"], q["line"], q["field"], q["reason"]) for q in quarantine] == [
        (log, 5, "proto", f"proto = '{{\"x\":1}}' {OBJECT}"),
        (log, 8, "orig_bytes", f"orig_bytes = '{{\"a\":{{\"b\":2}}}}' {OBJECT}"),
        (log, 10, "service", f"service = '{{}}' {OBJECT}"),
    ]
    stats = collector.get_stats()
    assert (stats["events"], stats["quarantined"]) == (9, 3)
    assert stats["quarantine_reasons"] == {"proto": 1, "orig_bytes": 1, "service": 1}
    table, _ = collect("parquet", events)
    assert not [c for c in table.column_names if c.startswith(("proto.", "orig_bytes."))]
    clean, _ = collect("zeek_logs", _write(tmp_path / "clean" / "conn.log", conn_lines))
    kept = [r for i, r in enumerate(clean["event_id"].to_pylist()) if i not in (4, 7, 9)]
    assert table["event_id"].to_pylist() == kept
    assert table["protocol"].to_pylist() == [r["proto"] for i, r in enumerate(conn_lines)
                                             if i not in (4, 7, 9)]


def test_a_list_where_zeek_writes_one_value_is_quarantined(conn_lines, tmp_path):
    mixed = [dict(r) for r in conn_lines[:4]]
    mixed[1]["proto"] = ["tcp"]  # among text values: the block reads the field as text
    mixed[2]["duration"] = [1, 2]
    table, collector = collect("zeek_logs", _write(tmp_path / "conn.log", mixed))
    assert [(r.line, r.field, r.reason) for r in collector.quarantined] == [
        (2, "proto", "proto = '[\"tcp\"]' is a list where Zeek writes one value"),
        (3, "duration", "duration = '[1,2]' is a list where Zeek writes one value"),
    ]
    assert table["protocol"].to_pylist() == [mixed[0]["proto"], mixed[3]["proto"]]
    every = [{**r, "proto": [r["proto"]]} for r in conn_lines[:3]]  # a list in every record
    table, collector = collect("zeek_logs", _write(tmp_path / "all" / "conn.log", every))
    assert table.num_rows == 0 and [r.line for r in collector.quarantined] == [1, 2, 3]


def test_zeek_sets_stay_lists_and_real_zeek_json_loses_nothing(datasets):
    table, collector = collect("zeek_logs", datasets / "slips_zeek_json_test9")
    assert collector.quarantined == [] and table.num_rows == collector.get_stats()["rows"]
    files = table.filter(table["event_type"].to_numpy(zero_copy_only=False) == "files")
    first = json.loads((datasets / "slips_zeek_json_test9" / "files.log").open().readline())
    assert files["source_ip"][0].as_py() == first["tx_hosts"][0]  # a set: its first address


def test_ecs_containers_still_flatten_and_a_leaf_holding_an_object_is_quarantined(tmp_path):
    doc = {"@timestamp": "2024-06-01T00:00:00Z", "source": {"ip": "10.0.0.1", "port": 5},
           "destination": {"ip": "10.0.0.2", "port": 80}, "network": {"transport": "tcp"},
           "host": {"name": "web1", "os": {"family": "linux"}}, "service": {"type": "zeek"},
           "user": {"id": "7"}, "process": {"pid": 3}, "event": {"action": "connection"}}
    bad = {**doc, "network": {"transport": {"name": "tcp"}}}
    empty = {**doc, "network": {"transport": {}}}
    bare = {**doc, "user": {}}  # a container may be empty
    table, collector = collect("json_file", _write(tmp_path / "e.json", [doc, bad, empty, bare]))
    assert [(r.line, r.field, r.reason) for r in collector.quarantined] == [
        (2, "network.transport", f"network.transport = '{{\"name\":\"tcp\"}}' {OBJECT}"),
        (3, "network.transport", f"network.transport = '{{}}' {OBJECT}")]
    assert table.num_rows == 2
    row = table.to_pylist()[0]
    assert (row["source_ip"], row["source_port"], row["dest_port"], row["protocol"],
            row["host"], row["event_type"]) == ("10.0.0.1", 5, 80, "tcp", "web1", "connection")
    assert (row["service.type"], row["host.os.family"], row["user.id"]) == ("zeek", "linux", "7")


@pytest.mark.parametrize("value, shown", [({"x": 1}, '{"x":1}'), ({}, "{}"),
                                          ({"x": {}}, '{"x":{}}')])
def test_the_per_event_path_declines_what_the_batch_path_quarantines(value, shown):
    event = {"timestamp": "2024-06-01T00:00:00Z", "protocol": value}
    assert canonical_record(event, EVENT_SOURCE) is None
    with pytest.raises(SchemaError, match=rf"event 0: protocol = '{re.escape(shown)}' {OBJECT}"):
        events_table([event])
    container = {"timestamp": "2024-06-01T00:00:00Z", "host": {"name": "web1"}}
    assert canonical_record(container, EVENT_SOURCE).values["host"] == "web1"
