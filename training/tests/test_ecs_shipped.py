"""The same Zeek conn records read from the raw log and from an Elastic export of them (Filebeat's
Zeek module field names, with the shipper's envelope) give the same canonical columns and the
same layer-1 vectors; a Splunk CSV export (`_time`, CIM names) of them gives the same times and
flow columns, and a source whose time column is not recognised is named in one warning."""

from __future__ import annotations

import csv
import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from training.features.layer1 import Layer1Featurizer
from training.tests.conftest import collect

CONN = "slips_ctu_sme_11_labeled_zeek/zeek-labeled/conn.log.labeled"
# The columns a Filebeat export carries (it drops tunnel_parents; ip bytes: see below).
KEPT = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service",
        "duration", "orig_bytes", "resp_bytes", "conn_state", "local_orig", "local_resp",
        "missed_bytes", "history", "orig_pkts", "resp_pkts")
N = 200
CET = timezone(timedelta(hours=1))


def _raw_log(datasets: Path, tmp_path: Path) -> tuple[Path, list[dict]]:
    """The first N records of the real conn.log, with the columns an export carries."""
    lines = (datasets / CONN).read_text().splitlines()
    header = {line.split("\t")[0]: line.split("\t")[1:] for line in lines if line.startswith("#")}
    keep = [header["#fields"].index(name) for name in KEPT]
    rows = [line.split("\t") for line in lines if not line.startswith("#")][:N]
    path = tmp_path / "conn.log"
    path.write_text("\n".join(
        ["#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)", "#unset_field\t-",
         "#path\tconn", "#fields\t" + "\t".join(KEPT),
         "#types\t" + "\t".join(header["#types"][i] for i in keep)]
        + ["\t".join(row[i] for i in keep) for row in rows]) + "\n")
    return path, [dict(zip(KEPT, (row[i] for i in keep))) for row in rows]


def _value(text: str, kind=int):
    return None if text in ("-", "(empty)") else kind(text)


def _filebeat_doc(r: dict) -> dict:
    """One conn record as Filebeat's Zeek module indexes it (x-pack/filebeat/module/zeek/
    connection), shipper envelope included. Filebeat itself puts orig_ip_bytes in source.bytes;
    like the trial's export, this one puts Zeek's orig_bytes there, so the bytes compare."""
    stamp = datetime.fromtimestamp(float(r["ts"]), timezone.utc).isoformat(timespec="microseconds")
    duration = _value(r["duration"], float)
    return {
        "@timestamp": stamp.replace("+00:00", "Z"),
        "event": {"dataset": "zeek.connection", "module": "zeek", "kind": "event",
                  "category": ["network"], "type": ["connection"], "id": r["uid"],
                  "duration": None if duration is None else round(duration * 1e9)},
        "source": {"ip": r["id.orig_h"], "address": r["id.orig_h"], "port": int(r["id.orig_p"]),
                   "bytes": _value(r["orig_bytes"]), "packets": _value(r["orig_pkts"])},
        "destination": {"ip": r["id.resp_h"], "address": r["id.resp_h"],
                        "port": int(r["id.resp_p"]), "bytes": _value(r["resp_bytes"]),
                        "packets": _value(r["resp_pkts"])},
        "network": {"transport": r["proto"], "application": _value(r["service"], str)},
        "zeek": {"session_id": r["uid"], "connection": {
            "state": r["conn_state"], "history": _value(r["history"], str),
            "local_orig": r["local_orig"] == "T", "local_resp": r["local_resp"] == "T",
            "missed_bytes": _value(r["missed_bytes"])}},
        "tags": ["zeek.connection"], "fileset": {"name": "connection"}, "input": {"type": "log"},
        "log": {"offset": 398, "file": {"path": "/opt/zeek/logs/current/conn.log"}},
        "service": {"type": "zeek"}, "ecs": {"version": "1.12.0"},
        "agent": {"type": "filebeat", "version": "7.17.9", "hostname": "sensor01",
                  "id": "aaa6b414-b356-4a6b-8d18-c467c7aa7359"},
        "host": {"name": "sensor01", "hostname": "sensor01", "architecture": "x86_64",
                 "os": {"family": "debian", "kernel": "5.10.0-21-amd64"}},
    }


def test_a_filebeat_zeek_export_maps_and_scores_as_the_raw_log(datasets, tmp_path):
    raw_path, records = _raw_log(datasets, tmp_path)
    export = tmp_path / "conn.ndjson"
    export.write_text("".join(json.dumps(_filebeat_doc(r)) + "\n" for r in records))
    raw, _ = collect("zeek", raw_path)
    shipped, _ = collect("json", export)
    assert raw.num_rows == shipped.num_rows == N
    for name in ("timestamp", "event_id", "event_type", "source_ip", "source_port", "dest_ip",
                 "dest_port", "protocol", "service", "bytes_sent", "bytes_received",
                 "packets_sent", "packets_received", "duration", "conn_state", "direction",
                 "community_id", "host", "uid", "history", "local_orig", "local_resp",
                 "missed_bytes"):
        assert shipped[name].to_pylist() == raw[name].to_pylist(), name
    assert shipped["event_type"][0].as_py() == "conn"
    assert shipped["event_id"][0].as_py() == "conn:" + records[0]["uid"]
    assert set(shipped["observer.hostname"].to_pylist()) == {"sensor01"}  # kept, not a party
    featurizer = Layer1Featurizer()
    np.testing.assert_array_equal(featurizer.featurize(shipped), featurizer.featurize(raw))


def _splunk_csv(path: Path, records: list[dict], time_column: str) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([time_column, "src_ip", "src_port", "dest_ip", "dest_port", "transport",
                         "bytes_out", "bytes_in", "packets_out", "packets_in"])
        for r in records:
            when = datetime.fromtimestamp(float(r["ts"]), CET).isoformat(timespec="microseconds")
            writer.writerow([when, r["id.orig_h"], r["id.orig_p"], r["id.resp_h"],
                             r["id.resp_p"], r["proto"], *("" if r[c] == "-" else r[c] for c in (
                                 "orig_bytes", "resp_bytes", "orig_pkts", "resp_pkts"))])


def test_a_splunk_export_maps_time_and_cim_names_by_direction(datasets, tmp_path):
    raw_path, records = _raw_log(datasets, tmp_path)
    _splunk_csv(tmp_path / "splunk.csv", records, "_time")
    raw, _ = collect("zeek", raw_path)
    splunk, _ = collect("csv", tmp_path / "splunk.csv")
    for name in ("timestamp", "source_ip", "source_port", "dest_ip", "dest_port", "protocol",
                 "bytes_sent", "bytes_received", "packets_sent", "packets_received"):
        assert splunk[name].to_pylist() == raw[name].to_pylist(), name


def test_an_unrecognised_time_column_is_named_once(datasets, tmp_path, caplog):
    _, records = _raw_log(datasets, tmp_path)
    _splunk_csv(tmp_path / "export.csv", records, "first_packet")
    with caplog.at_level(logging.WARNING):
        events, _ = collect("csv", tmp_path / "export.csv", connection_params={"block_size": 4096})
    assert events["timestamp"].null_count == N
    said = [r.getMessage() for r in caplog.records if "looks like the event time" in r.getMessage()]
    assert said == ["source test: no event has a time, but column first_packet looks like the "
                    "event time: --field-map timestamp=first_packet"]
