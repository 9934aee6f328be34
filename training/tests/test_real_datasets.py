"""Every data file in ../shared/datasets loads: exact row counts, label counts, sample values.

Counts are computed here independently from the raw files (plain splitting and the json/csv
modules), and checked against the figures the datasets' READMEs state where they state them.
"""

from __future__ import annotations

import csv
import json
import zipfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from training.sources.presets import NSL_KDD_COLUMNS as NSL_KDD_PRESET_COLUMNS
from training.sources.presets import NSL_KDD_FIELDS
from training.tests.conftest import DATASETS, collect

# The NSL-KDD column names live where users reach them (--column-names nsl_kdd).
NSL_KDD_COLUMNS = list(NSL_KDD_PRESET_COLUMNS)


def _manifest_files() -> list[str]:
    manifest = DATASETS / "MANIFEST.tsv"
    if not manifest.exists():
        return []
    rows = manifest.read_text().splitlines()[1:]
    return [r.split("\t")[0] for r in rows if not r.split("\t")[0].endswith((".md", ".config"))]


def expected_class(label: str | None) -> int:
    """The issue's rule, written out independently of training.collection.schema.LabelMap."""
    text = (label or "").strip().lower()
    if text in ("benign", "normal"):
        return 0
    if text in ("background", "unknown", "", "-", "(empty)"):
        return -1
    return 1


def read_zeek_tsv(path: Path) -> tuple[list[dict], int]:
    """Rows of a Zeek TSV log as dicts, and the number of lines with the wrong field count."""
    fields: list[str] = []
    rows, malformed = [], 0
    for raw in path.read_bytes().split(b"\n"):
        line = raw.rstrip(b"\r")
        if not line.strip():
            continue
        if line.lstrip().startswith(b"#"):
            if line.startswith(b"#fields"):
                fields = line.decode().split("\t")[1:]
            continue
        parts = line.decode("utf-8", "replace").split("\t")
        if len(parts) == len(fields):
            rows.append(dict(zip(fields, parts)))
        else:
            malformed += 1
    return rows, malformed


def read_json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def expected(relative: str, path: Path) -> tuple[str, dict, list[dict], int, list]:
    """(source type, DataSource kwargs, raw records, malformed count, raw labels)."""
    if relative.startswith("suricata/"):
        records = read_json_lines(path)
        labels = ["alert" if r["event_type"] == "alert" else None for r in records]
        return "suricata_logs", {}, records, 0, labels
    if relative.startswith("iot23/"):
        with open(path, newline="") as handle:
            records = list(csv.DictReader(handle))
        return "csv_file", {}, records, 0, [r["label"] for r in records]
    if relative.startswith("nsl_kdd/"):
        with open(path, newline="") as handle:
            records = [dict(zip(NSL_KDD_COLUMNS, row)) for row in csv.reader(handle)]
        kwargs = {"connection_params": {"has_header": False, "column_names": NSL_KDD_COLUMNS},
                  "field_map": NSL_KDD_FIELDS}
        return "csv_file", kwargs, records, 0, [r["label"] for r in records]
    if path.read_bytes().lstrip().startswith(b"#"):
        records, malformed = read_zeek_tsv(path)
    else:
        records, malformed = read_json_lines(path), 0
    return "zeek_logs", {}, records, malformed, [r.get("label") for r in records]


@pytest.mark.parametrize("relative", [f for f in _manifest_files() if not f.endswith(".zip")])
def test_every_file_loads_with_exact_counts(datasets, relative):
    path = datasets / relative
    source_type, kwargs, records, malformed, labels = expected(relative, path)
    table, collector = collect(source_type, path, deduplicate=False, **kwargs)
    assert table.num_rows == len(records)
    assert len(collector.quarantined) == malformed
    assert collector.get_stats()["rows"] == len(records) + malformed
    assert Counter(table["is_threat"].to_pylist()) == Counter(expected_class(x) for x in labels)


