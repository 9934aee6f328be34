"""Suricata EVE's `app_proto` as the canonical `service`, on a real capture: "failed" (the
detection found no protocol) is no service."""

from __future__ import annotations

import collections
import json

from training.sources.suricata import NO_SERVICE
from training.tests.conftest import collect

EVE = "suricata/slips_test6-malicious.suricata.json"


def test_a_failed_protocol_detection_is_no_service(datasets):
    path = datasets / EVE
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    given = collections.Counter(r.get("app_proto") for r in records)
    assert NO_SERVICE == ("failed",) and given["failed"] == 1074  # most of its flows
    events, _ = collect("suricata_logs", path)
    assert events["flow_id"].to_pylist() == [r.get("flow_id") for r in records]  # file order
    rows = events.select(["event_type", "service", "protocol"]).to_pylist()
    for record, row in zip(records, rows, strict=True):
        proto = record.get("app_proto")
        assert row["service"] == (None if proto in (None, "failed") else proto)
        if proto == "failed":  # the flow keeps the rest of its context
            assert (row["event_type"], row["protocol"]) == (record["event_type"],
                                                            record["proto"].lower())
    services = collections.Counter(row["service"] for row in rows)
    assert "failed" not in services and services[None] == given[None] + given["failed"]
