"""Windows event times and users (`training.sources.windows_events`, `windows_clock`,
`windows_users`), on the OTRF recordings in ../shared/datasets and small hand-made records."""

from __future__ import annotations

import json
import shutil
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from training.collection.collector import DataCollector
from training.errors import CheckpointError
from training.scoring.tail import Tail
from training.sources.config import DataSource
from training.tests.conftest import collect

OTRF = "windows_otrf_security_datasets"
PSEXEC, LSASS, COVENANT = ("cmd_psexec_lsa_secrets_dump", "psh_lsass_memory_dump_comsvcs",
                           "covenant_copy_smb_CreateRequest")
MINIDUMP_UTC = datetime(2020, 10, 18, 23, 50, 5, 910000, tzinfo=timezone.utc)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


def local(value: str | datetime) -> datetime:
    """A local time as read (text, or a timestamp the JSON reader parsed) marked as UTC."""
    value = datetime.fromisoformat(value) if isinstance(value, str) else value
    return value.replace(tzinfo=timezone.utc)


def _minidump_times(table: pa.Table) -> dict[str, datetime]:
    return {r["event_type"]: r["timestamp"] for r in table.to_pylist()
            if "MiniDump" in (r["command_line"] or "")}


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_two_recordings_of_one_host_each_keep_their_own_offset(datasets, tmp_path, caplog):
    # psexec's TimeCreated is UTC-4; psh_lsass's is a 12-hour clock without AM/PM (07:50
    # beside UtcTime 23:50). With one offset per host, psh_lsass's Security records were
    # put 12 h away from its Sysmon records once psexec was read first.
    for name in (PSEXEC, LSASS):
        shutil.copy(datasets / OTRF / f"{name}.zip", tmp_path)
    table, _ = collect("windows_events", tmp_path)
    assert _minidump_times(table) == {"security:4688": MINIDUMP_UTC, "sysmon:1": MINIDUMP_UTC}
    first = table.to_pylist()[0]  # psexec's audit log cleared, TimeCreated 03:30:41.104
    assert (first["event_type"], first["timestamp"]) == ("security:1102",
                                                         utc(2020, 10, 19, 7, 30, 41, 104000))
    warned = [r.getMessage() for r in caplog.records if "12-hour clock" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith(
        f"{tmp_path / LSASS}.zip: line 37: host WORKSTATION5: its local time lies -16:00 from "
        "UtcTime")


def test_follow_learns_each_files_offsets_as_collect_does(datasets, tmp_path):
    # score --follow reads through Tail: it used to skip the file's read-ahead and carry a
    # host's offset from one file to the next.
    for name in (PSEXEC, LSASS):
        with zipfile.ZipFile(datasets / OTRF / f"{name}.zip") as z:
            z.extractall(tmp_path)
    tail = Tail([DataSource("win", "windows_events", {"path": str(tmp_path)})])
    table = pa.concat_tables([read.canonical.table for read in tail.poll()],
                             promote_options="default")
    assert _minidump_times(table) == {"security:4688": MINIDUMP_UTC, "sysmon:1": MINIDUMP_UTC}


def test_an_offset_no_time_zone_has_is_refused_and_said(tmp_path, caplog):
    # TimeCreated 30 h ahead of UtcTime (a day off): no UTC offset, nor a 12-hour clock.
    path = _write(tmp_path / "h.json", [
        {"UtcTime": "2024-01-01 00:00:00.000", "TimeCreated": "2024-01-02 06:00:00.000",
         "Hostname": "H", "Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1},
        {"TimeCreated": "2024-01-02 06:00:01.000", "Hostname": "H", "Channel": "Security",
         "EventID": 4688}])
    table, _ = collect("windows_events", path)
    assert table["timestamp"].to_pylist() == [utc(2024, 1, 1), utc(2024, 1, 2, 6, 0, 1)]
    assert f"{path}: line 1: host H: its local time lies +30:00 from UtcTime, no UTC offset " \
        "(-12:00..+14:00) nor a 12-hour clock: not used" in caplog.text
    assert f"{path}: line 2: TimeCreated taken as UTC for host H" in caplog.text


def test_the_events_own_time_wins_over_the_shippers_timestamp(datasets):
    # nxlog/Logstash: @timestamp is the ingest time, 2-3 s late. Sysmon keeps UtcTime; a
    # Security record's local EventTime is put in UTC by its host's offset in the file (-4 h).
    table, _ = collect("windows_events", datasets / OTRF / f"{COVENANT}.zip")
    rows = [r for r in table.to_pylist() if r["host"] == "WORKSTATION5.theshire.local"]
    assert (rows[0]["event_type"], rows[0]["timestamp"]) == (
        "sysmon:13", utc(2020, 9, 22, 18, 53, 1, 266000))  # @timestamp 18:53:04.182
    security = [r for r in rows if r["event_type"].lower().startswith("security")]
    assert security and all(r["timestamp"] == local(r["EventTime"]) + timedelta(hours=4)
                            for r in security)


def test_the_user_is_the_acting_account_spelt_one_way(datasets):
    table, _ = collect("windows_events", datasets / OTRF)
    users: dict[str, set] = {}
    for row in table.to_pylist():
        users.setdefault(row["event_type"], set()).add(row["user"])
    assert users["security:4688"] == {"wardog", "WORKSTATION5$"}  # never TargetUserName "-"
    assert users["sysmon:1"] == {"wardog", "SYSTEM"}  # not WORKSTATION5\wardog, NT AUTHORITY\..
    assert users["sysmon:13"] == {None}  # not nxlog's AccountName SYSTEM (the Sysmon service)
    assert users["security:4769"] == {"pgustavo"}  # pgustavo@THESHIRE.LOCAL
    assert users["security:4624"] == {"pgustavo", "MORDORDC$"}  # the account logged on
    assert users["system:7045"] == {"SYSTEM"}  # the service's account, LocalSystem


def test_user_rules_by_event_id(tmp_path):
    path = _write(tmp_path / "u.json", [
        {"UtcTime": "2024-01-01 00:00:00", "Channel": "Security", "EventID": 4688,
         "TargetUserName": "bob", "SubjectUserName": "alice"},
        {"UtcTime": "2024-01-01 00:00:01", "Channel": "Security", "EventID": 4688,
         "TargetUserName": "N/A", "SubjectUserName": "CORP\\alice"},
        {"UtcTime": "2024-01-01 00:00:02", "Channel": "Security", "EventID": 4720,
         "TargetUserName": "newbie", "SubjectUserName": "admin"},
        {"UtcTime": "2024-01-01 00:00:03", "Channel": "Security", "EventID": 4624,
         "TargetUserName": "-", "SubjectUserName": "-"}])
    table, _ = collect("windows_events", path)
    assert table["user"].to_pylist() == ["bob", "alice", "admin", None]


def test_a_time_missing_is_named_by_the_records_kind(tmp_path, caplog):
    path = _write(tmp_path / "m.json", [
        {"UtcTime": "2024-01-01 00:00:00", "TimeCreated": "2024-01-01 02:00:00",
         "Hostname": "A", "Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1},
        {"UtcTime": "2024-01-01 00:00:00", "TimeCreated": "2024-01-01 03:00:00",
         "Hostname": "B", "Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1},
        {"EventID": 4688, "Channel": "Security"},
        {"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational"},
        {"TimeCreated": "2024-01-01 02:00:05", "Hostname": "", "Channel": "Security",
         "EventID": 4689}])
    table, collector = collect("windows_events", path)
    assert [(q.line, q.field, q.reason.split(";")[0]) for q in collector.quarantined] == [
        (3, "TimeCreated", "TimeCreated = None is missing"),
        (4, "UtcTime", "UtcTime = None is missing")]
    # hosts A and B differ (+2 h, +3 h): the record with no host name has no offset to take
    assert table["timestamp"].to_pylist()[-1] == utc(2024, 1, 1, 2, 0, 5)
    assert f"{path}: line 5: TimeCreated taken as UTC for host (no host name)" in caplog.text


def test_a_windows_collection_made_by_the_old_rules_is_not_resumed(tmp_path):
    path = _write(tmp_path / "w.json", [{"UtcTime": "2024-01-01 00:00:00", "EventID": 1}])
    out = tmp_path / "out"
    DataCollector([DataSource("w", "windows_events", {"path": str(path)})], output_dir=out,
                  progress=False).collect_table()
    checkpoint = out / "checkpoint.json"
    state = json.loads(checkpoint.read_text())
    assert state["recipe"]["sources"][0]["params"]["windows_rules"] == 3
    del state["recipe"]["sources"][0]["params"]["windows_rules"]  # as written before them
    checkpoint.write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="made with other settings"):
        DataCollector([DataSource("w", "windows_events", {"path": str(path)})], output_dir=out,
                      progress=False).collect_table(resume_from_checkpoint=True)


def _records(path: Path) -> list[dict]:
    with zipfile.ZipFile(path) as archive:
        return [json.loads(line) for name in archive.namelist()
                for line in archive.read(name).decode().splitlines() if line.strip()]


def test_the_object_a_sysmon_record_touches_is_its_file_path(datasets):
    # The trial: the dump's sysmon:10 rows showed only the process that read lsass; its
    # TargetImage (and a registry record's TargetObject) were hashed into the extra fields.
    table, _ = collect("windows_events", datasets / OTRF / f"{LSASS}.zip")
    rows = table.to_pylist()
    dumps = [(r["process"], r["GrantedAccess"]) for r in rows if r["event_type"] == "sysmon:10"
             and r["file_path"] == "C:\\windows\\system32\\lsass.exe"]
    assert dumps == [("C:\\Windows\\System32\\rundll32.exe", "0x1fffff"),  # comsvcs MiniDump
                     ("C:\\Windows\\System32\\rundll32.exe", "0x1410")]
    records = _records(datasets / OTRF / f"{LSASS}.zip")
    for event_id, target in ((10, "TargetImage"), (12, "TargetObject"), (13, "TargetObject")):
        given = {r[target] for r in records if r["EventID"] == event_id
                 and "Sysmon" in r.get("Channel", "")}
        assert given and {r["file_path"] for r in rows
                          if r["event_type"] == f"sysmon:{event_id}"} == given, event_id
    assert {"TargetImage", "TargetObject"}.isdisjoint(table.column_names)  # now canonical
    # What has no column stays an extra field: the access mask, the value written.
    written = [r["Details"] for r in rows if r["event_type"] == "sysmon:13"]
    assert len(written) == 15 and "Binary Data" in written


def test_a_file_hash_is_one_digest_of_sysmons_hashes(datasets):
    # Hashes "SHA1=..,MD5=..,SHA256=..,IMPHASH=.." was file_hash whole, and layer 1's file
    # reason read it; Suricata and ECS give one lower-case digest.
    table, _ = collect("windows_events", datasets / OTRF / f"{LSASS}.zip")
    given = {r["Hashes"].split("SHA256=")[1].split(",")[0].lower()
             for r in _records(datasets / OTRF / f"{LSASS}.zip") if "Hashes" in r}
    hashed = [r for r in table.to_pylist() if r["file_hash"] is not None]
    assert {r["event_type"] for r in hashed} == {"sysmon:1", "sysmon:7"}
    assert {r["file_hash"] for r in hashed} == given and all(len(h) == 64 for h in given)
    assert "Hashes" not in table.column_names


def test_a_record_hashed_by_its_imphash_alone_has_no_file_hash(tmp_path):
    """file_digest gives none for an IMPHASH, and the mapped raw text stood in for it
    (review R4): a derived file_hash is the whole value."""
    records = [{"EventID": 7, "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Computer": "WS1", "UtcTime": "2026-01-01 10:00:00.000", "Hashes": hashes,
                "ImageLoaded": "C:\\Windows\\x.dll"}
               for hashes in ("IMPHASH=ABCDEF0123", "SHA256=CC,IMPHASH=ABCDEF0123")]
    path = tmp_path / "sysmon.json"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    table, _ = collect("windows_events", path)
    assert table["file_hash"].to_pylist() == [None, "cc"]


def test_file_digest():
    from training.sources.windows_events import file_digest

    assert file_digest("SHA1=AB12,MD5=CD34,SHA256=EF56,IMPHASH=0789") == "ef56"
    assert file_digest("MD5=CD34, SHA1=AB12") == "ab12"
    assert file_digest("MD5=CD34") == "cd34"
    assert file_digest("IMPHASH=0789") is None  # the import table's, not the file's
    assert file_digest("EF56") == "ef56"
    assert file_digest("-") is None


def test_a_placeholder_is_no_value_in_any_text_field(datasets, tmp_path):
    # domain kept Sysmon's DestinationHostname "-" (5 events) while user dropped "-".
    records = [r for name in (PSEXEC, LSASS, COVENANT)
               for r in _records(datasets / OTRF / f"{name}.zip")]
    assert sum(r.get("DestinationHostname") == "-" for r in records) == 5
    assert sum(r.get("ProcessName") == "-" for r in records) == 2
    table, _ = collect("windows_events", datasets / OTRF)
    for field in ("domain", "process", "user", "file_path", "command_line"):
        assert "-" not in set(table[field].to_pylist()), field
    assert {r["domain"] for r in table.to_pylist() if r["event_type"] == "sysmon:3"} == {None}
    # one rule for every text field; the host's name stays as written (the clock's key)
    path = _write(tmp_path / "p.json", [
        {"UtcTime": "2024-01-01 00:00:00", "Channel": "Microsoft-Windows-Sysmon/Operational",
         "EventID": 22, "QueryName": " - ", "Image": "N/A", "User": "-", "Hostname": "-"}])
    row = collect("windows_events", path)[0].to_pylist()[0]
    assert (row["domain"], row["process"], row["user"], row["host"]) == (None, None, None, "-")


def test_a_layer1_reason_names_the_process_accessed(datasets):
    import numpy as np
    import torch

    from training.detectors.vae import Layer1VAE
    from training.layers.layer1 import Layer1

    # Which value a reason shows is the event's, whatever the weights: a seeded VAE as built.
    torch.manual_seed(0)
    layer, model = Layer1(), Layer1VAE(hidden_dim=32, latent_dim=8, dropout=0.0).eval()
    events, _ = collect("windows_events", datasets / OTRF / f"{LSASS}.zip")
    reasons = layer.explain(model, layer.featurize(events), np.arange(events.num_rows),
                            events=events)
    rows = events.to_pylist()
    (dump,) = [i for i, r in enumerate(rows) if r["GrantedAccess"] == "0x1fffff"
               and "rundll32" in r["process"]]
    shown = {r.field: r.observed for r in reasons[dump]}
    assert (shown["process"], shown["file"]) == ("C:\\Windows\\System32\\rundll32.exe",
                                                 "C:\\windows\\system32\\lsass.exe")
    hashed = [i for i, r in enumerate(rows) if r["event_type"] == "sysmon:1"]
    assert [next(r.observed for r in reasons[i] if r.field == "file") for i in hashed] == [
        rows[i]["file_hash"] for i in hashed] and "=" not in rows[hashed[0]]["file_hash"]