@pytest.mark.parametrize("zip_name", [f for f in _manifest_files() if f.endswith(".zip")])
def test_windows_recordings_load(datasets, tmp_path, zip_name):
    with zipfile.ZipFile(datasets / zip_name) as archive:
        archive.extractall(tmp_path)
    (extracted,) = tmp_path.glob("*.json")
    records = read_json_lines(extracted)
    table, collector = collect("windows_events", extracted, default_label="malicious",
                               deduplicate=False)
    assert table.num_rows == len(records)
    assert collector.quarantined == []
    assert set(table["is_threat"].to_pylist()) == {1}  # the whole file is the attack window
    channels = Counter(r["Channel"].split("/")[0].split("-")[-1].lower() + ":" + str(r["EventID"])
                       for r in records)
    assert Counter(table["event_type"].to_pylist()) == channels


def test_readme_stated_label_counts(datasets):
    sme = datasets / "slips_ctu_sme_11_labeled_zeek/zeek-labeled/conn.log.labeled"
    table, _ = collect("zeek_logs", sme)
    assert Counter(table["label"].to_pylist()) == {"Malicious": 719, "Benign": 44, "Unknown": 3}
    assert Counter(table["is_threat"].to_pylist()) == {1: 719, 0: 44, -1: 3}

    njrat = datasets / "stratosphere/001-zeek-scenario-malicious/labeled-conn.log"
    table, _ = collect("zeek_logs", njrat)
    assert Counter(table["label"].to_pylist()) == {"Background": 739, "Malicious": 244, "Benign": 9}
    # The folder holds the same flows unlabeled too (conn.log, read first): the labeled copies
    # are the duplicates dropped, and they are counted as such (trial H, D3).
    from training.data_collection import DataCollector, DataSource
    from training.pipeline.inputs import labels_lost

    table, collector = collect("zeek_logs", njrat.parent)
    assert Counter(table["is_threat"].to_pylist()) == {-1: 992}
    stats = collector.get_stats()
    assert (stats["duplicates"], stats["labeled_duplicates"]) == (992, 253)
    assert labels_lost(table, collector.labeled_duplicates) == 253
    # The labeled file twice: its duplicates carry labels, but no kept event lacks one.
    twice = DataCollector([DataSource(n, "zeek_logs", {"path": str(njrat)}) for n in "ab"],
                          progress=False)
    table = twice.collect_table()
    assert twice.get_stats()["labeled_duplicates"] == 253
    assert labels_lost(table, twice.labeled_duplicates) == 0

    kdd = datasets / "nsl_kdd/KDDTrain+_20Percent.txt"
    table, _ = collect("csv_file", kdd, connection_params={"has_header": False,
                                                           "column_names": NSL_KDD_COLUMNS})
    assert table.num_rows == 25_192
    assert Counter(table["is_threat"].to_pylist()) == {0: 13_449, 1: 11_743}

    eve = datasets / "suricata/slips_test6-malicious.suricata.json"
    table, _ = collect("suricata_logs", eve)
    assert table.num_rows == 5_000
    assert Counter(table["is_threat"].to_pylist()) == {1: 745, -1: 4_255}


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(timezone.utc)


def test_zeek_tsv_values(datasets):
    table, _ = collect("zeek_logs", datasets / "stratosphere/008-zeek-mixed/data/conn.log.labeled")
    row = table.slice(0, 1).to_pylist()[0]
    assert row["timestamp"] == datetime.fromtimestamp(1655071198.444458, timezone.utc)
    assert row["event_id"] == "conn:CHLXQF2OBY4onAR0Ug"
    assert row["event_type"] == "conn"
    assert (row["source_ip"], row["source_port"], row["dest_ip"], row["dest_port"]) == (
        "147.32.81.167", 62771, "40.74.108.123", 443)
    assert (row["protocol"], row["service"], row["conn_state"]) == ("tcp", "ssl", "SF")
    assert (row["bytes_sent"], row["bytes_received"]) == (1596, 4039)
    assert (row["packets_sent"], row["packets_received"]) == (14, 16)
    assert row["duration"] == pytest.approx(1.135424)
    assert row["direction"] == "outbound"  # local_orig T, local_resp F
    assert (row["label"], row["is_threat"], row["attack_type"]) == ("Benign", 0, "Microsoft")
    assert row["community_id"].startswith("1:") and len(row["community_id"]) == 30
    assert (row["history"], row["missed_bytes"], row["tunnel_parents"]) == ("ShADdaFf", 5138, [])
    attack = table.slice(1, 1).to_pylist()[0]
    assert (attack["is_threat"], attack["attack_type"], attack["direction"]) == (
        1, "External-Attack-to-Device", "inbound")


