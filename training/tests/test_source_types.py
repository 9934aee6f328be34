"""A file given the wrong source type is refused, naming the file, the type given and the type
its records look like (`Source.check_format`, `training.sources.sniff`), on every path that
reads sources: collect, pipeline, batch score and --follow; files of the right type still read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.cli.main import main
from training.errors import ConfigError, PipelineError
from training.scoring.tail import Tail
from training.sources import DataSource
from training.sources.sniff import looks_like, type_prefix
from training.sources.config import DataSourceType
from training.tests.conftest import collect

LSASS = "windows_otrf_security_datasets/psh_lsass_memory_dump_comsvcs.zip"
EVE = "suricata/magnc_server_eve.json"
ZAT = "zeek_zat/json"


@pytest.mark.parametrize("given, path, refused, looks, use", [
    ("zeek_logs", LSASS, LSASS, "Windows events", "windows"),
    ("suricata_logs", ZAT, "zeek_zat/json/capture_loss.log", "Zeek", "zeek"),
    ("zeek_logs", EVE, EVE, "Suricata EVE", "suricata"),
    ("windows_events", EVE, EVE, "Suricata EVE", "suricata"),
])
def test_a_real_file_of_another_format_is_refused_naming_what_it_looks_like(
        datasets, given, path, refused, looks, use):
    with pytest.raises(ConfigError) as caught:
        collect(given, datasets / path)
    message = str(caught.value)
    assert message.startswith(f"{datasets / refused}: given as {type_prefix(given)}:PATH, but "
                              "its records carry none of the fields of ")
    assert message.endswith(f"; this looks like {looks}: use {use}:PATH")


@pytest.mark.parametrize("given, path, events", [
    ("zeek_logs", ZAT, 313 + 50 + 10),  # loaded_scripts.log (50, no time) is Zeek by its name
    ("suricata_logs", EVE, 253),
    ("windows_events", LSASS, 175),
    ("json_file", EVE, 253),  # generic JSON takes any fields
])
def test_files_of_the_type_given_are_read_as_before(datasets, given, path, events):
    table, collector = collect(given, datasets / path)
    assert table.num_rows == events and not collector.quarantined


def test_a_file_with_none_of_any_formats_fields_says_to_read_it_as_json(tmp_path):
    path = tmp_path / "conn.log"  # named as a Zeek log, yet holds no Zeek field
    path.write_text(json.dumps({"when": 1.7e9, "who": "10.0.0.1"}) + "\n")
    with pytest.raises(ConfigError, match=r"conn\.log: given as zeek:PATH, .* \(ts, uid, "
                                          r"id\.orig_h, _path\); give zeek: only Zeek files, "
                                          r"and read other JSON as json:PATH"):
        collect("zeek_logs", path)
    table, _ = collect("json_file", path, field_map={"timestamp": "when", "source_ip": "who"})
    assert table.num_rows == 1


def test_looks_like_picks_the_format_with_most_of_its_fields():
    assert looks_like({"timestamp", "event_type", "flow_id", "src_ip"}) is DataSourceType.SURICATA_LOGS
    assert looks_like({"ts", "uid", "id.orig_h"}) is DataSourceType.ZEEK_LOGS
    assert looks_like({"EventID", "Channel"}) is DataSourceType.WINDOWS_EVENTS
    assert looks_like({"name", "size"}) is None


def test_collect_pipeline_and_score_refuse_it_with_one_error_line(datasets, tmp_path, capsys):
    from training.tests.test_follow import _register

    _register(tmp_path)
    eve = datasets / EVE
    said = (f"error: {eve}: given as zeek:PATH, but its records carry none of the fields of "
            "Zeek (ts, uid, id.orig_h, _path); this looks like Suricata EVE: use suricata:PATH\n")
    for command in (
        ["collect", "--source", f"zeek:{eve}", "--output", str(tmp_path / "collected")],
        ["pipeline", "--source", f"zeek:{eve}", "--workdir", str(tmp_path / "wd"),
         "--epochs", "1"],
        ["score", "--registry-dir", str(tmp_path / "models"), "--model", "vae",
         "--input", f"zeek:{eve}", "--output", str(tmp_path / "s.parquet")],
    ):
        assert main(command) == 2, command[0]
        assert capsys.readouterr().err.endswith(said), command[0]
    assert not (tmp_path / "s.parquet").exists()


def test_follow_refuses_it_too(datasets, tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "eve.json").write_bytes((datasets / EVE).read_bytes())
    tail = Tail([DataSource("z", "zeek", {"path": str(folder)})])
    with pytest.raises(ConfigError, match=r"eve\.json: given as zeek:PATH, .* this looks like "
                                          r"Suricata EVE: use suricata:PATH"):
        list(tail.poll())


def test_loaded_scripts_is_zeek_by_its_name_only(tmp_path):
    path = tmp_path / "loaded_scripts.log"
    path.write_text(json.dumps({"name": "/opt/zeek/share/base/init-bare.zeek"}) + "\n")
    table, _ = collect("zeek_logs", path)
    assert table["event_type"].to_pylist() == ["loaded_scripts"]
    with pytest.raises(ConfigError, match="give zeek: only Zeek files"):
        collect("zeek_logs", Path(path.rename(tmp_path / "scripts.json")))


def test_a_csv_with_no_field_of_its_field_map_is_refused_as_json_is(tmp_path, capsys):
    # Trial F D7: the CSV was read into events without time or addresses, and scored.
    (tmp_path / "odd.csv").write_text("a,b,c\n1,2,3\n4,5,6\n")
    (tmp_path / "odd.json").write_text('{"a": 1, "b": 2, "c": 3}\n{"a": 4, "b": 5, "c": 6}\n')
    said = {}
    for kind in ("csv", "json"):
        path = tmp_path / f"odd.{kind}"
        code = main(["collect", "--source", f"{kind}:{path}", "--output", str(tmp_path / kind)])
        said[kind] = (code, capsys.readouterr().err)
    assert said["csv"] == (2, f"error: {tmp_path / 'odd.csv'}: no record has a field of the "
                              "csv: field map (a time, address or event type such as "
                              "timestamp, @timestamp, source.ip), only a, b, c; name its fields "
                              "with --field-map, e.g. --field-map timestamp=FIELD,"
                              "source_ip=FIELD\n")
    assert said["json"] == (2, said["csv"][1].replace("odd.csv", "odd.json").replace(
        "the csv:", "the json:"))
    table, _ = collect("csv", tmp_path / "odd.csv", field_map={"source_port": "a"})
    assert table["source_port"].to_pylist() == [1, 4]


def test_nsl_kdd_read_without_its_preset_field_map_is_refused(datasets):
    from training.sources.presets import NSL_KDD_COLUMNS, NSL_KDD_FIELDS

    path = datasets / "nsl_kdd" / "KDDTrain+_20Percent.txt"
    named = {"has_header": False, "column_names": [f"f{i}" for i in range(43)]}
    with pytest.raises(ConfigError, match=r"KDDTrain\+_20Percent\.txt: no record has a field "
                                          r"of the csv: field map .* only f0, f1, f10, .*; "
                                          "name its fields with --field-map"):
        collect("csv", path, connection_params=named)
    table, _ = collect("csv", path, field_map=NSL_KDD_FIELDS, connection_params={
        "has_header": False, "column_names": list(NSL_KDD_COLUMNS)})
    assert table.num_rows == 25_192 and table["protocol"].null_count == 0


def _windows_records(datasets: Path) -> list[dict]:
    """The OTRF LSASS recording's records (JSON Lines inside its zip)."""
    import zipfile

    with zipfile.ZipFile(datasets / LSASS) as archive:
        text = archive.read(archive.namelist()[0])
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_a_csv_of_windows_events_is_not_pointed_to_windows_which_reads_json_only(
        datasets, tmp_path, capsys):
    # Reviewer: it was told "this looks like Windows events: use windows:PATH", and windows:
    # then failed on it with "invalid JSON document at line 1".
    import csv

    records = _windows_records(datasets)
    path = tmp_path / "events.csv"
    rows = [(r["EventID"], r["Channel"], r["Hostname"], " ".join(r["Message"].split()))
            for r in records]
    with path.open("w", newline="") as out:  # an Event Viewer-style export: one line a record
        writer = csv.writer(out)
        writer.writerow(["EventID", "Channel", "Computer", "Message"])
        writer.writerows(rows)
    with pytest.raises(PipelineError, match=r"invalid JSON document at line 1"):
        collect("windows", path)  # why it must not be suggested
    assert main(["collect", "--source", f"csv:{path}", "--output", str(tmp_path / "c")]) == 2
    assert capsys.readouterr().err == (
        f"error: {path}: no record has a field of the csv: field map (a time, address or event "
        "type such as timestamp, @timestamp, source.ip), only Channel, Computer, EventID, "
        "Message; this looks like Windows events, but windows: reads JSON only, not CSV: name "
        "its columns with --field-map, e.g. --field-map event_type=EventID,host=Computer, or "
        "export the records as JSON and read that as windows:PATH\n")
    # Both ways out read it: the field map the message gives, and the records as JSON.
    table, _ = collect("csv", path, field_map={"event_type": "EventID", "host": "Computer"})
    # 184 records, 167 distinct rows once their times are left out (duplicates are dropped)
    assert len(records) == 184 and table.num_rows == len(set(rows)) == 167
    assert table["host"].to_pylist()[0] == records[0]["Hostname"]
    exported = tmp_path / "events.json"
    exported.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert collect("windows", exported)[0].num_rows == 175  # as the zip reads (test above)


def test_a_json_file_of_windows_events_is_still_pointed_to_windows(datasets, tmp_path):
    path = tmp_path / "events.json"
    path.write_text("".join(json.dumps({k: r[k] for k in ("EventID", "Channel", "Message")})
                            + "\n" for r in _windows_records(datasets)))
    with pytest.raises(ConfigError, match=r"; this looks like Windows events: use windows:PATH$"):
        collect("json", path)
    assert collect("windows", path)[0].num_rows > 0
