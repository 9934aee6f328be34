"""The alerts page shows exactly its JSON: every value cell against the document it renders."""

from __future__ import annotations

import html
import json
import shutil
import subprocess

import numpy as np
import pyarrow as pa
import pytest

from training.evaluation.report_html import fmt
from training.scoring.alerts import OUTPUT_SCHEMA, unit_rows
from training.scoring.alerts_page import (
    ALERT_CONTEXT, TOP_FLOWS, alerts_document, render_alerts_html, write_alerts_page,
)
from training.scoring.incidents import build_incidents
from training.scoring.tables import write_incidents, write_table
from training.tests.conftest import collect
from training.tests.test_incidents import _row
from training.tests.test_report_html import Page, resolve


def _incidents() -> pa.Table:
    reasons = [{"field": "dest_port", "contribution": 9.5, "observed": "65000", "typical": "53"},
               {"field": "protocol", "contribution": 0.25, "observed": "udp", "typical": "udp"}]
    rows = [_row("layer1", "conn:C1", 99.9, source_ip="10.0.0.5", community_id="1:abc"),
            _row("layer3", "10.0.0.5@2026-11-20T10:00", 99.0),
            _row("layer1", "conn:<b>", 100.0, source_ip="10.0.0.<i>7</i>")]
    rows[0]["reasons"] = reasons
    return build_incidents(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA))


def test_every_value_on_the_page_equals_the_json(tmp_path):
    json_path, html_path = write_alerts_page(_incidents(), tmp_path / "alerts.parquet")
    document = json.loads(json_path.read_text())
    assert document == json.loads(json.dumps(alerts_document(_incidents())))
    page = Page()
    page.feed(html_path.read_text())
    keys = [key for key, _ in page.values]
    # the totals, 2 incidents' 7 columns, 3 alerts' layer, unit, time, event type, score and
    # percentile and 2 alerts' source address (no units given: the context the incidents' top
    # entries carry; the rest null, its columns not shown), 2 reasons' 4 columns, and the flow
    # of 1:abc (its Community ID, event type and event id)
    assert len(keys) == len(set(keys)) and len(keys) == 1 + 2 * 7 + 3 * 6 + 2 + 2 * 4 + 3
    for key, shown in page.values:
        assert shown == fmt(resolve(document, key)), key
    assert "/incidents/1/top/0/reasons/0/observed" in keys  # the reasons are on the page
    assert document["incidents"][1]["top"][0]["command_line"] is None  # null: no units given
    assert "/incidents/1/top/0/command_line" not in keys  # and no column of n/a
    assert {"/incidents/1/flows/0/community_id", "/incidents/1/flows/0/event_ids/0"} <= set(keys)
    assert "<i>" not in html_path.read_text() and html.escape("10.0.0.<i>7</i>") in \
        html_path.read_text()  # text from the logs is escaped


def test_the_page_in_a_headless_browser(tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("headless Chromium is not installed (Debian package chromium)")
    path = tmp_path / "alerts.html"
    path.write_text(render_alerts_html(alerts_document(_incidents())))
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          path.as_uri()], capture_output=True, text=True, timeout=60).stdout
    assert "Top incidents" in dom and "dest_port" in dom and "65000" in dom


LSASS = "windows_otrf_security_datasets/psh_lsass_memory_dump_comsvcs.zip"


def test_each_top_alert_shows_its_time_event_type_process_and_command_line(tmp_path, datasets):
    # The OTRF recording of a comsvcs.dll MiniDump of lsass: its two process-creation records
    # alert; the page used to show their unit ids and reasons only.
    events, _ = collect("windows_events", datasets / LSASS)
    lines = [c or "" for c in events["command_line"].to_pylist()]
    scores = np.array([2.0 if "comsvcs.dll MiniDump" in c else 0.0 for c in lines], np.float32)
    ids = events["event_id"]
    batch = unit_rows({"unit": ids, "time": events["timestamp"],
                       "event_ids": pa.array([[i] for i in ids.to_pylist()])},
                      scores, events, layer="layer1", threshold=1.0, calibration=None)
    path = write_table(pa.Table.from_batches([batch]), tmp_path / "lsass.parquet")
    write_incidents(path)
    document = json.loads((tmp_path / "lsass.alerts.json").read_text())
    (incident,) = document["incidents"]
    own = {r["event_id"]: r for r in events.to_pylist()}
    assert sorted((a["event_type"], a["process"]) for a in incident["top"]) == [
        ("security:4688", "C:\\Windows\\System32\\rundll32.exe"),
        ("sysmon:1", "C:\\Windows\\System32\\rundll32.exe")]
    for alert in incident["top"]:
        event = own[alert["unit"]]
        assert alert["command_line"] == event["command_line"]
        assert alert["time"] == event["timestamp"].isoformat()
    page = Page()
    page.feed((tmp_path / "lsass.alerts.html").read_text())
    for key, shown in page.values:
        assert shown == fmt(resolve(document, key)), key
    shown = dict(page.values)
    assert {"/incidents/0/top/1/command_line", "/incidents/0/top/1/time"} <= shown.keys()


