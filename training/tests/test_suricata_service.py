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


def test_read_as_json_it_is_no_service_too_by_the_same_rule(datasets, tmp_path):
    # Reviewer: only SuricataSource.read nulled it; json: mapped app_proto through the generic
    # field map and kept service "failed" on 1,074 events.
    path = datasets / EVE
    suricata, _ = collect("suricata_logs", path)
    generic, _ = collect("json_file", path)
    assert generic["service"].to_pylist() == suricata["service"].to_pylist()
    assert "failed" not in set(generic["service"].to_pylist())
    assert generic["service"].null_count == suricata["service"].null_count >= 1074
    # Both recipes name the rule, so a collection made without it is not resumed with it.
    for kind in ("suricata_logs", "json_file"):
        collect(kind, path, output_dir=tmp_path / kind)
        recipe = json.loads((tmp_path / kind / "checkpoint.json").read_text())["recipe"]
        assert recipe["sources"][0]["params"]["no_service"] == ["failed"]


def test_an_event_dict_maps_it_as_a_batch_does():
    from training.collection.canonical_record import canonical_record
    from training.sources import DataSource, create_source

    source = create_source(DataSource("eve", "json_file", {"path": "unused.json"}))
    for proto, service in (("failed", None), ("dns", "dns")):
        record = canonical_record({"timestamp": "2021-01-01T00:00:00Z", "app_proto": proto},
                                  source)
        assert record is not None and record.values["service"] == service
