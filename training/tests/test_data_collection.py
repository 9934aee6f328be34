"""DataCollector: the seed's API, dedup, resume, time range, max_events, quarantine, files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from training.collection.collector import CollectedEvent, DataCollector, DataSource, DataSourceType
from training.collection.schema import CANONICAL_FIELDS
from training.demo.generator import write_demo_file
from training.errors import CheckpointError, ConfigError, NotSupportedError, SourceError
from training.tests.conftest import REPO

SEED_STEP_2 = """
from training.data_collection import DataCollector, DataSource, DataSourceType

# Collect events
source = DataSource(
    name='demo',
    source_type=DataSourceType.JSON_FILE,
    connection_params={'path': 'demo/synthetic_events.json'}
)
collector = DataCollector(sources=[source])
events = list(collector.collect(max_events=10000))
"""


def _jsonl(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def _events(n: int, start: int = 0) -> list[dict]:
    return [{"event_id": f"e{i}", "timestamp": f"2024-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z",
             "source_ip": "10.0.0.1", "dest_ip": "10.0.0.2", "dest_port": 443, "protocol": "tcp",
             "label": "benign" if i % 3 else "malicious", "bytes_sent": i}
            for i in range(start, start + n)]


def _source(path: Path, name: str = "events", **params) -> DataSource:
    return DataSource(name, DataSourceType.JSON_FILE, {"path": str(path), **params})


def test_seed_step_2_collects_every_event_with_fields_and_labels(tmp_path):
    demo = write_demo_file(tmp_path / "demo" / "synthetic_events.json")
    scope: dict = {}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(SEED_STEP_2, scope)  # the collector part of the seed README's step 2, as written
    finally:
        os.chdir(cwd)
    events = scope["events"]
    truth = {e["event_id"]: e for e in json.loads(demo.read_text())["events"]}
    assert len(events) == len(truth) == 10_000
    assert {e.event_id for e in events} == set(truth)
    for event in events[:500]:
        row = event.to_dict()
        original = truth[row["event_id"]]
        assert list(row)[: len(CANONICAL_FIELDS)] == list(CANONICAL_FIELDS)
        for name in ("event_type", "source_ip", "dest_port", "user", "command_line", "domain"):
            assert row[name] == original[name], name
        assert row["is_threat"] == (0 if original["label"] == "benign" else 1)
        assert row["attack_type"] == original["attack_type"]
        assert row["raw_data"] == {k: v for k, v in original.items() if k not in CANONICAL_FIELDS}
        assert row["timestamp"] == original["timestamp"]


def test_one_source_reads_as_a_list_of_one(tmp_path):
    """`DataCollector(source)` raised "'DataSource' object is not iterable" (trial Q)."""
    path = _jsonl(tmp_path / "a.jsonl", _events(3))
    source = _source(path)
    one = DataCollector(source, progress=False)
    assert one.sources == [source] and one.collect_table().num_rows == 3


def test_duplicates_are_dropped_across_sources_and_counted(tmp_path):
    path = _jsonl(tmp_path / "a.jsonl", _events(50))
    collector = DataCollector([_source(path, "one"), _source(path, "two")], progress=False)
    table = collector.collect_table()
    stats = collector.get_stats()
    assert table.num_rows == 50 and stats["duplicates"] == 50
    assert stats["sources"]["two"]["events"] == 0 and stats["sources"]["two"]["duplicates"] == 50


def test_runs_resume_and_pick_up_appended_lines(tmp_path, caplog):
    path = _jsonl(tmp_path / "a.jsonl", _events(40))
    out = tmp_path / "out"
    first = DataCollector([_source(path)], output_dir=out, progress=False)
    assert len(list(first.collect())) == 40
    again = DataCollector([_source(path)], output_dir=out, progress=False)
    assert list(again.collect()) == []
    # A notebook cell run twice got 0 events, silently (trial Q): the resume says so.
    assert (f"{out}: no new event; the 40 events of earlier runs are not delivered again"
            ) in caplog.text
    caplog.clear()
    with open(path, "a") as handle:
        handle.write("".join(json.dumps(e) + "\n" for e in _events(5, start=40)))
    later = DataCollector([_source(path)], output_dir=out, progress=False)
    assert [e.event_id for e in later.collect()] == [f"e{i}" for i in range(40, 45)]
    assert "not delivered again" not in caplog.text  # new events: nothing to warn of
    assert later.get_stats()["events"] == 45  # counters span the resumed runs


def test_max_events_resumes_mid_batch_exactly_once(tmp_path):
    events = _events(97)
    path = _jsonl(tmp_path / "a.jsonl", events[:60])
    other = _jsonl(tmp_path / "b.jsonl", events[60:])
    out = tmp_path / "out"
    collected: list[str] = []
    for _ in range(20):
        collector = DataCollector([_source(path, "a", block_size=512), _source(other, "b")],
                                  output_dir=out, progress=False)
        batch = [e.event_id for e in collector.collect(max_events=13)]
        if not batch:
            break
        assert len(batch) <= 13
        collected += batch
    assert collected == [e["event_id"] for e in events]


def test_a_batch_counts_as_delivered_only_once_the_next_is_requested(tmp_path):
    path = _jsonl(tmp_path / "a.jsonl", _events(30))
    out = tmp_path / "out"
    collector = DataCollector([_source(path, block_size=300)], output_dir=out, progress=False)
    first = next(collector.batches())  # the consumer stops after one batch, before asking again
    again = DataCollector([_source(path, block_size=300)], output_dir=out, progress=False)
    ids = [e.event_id for e in again.collect()]
    assert ids == [f"e{i}" for i in range(30)] and first.num_rows < 30


def test_time_range(tmp_path):
    path = _jsonl(tmp_path / "a.jsonl", _events(120) + [{"event_id": "no-time", "label": "benign"}])
    collector = DataCollector([_source(path)], progress=False)
    table = collector.collect_table(start_date="2024-01-01T00:00:30Z",
                                    end_date=datetime(2024, 1, 1, 0, 1, 15, tzinfo=timezone.utc))
    assert table["event_id"].to_pylist() == [f"e{i}" for i in range(30, 75)]
    assert collector.get_stats()["outside_time_range"] == 120 - 45
    # A record without a time, in a source whose records have one, is quarantined.
    [reject] = collector.quarantined
    assert (reject.line, reject.field) == (121, "timestamp") and "missing" in reject.reason
    with pytest.raises(ConfigError, match="start_date must be before end_date"):
        collector.collect_table(start_date="2024-01-02", end_date="2024-01-01")


def test_bad_records_are_quarantined_with_file_line_field_and_reason(tmp_path):
    lines = [json.dumps(e) for e in _events(6)]
    lines[1] = lines[1][:-5]  # malformed JSON
    lines[3] = json.dumps({**_events(1, 3)[0], "dest_port": 70000})
    lines[4] = json.dumps({**_events(1, 4)[0], "timestamp": "yesterday-ish"})
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    collector = DataCollector([_source(path)], output_dir=out, progress=False)
    assert [e.event_id for e in collector.collect()] == ["e0", "e2", "e5"]
    records = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    assert [(r["line"], r["field"]) for r in records] == [(2, None), (4, "dest_port"), (5, "timestamp")]
    assert records[0]["reason"].startswith("malformed JSON")
    assert records[1]["reason"] == "dest_port = 70000 is not a port in 0..65535"
    assert records[2]["raw"] == lines[4] and records[2]["file"] == str(path)
    stats = collector.get_stats()
    assert stats["quarantined"] == 3 and stats["rows"] == 6


@pytest.mark.parametrize("name", ["events.jsonl", "events.jsonl.gz", "events.json", "events.parquet"])
def test_save_to_file_round_trips(tmp_path, name):
    path = _jsonl(tmp_path / "a.jsonl", [{**e, "extra_field": i, "tags": ["x", str(i)]}
                                         for i, e in enumerate(_events(25))])
    collector = DataCollector([_source(path)], progress=False)
    events = list(collector.collect())
    saved = collector.save_to_file(iter(events), tmp_path / name)
    kind = DataSourceType.PARQUET_FILE if name.endswith(".parquet") else DataSourceType.JSON_FILE
    back = DataCollector([DataSource("back", kind, {"path": str(saved)})], progress=False)
    again = {e.event_id: e for e in back.collect()}
    assert len(again) == 25
    for event in events:
        copy = again[event.event_id].to_dict()
        original = event.to_dict()
        for field in CANONICAL_FIELDS:  # "source" too: the file's own, not "back"
            assert copy[field] == original[field], field
        # The file's "source" column is collection bookkeeping, never an extra field.
        assert copy["raw_data"] == original["raw_data"]
        assert original["raw_data"] == {"extra_field": int(event.event_id[1:]),
                                        "tags": ["x", event.event_id[1:]]}


def test_collect_table_unifies_extra_columns_of_different_sources(tmp_path):
    a = _jsonl(tmp_path / "a.jsonl", [{**e, "port_name": 80} for e in _events(3)])
    b = _jsonl(tmp_path / "b.jsonl", [{**e, "port_name": "http"} for e in _events(3, 3)])
    table = DataCollector([_source(a, "a"), _source(b, "b")], progress=False).collect_table()
    assert table["port_name"].to_pylist() == ["80", "80", "80", "http", "http", "http"]


def test_configuration_errors_name_the_problem(tmp_path):
    with pytest.raises(NotSupportedError, match="splunk sources are not supported yet"):
        DataCollector([DataSource("s", DataSourceType.SPLUNK, {})])
    with pytest.raises(NotSupportedError, match="qradar"):
        DataCollector([DataSource("q", "qradar", {})])
    with pytest.raises(ConfigError, match="unknown source type 'kafka'"):
        DataSource("x", "kafka", {})
    with pytest.raises(ConfigError, match=r"unknown connection_params \['pth'\]"):
        DataCollector([DataSource("x", "json_file", {"pth": "a.json"})])
    with pytest.raises(ConfigError, match="'src_ip' is not a canonical field"):
        DataSource("x", "json_file", {"path": "a"}, field_map={"src_ip": "source_ip"})
        DataCollector([DataSource("x", "json_file", {"path": "a"}, field_map={"src_ip": "source_ip"})])
    with pytest.raises(ConfigError, match="label map entries"):
        DataSource("x", "json_file", {"path": "a"}, label_map={"benign": 2})
    with pytest.raises(ConfigError, match="batch_size must be an integer >= 1, got 0"):
        DataSource("x", "json_file", {"path": "a"}, batch_size=0)
    collector = DataCollector([_source(tmp_path / "missing.jsonl")], progress=False)
    with pytest.raises(SourceError, match="missing.jsonl: no such file or directory"):
        collector.collect_table()


def test_user_field_map_label_map_and_default_label(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("when,src,verdict\n2024-05-01 10:00:00,10.1.1.1,clean\n"
                    "2024-05-01 10:00:01,10.1.1.2,\n2024-05-01 10:00:02,10.1.1.3,evil\n")
    source = DataSource("siem", "csv_file", {"path": str(path)},
                        field_map={"timestamp": "when", "source_ip": "src", "label": "verdict"},
                        label_map={"clean": 0}, default_label="background")
    table = DataCollector([source], progress=False).collect_table()
    assert table["is_threat"].to_pylist() == [0, -1, 1]
    assert table["label"].to_pylist() == ["clean", "background", "evil"]
    assert table["attack_type"].to_pylist() == [None, None, "evil"]
    assert table["source_ip"].to_pylist() == ["10.1.1.1", "10.1.1.2", "10.1.1.3"]
    assert table["timestamp"][0].as_py() == datetime(2024, 5, 1, 10, tzinfo=timezone.utc)


def test_a_fresh_collection_never_overwrites_an_existing_one(tmp_path):
    path = _jsonl(tmp_path / "a.jsonl", _events(5))
    out = tmp_path / "out"
    DataCollector([_source(path)], output_dir=out, progress=False).collect_to()
    with pytest.raises(CheckpointError, match="already holds a collection"):
        DataCollector([_source(path)], output_dir=out, progress=False).collect_to(
            resume_from_checkpoint=False)
    assert (out / "events" / "part-000000.parquet").exists()


def test_collected_event_to_dict_shape():
    event = CollectedEvent("id1", datetime(2024, 1, 2, 3, 4, 5, 600, tzinfo=timezone.utc), "s",
                           "conn", {"history": "ShAD"}, {"label": "Benign", "is_threat": 0,
                                                         "attack_type": None},
                           {"source_ip": "10.0.0.1", "dest_port": 80})
    row = event.to_dict()
    assert row["timestamp"] == "2024-01-02T03:04:05.000600Z"
    assert (row["source_ip"], row["dest_port"], row["user"]) == ("10.0.0.1", 80, None)
    assert (row["label"], row["is_threat"], row["raw_data"]) == ("Benign", 0, {"history": "ShAD"})


def test_cli_reports_bad_usage_with_exit_code_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "training.cli", "collect", "--source", "bogus:x",
                             "--output", str(tmp_path / "o")], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2 and "unknown source type 'bogus'" in result.stderr
    result = subprocess.run([sys.executable, "-m", "training.cli", "collect", "--source",
                             f"json:{tmp_path / 'nope.json'}", "--output", str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 1 and "nope.json: no such file or directory" in result.stderr


def test_parquet_directory_and_resume_by_rows(tmp_path):
    folder = tmp_path / "pq"
    folder.mkdir()
    import pyarrow.parquet as pq

    for k in range(3):
        pq.write_table(pa.Table.from_pylist(_events(10, 10 * k)), folder / f"part{k}.parquet",
                       row_group_size=4)
    out = tmp_path / "out"
    ids: list[str] = []
    while True:
        collector = DataCollector([DataSource("p", "parquet_file", {"path": str(folder)})],
                                  output_dir=out, progress=False)
        got = [e.event_id for e in collector.collect(max_events=7)]
        if not got:
            break
        ids += got
    assert Counter(ids) == Counter(f"e{i}" for i in range(30)) and len(ids) == 30


def test_resuming_with_another_time_range_is_refused(tmp_path):
    # Events outside the first range were consumed (filtered); a wider second range over the
    # same checkpoint would silently never see them, so it must be refused.
    path = _jsonl(tmp_path / "a.jsonl", _events(30))
    out = tmp_path / "out"
    DataCollector([_source(path)], output_dir=out, progress=False).collect_to(
        start_date="2024-01-01T00:00:10Z")
    with pytest.raises(CheckpointError, match="start_date differ"):
        DataCollector([_source(path)], output_dir=out, progress=False).collect_to()


def test_events_carry_the_record_as_read_and_naive_utc_times(tmp_path):
    nested = {"event_id": "n1", "timestamp": "2024-01-01T00:00:05+02:00", "src_ip": "10.0.0.1",
              "alert": {"signature": "ET SCAN", "severity": 2}, "tags": ["a", "b"]}
    path = _jsonl(tmp_path / "a.jsonl", [nested] + _events(3))
    events = list(DataCollector([_source(path)], progress=False).collect(
        start_date=datetime(2023, 12, 31, 22, 0, 0), end_date=datetime(2024, 1, 1, 0, 0, 2)))
    # Naive bounds are UTC: n1 is 22:00:05 UTC; e0 and e1 are inside too, e2 is not.
    assert [e.event_id for e in events] == ["n1", "e0", "e1"]
    assert events[0].raw_data == nested  # as written: nested objects, the original time text
    assert events[0].timestamp == datetime(2023, 12, 31, 22, 0, 5)  # naive, UTC
    assert events[1].raw_data == _events(1)[0]
    # Zeek TSV has no JSON to read again: the record is its fields under their Zeek names.
    zeek = tmp_path / "conn.log"
    zeek.write_text("#separator \\x09\n#path\tconn\n#fields\tts\tuid\tid.orig_h\tid.orig_p\t"
                    "id.resp_h\tid.resp_p\tproto\thistory\n#types\ttime\tstring\taddr\tport\t"
                    "addr\tport\tenum\tstring\n1704067200.5\tC1\t10.0.0.1\t5000\t10.0.0.2\t80\t"
                    "tcp\t-\n")
    event, = DataCollector([DataSource("z", "zeek_logs", {"path": zeek})],
                           progress=False).collect()
    assert event.raw_data == {"ts": 1704067200.5, "uid": "C1", "id.orig_h": "10.0.0.1",
                              "id.orig_p": 5000, "id.resp_h": "10.0.0.2", "id.resp_p": 80,
                              "proto": "tcp"}
    assert event.to_dict()["source_ip"] == "10.0.0.1" and event.timestamp.tzinfo is None


def test_a_collected_event_built_by_hand_as_the_original_was():
    event = CollectedEvent("id1", datetime(2024, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))),
                           "s", "conn", {"source_ip": "10.0.0.1", "dest_port": 80, "label": "bad",
                                         "history": "ShAD"})
    assert event.timestamp == datetime(2024, 1, 2, 3, 4, 5)  # converted to naive UTC
    row = event.to_dict()
    assert (row["timestamp"], row["source_ip"], row["dest_port"], row["label"]) == \
        ("2024-01-02T03:04:05.000000Z", "10.0.0.1", 80, "bad")
    assert row["raw_data"] == {"history": "ShAD"}


def test_a_folder_of_small_logs_is_written_in_few_parts_and_checkpoints(tmp_path):
    """An archive of hourly logs: by default `collect_to` gathers batches into one part per
    checkpoint (every few seconds) instead of a part and a synced checkpoint per file; what
    it collects is what a checkpoint per batch collects."""
    import pyarrow.dataset as ds

    from training.tests.zeek_writer import header, line

    logs = tmp_path / "logs"
    logs.mkdir()
    for hour in range(40):
        start = 1_765_000_000.0 + hour * 3600
        (logs / f"conn.{hour:02d}.log").write_text(
            header(start) + "".join(line(hour * 5 + i, start + i) for i in range(5)))
    source = [DataSource("zeek", "zeek", {"path": str(logs)})]

    def collected(out: Path, **how) -> tuple[pa.Table, dict, int]:
        collector = DataCollector(source, output_dir=out, progress=False, **how)
        events = ds.dataset(collector.collect_to()).to_table().sort_by("event_id")
        return events, collector.get_stats(), len(list((out / "events").iterdir()))

    gathered, stats, parts = collected(tmp_path / "default")
    per_file, per_file_stats, per_file_parts = collected(tmp_path / "each", checkpoint_every=1)
    assert gathered.equals(per_file) and gathered.num_rows == 200
    assert (per_file_parts, per_file_stats["checkpoints"]) == (40, 41)  # and the last
    assert parts == stats["checkpoints"] < 5 and stats["batches"] == 40