def test_a_window_alert_shows_its_events_and_what_ran(tmp_path, datasets):
    # The whole lsass recording as one host window that alerts: its row shares no process (its
    # events ran many), so the page shows what ran through the window's top events, the
    # MiniDump process creations first (`training.scoring.context`).
    events, _ = collect("windows_events", datasets / LSASS)
    ids = events["event_id"].to_pylist()
    batch = unit_rows({"unit": pa.array(["WORKSTATION5@2020-10-18T23:50:00"]),
                       "time": events["timestamp"].slice(0, 1),
                       "event_ids": pa.array([ids])},
                      np.array([2.0], np.float32), events, layer="layer3", threshold=1.0,
                      calibration=None)
    path = write_table(pa.Table.from_batches([batch]), tmp_path / "window.parquet")
    write_incidents(path)
    document = json.loads((tmp_path / "window.alerts.json").read_text())
    (alert,) = document["incidents"][0]["top"]
    assert alert["process"] is None and len(alert["top_events"]) == 3
    assert "comsvcs.dll MiniDump" in alert["top_events"][0]["command_line"]
    page = Page()
    page.feed((tmp_path / "window.alerts.html").read_text())
    for key, shown in page.values:
        assert shown == fmt(resolve(document, key)), key
    shown = dict(page.values)
    assert "comsvcs.dll MiniDump" in shown["/incidents/0/top/0/top_events/0/command_line"]


EVE = "suricata/slips_test6-malicious.suricata.json"


def test_network_alerts_show_addresses_ports_and_the_sensors_verdict(tmp_path, datasets):
    # The EVE alerts of a Suricata capture alert: the page showed process and command line
    # (n/a for every flow) and neither their addresses, ports, signatures nor joined flows.
    events, _ = collect("suricata_logs", datasets / EVE)
    kinds = events["event_type"].to_pylist()
    scores = np.array([2.0 if k == "alert" else 0.0 for k in kinds], np.float32)
    ids = events["event_id"]
    batch = unit_rows({"unit": ids, "time": events["timestamp"],
                       "event_ids": pa.array([[i] for i in ids.to_pylist()])},
                      scores, events, layer="layer1", threshold=1.0, calibration=None)
    path = write_table(pa.Table.from_batches([batch]), tmp_path / "eve.parquet")
    write_incidents(path)
    text = (tmp_path / "eve.alerts.html").read_text()
    document = json.loads((tmp_path / "eve.alerts.json").read_text())
    page = Page()
    page.feed(text)
    shown = dict(page.values)
    assert len(shown) == len(page.values)
    for key, value in page.values:
        assert value == fmt(resolve(document, key)), key
    own = {r["event_id"]: r for r in events.to_pylist()}
    tops = [(i, j, a) for i, x in enumerate(document["incidents"])
            for j, a in enumerate(x["top"] or ())]
    assert len(tops) >= 20
    for i, j, alert in tops:
        event, at = own[alert["unit"]], f"/incidents/{i}/top/{j}"
        assert alert["sensor_signature"] == event["alert.signature"]
        assert alert["sensor_signature_id"] == str(event["alert.signature_id"])
        assert (alert["source_ip"], alert["dest_port"]) == (event["source_ip"], event["dest_port"])
        # every value the alert has is on the page, and no column it lacks
        for key in ALERT_CONTEXT:
            assert (f"{at}/{key}" in shown) == (alert[key] is not None), key
        assert f"{at}/process" not in shown and f"{at}/command_line" not in shown
    assert '"ET ' in (tmp_path / "eve.alerts.json").read_text() and ">ET " in text
    # an address and its port in one cell: 78.36.196.213:51698
    i, j, alert = tops[0]
    at = f"/incidents/{i}/top/{j}"
    cell = (f'<td><span data-key="{at}/source_ip">{alert["source_ip"]}</span>:'
            f'<span data-key="{at}/source_port">{alert["source_port"]}</span></td>')
    assert cell in text and "<th>source</th>" in text and "<th>process</th>" not in text
    # the alerts' events joined by Community ID, keyed to the incidents' flows
    flows = [(i, k) for i, x in enumerate(document["incidents"]) for k in range(
        min(len(x["flows"] or ()), TOP_FLOWS))]
    assert flows and all(f"/incidents/{i}/flows/{k}/community_id" in shown for i, k in flows)


def test_an_hour_without_alerts_names_its_heaviest_units_flows():
    """An incident without alerts lists its heaviest units' flows: the page called them "its
    alerts' events" (trial T)."""
    document = json.loads(json.dumps(alerts_document(_incidents())))
    with_flows = next(i for i in document["incidents"] if i["flows"])
    assert "Its alerts' events joined by Community ID" in render_alerts_html(document)
    with_flows["alerts"] = 0  # as a quiet incident has
    page = render_alerts_html(document)
    assert "Its heaviest units' events joined by Community ID: 1 of 1 flows." in page
    assert "Its alerts' events" not in page