def test_zeek_tsv_quirks(datasets):
    # conn.log starts with a tab before "#separator"; unset "-" fields are null.
    table, _ = collect("zeek_logs", datasets / "slips_zeek_tsv_test10/conn.log")
    assert table.num_rows == 141
    row = table.slice(4, 1).to_pylist()[0]
    assert row["source_ip"] == "2001:718:2:1663:ff4e:393b:a91e:d379"
    assert row["duration"] is None and row["bytes_sent"] is None
    assert row["local_orig"] is None and row["direction"] is None
    # notice.log line 21 lost a tab (23 fields instead of 26): quarantined, the rest collected.
    table, collector = collect("zeek_logs", datasets / "slips_zeek_tsv_test10/notice.log")
    assert table.num_rows == 12
    (reject,) = collector.quarantined
    assert (reject.line, reject.reason) == (21, "expected 26 fields, found 23")
    assert "SSH::Password_Guessing" in reject.raw


def test_zeek_json_values(datasets):
    table, _ = collect("zeek_logs", datasets / "slips_zeek_json_test9/conn.log")
    first = read_json_lines(datasets / "slips_zeek_json_test9/conn.log")[0]
    row = table.slice(0, 1).to_pylist()[0]
    assert row["event_id"] == f"conn:{first['uid']}"
    assert row["source_ip"] == first["id.orig_h"] and row["dest_port"] == first["id.resp_p"]
    assert row["timestamp"] == datetime.fromtimestamp(first["ts"], timezone.utc)
    dns, _ = collect("zeek_logs", datasets / "slips_zeek_json_test9/dns.log")
    assert set(dns["event_type"].to_pylist()) == {"dns"}
    query = read_json_lines(datasets / "slips_zeek_json_test9/dns.log")[0].get("query")
    assert dns["domain"][0].as_py() == query


def test_suricata_values(datasets):
    table, _ = collect("suricata_logs", datasets / "suricata/slips_test6-malicious.suricata.json")
    alert = table.slice(0, 1).to_pylist()[0]
    assert alert["timestamp"] == _utc("2021-06-06T15:59:46.457984+02:00")
    assert (alert["source_ip"], alert["source_port"], alert["dest_ip"], alert["dest_port"]) == (
        "78.36.196.213", 51698, "192.168.1.129", 445)
    assert alert["protocol"] == "tcp" and alert["event_type"] == "alert"
    assert alert["attack_type"] == "ET CINS Active Threat Intelligence Poor Reputation IP group 89"
    assert (alert["label"], alert["is_threat"]) == ("Misc Attack", 1)
    assert alert["severity"] == pytest.approx(2 / 3)
    assert (alert["bytes_sent"], alert["packets_sent"]) == (60, 1)
    assert alert["alert.signature_id"] == 2403388
    flows = table.filter(pc.equal(table["event_type"], "flow"))
    assert set(flows["is_threat"].to_pylist()) == {-1}


def test_csv_values(datasets):
    table, _ = collect("csv_file", datasets / "iot23/CTU-Malware-Capture-44-1-labeled.csv")
    row = table.slice(0, 1).to_pylist()[0]
    assert row["timestamp"] == datetime.fromtimestamp(1547150789.067208, timezone.utc)
    assert (row["source_ip"], row["dest_ip"], row["dest_port"]) == ("192.168.1.199", "46.101.251.172", 80)
    assert (row["bytes_sent"], row["bytes_received"]) == (149, 171750)
    assert (row["label"], row["is_threat"], row["attack_type"]) == ("Malicious", 1, "C&C-FileDownload")
    assert row["uid"] == "CzsY0D4B96NTr8m7ld" and row["history"] == "ShADadttfF"


