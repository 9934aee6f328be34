"""Zeek logs of a TCP-only protocol get `protocol` and the Community ID of their conn row."""

from __future__ import annotations

import base64
import hashlib
import json
import struct

import pytest

from training.scoring.context import sensor_ids
from training.tests.conftest import collect


def _rows(table):
    table = table.append_column("_uid", sensor_ids(table))
    return [{"uid": r.pop("_uid"), **r} for r in
            table.select(["event_type", "_uid", "protocol", "community_id"]).to_pylist()]


@pytest.mark.parametrize("folder, logs", [
    ("slips_zeek_json_test9", {"http": 515, "smtp": 0}),  # Zeek JSON
    ("stratosphere/008-zeek-mixed/data", {"http": 342}),  # TSV, labeled
])
def test_http_and_smtp_rows_join_their_conn_flow_by_community_id(datasets, folder, logs):
    rows = _rows(collect("zeek", datasets / folder)[0])
    conn = {r["uid"]: r["community_id"] for r in rows if r["event_type"] == "conn"}
    assert conn and all(conn.values())
    for log, joined in logs.items():
        these = [r for r in rows if r["event_type"] == log]
        assert these and {r["protocol"] for r in these} == {"tcp"}
        assert all(r["community_id"] for r in these)  # trial F D9: null on all of them
        # Each row whose connection Zeek logged (not those still open at the capture's end)
        # has that connection's Community ID.
        same = [r for r in these if r["uid"] in conn]
        assert len(same) == joined and all(r["community_id"] == conn[r["uid"]] for r in same)
    # A protocol Zeek also sees over UDP (TLS: DTLS and QUIC; SIP) or a log of no one
    # connection gets no transport it does not log.
    for row in rows:
        if row["event_type"] in ("ssl", "sip", "weird", "tunnel", "files", "x509"):
            assert row["protocol"] is None and row["community_id"] is None, row


def test_a_logged_proto_is_kept_and_rows_of_one_json_file_go_by_their_path(tmp_path):
    tuple_ = {"id.orig_h": "10.0.0.1", "id.orig_p": 40000, "id.resp_h": "10.0.0.2",
              "id.resp_p": 80}
    lines = [{"_path": "conn", "ts": 1.6e9, "uid": "C1", "proto": "udp", **tuple_},
             {"_path": "http", "ts": 1.6e9, "uid": "C2", "method": "GET", **tuple_},
             {"_path": "dns", "ts": 1.6e9, "uid": "C3", "query": "a.example", **tuple_}]
    path = tmp_path / "mixed.log"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    rows = _rows(collect("zeek", path)[0])
    assert [(r["event_type"], r["protocol"]) for r in rows] == [
        ("conn", "udp"), ("http", "tcp"), ("dns", None)]
    # Community ID v1 (seed 0) of 10.0.0.1:40000 -> 10.0.0.2:80, by the spec: SHA-1 of seed,
    # addresses, protocol number, a zero byte and ports, the smaller endpoint first.
    packed = (struct.pack("!H", 0) + bytes([10, 0, 0, 1, 10, 0, 0, 2])
              + struct.pack("!BBHH", 6, 0, 40000, 80))
    tcp = "1:" + base64.b64encode(hashlib.sha1(packed).digest()).decode()
    assert rows[1]["community_id"] == tcp
    assert rows[0]["community_id"] not in (None, tcp) and rows[2]["community_id"] is None