def test_nsl_kdd_values(datasets):
    table, _ = collect("csv_file", datasets / "nsl_kdd/KDDTrain+_20Percent.txt",
                       connection_params={"has_header": False, "column_names": NSL_KDD_COLUMNS},
                       field_map=NSL_KDD_FIELDS)
    with open(datasets / "nsl_kdd/KDDTrain+_20Percent.txt", newline="") as handle:
        first = next(csv.reader(handle))
    row = table.slice(0, 1).to_pylist()[0]
    assert (row["protocol"], row["service"], row["conn_state"]) == (first[1], first[2], first[3])
    assert (row["bytes_sent"], row["bytes_received"]) == (int(first[4]), int(first[5]))
    assert row["timestamp"] is None
    assert row["label"] == first[41] and row["is_threat"] == expected_class(first[41])
    assert row["dst_host_srv_rerror_rate"] == float(first[40])


def test_windows_values(datasets, tmp_path):
    with zipfile.ZipFile(datasets / "windows_otrf_security_datasets/cmd_psexec_lsa_secrets_dump.zip") as z:
        z.extractall(tmp_path)
    (path,) = tmp_path.glob("*.json")
    table, _ = collect("windows_events", path)
    first = read_json_lines(path)[0]
    row = table.slice(0, 1).to_pylist()[0]
    assert row["event_type"] == "security:1102" and row["host"] == "WORKSTATION5"
    # TimeCreated is local (UTC-4): the Sysmon records of that host, with UtcTime, say so
    assert row["timestamp"] == datetime(2020, 10, 19, 7, 30, 41, 104000, tzinfo=timezone.utc)
    assert row["Message"] == first["Message"]
    created = table.filter(pc.equal(table["event_type"], "security:4688")).to_pylist()
    assert created and all(r["process"] and r["command_line"] for r in created)


def test_a_zipped_recording_is_collected_as_the_file_inside(datasets, tmp_path):
    # OTRF ships each recording as a zip of one NDJSON file: read as it is, it gives the same
    # events as the extracted file (it used to be refused as binary data).
    recording = datasets / "windows_otrf_security_datasets/cmd_psexec_lsa_secrets_dump.zip"
    with zipfile.ZipFile(recording) as z:
        z.extractall(tmp_path)
    (path,) = tmp_path.glob("*.json")
    zipped, _ = collect("windows_events", recording)
    extracted, _ = collect("windows_events", path)
    assert zipped.num_rows == extracted.num_rows == 277
    assert zipped.drop_columns(["source"]).equals(extracted.drop_columns(["source"]))


@pytest.mark.parametrize("recording", ["cmd_psexec_lsa_secrets_dump",
                                       "covenant_copy_smb_CreateRequest",
                                       "psh_lsass_memory_dump_comsvcs"])
def test_windows_local_times_are_put_in_utc_by_the_hosts_own_offset(datasets, recording):
    # Security and System records carry only TimeCreated, in the host's local time; Sysmon
    # records carry UtcTime beside it. Taken as UTC, a 12-second recording spanned 4 hours.
    path = datasets / f"windows_otrf_security_datasets/{recording}.zip"
    table, _ = collect("windows_events", path)
    times = table["timestamp"].cast(pa.int64()).to_numpy() / 1e6
    assert times.max() - times.min() < 120  # each recording lasts seconds to a minute
    tiny, _ = collect("windows_events", path, connection_params={"block_size": 4096})
    assert tiny["timestamp"].equals(table["timestamp"])  # whatever the batches


def test_a_windows_host_without_utc_time_keeps_time_created_and_says_so(tmp_path, caplog):
    path = tmp_path / "security.json"
    path.write_text('{"TimeCreated": "2020-10-19 03:30:41.104", "Hostname": "WS5", '
                    '"Channel": "Security", "EventID": 4688}\n')
    table, _ = collect("windows_events", path)
    assert table["timestamp"].to_pylist() == [
        datetime(2020, 10, 19, 3, 30, 41, 104000, tzinfo=timezone.utc)]
    assert f"{path}: line 1: TimeCreated taken as UTC for host WS5: no record of that host in " \
        "this file carries UtcTime" in caplog.text
