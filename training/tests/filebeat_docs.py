"""Real sensor records shaped as Filebeat's Suricata and Zeek modules index them in
Elasticsearch (nested ECS objects plus `suricata.eve.*` / `zeek.*`), for the Elasticsearch tests
and benchmark.

Shapes follow the modules' processors and ingest pipelines (elastic/beats,
x-pack/filebeat/module/{suricata/eve,zeek/connection}): `@timestamp` in UTC with millisecond
precision, addresses and ports under source/destination, flow counters renamed to
source/destination bytes and packets, `event.duration` in nanoseconds, `network.transport`
lower-cased, the application protocol in `network.protocol`, alert fields copied to
`rule.category` / `rule.id` / `rule.name` and the Suricata severity moved to `event.severity`,
`event.kind` "alert" for alerts, the Zeek uid as `zeek.session_id`. Geo and AS enrichment is
left out (it needs GeoIP databases and changes nothing we read).
"""

from __future__ import annotations

import copy
from datetime import datetime, timezone

_CATEGORIES = {"alert": (["network", "intrusion_detection"], []), "flow": (["network"], ["connection"]),
               "http": (["network", "web"], ["access", "protocol"]), "dns": (["network"], ["protocol"]),
               "tls": (["network"], ["protocol"])}


def _utc_millis(value: object) -> str:
    """A timestamp as Filebeat writes @timestamp: UTC, millisecond precision."""
    if isinstance(value, (int, float)):
        moment = datetime.fromtimestamp(value, tz=timezone.utc)
    else:
        moment = datetime.fromisoformat(str(value)).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _nanoseconds(start: str, end: str) -> int:
    delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def suricata_eve(record: dict, offset: int, path: str) -> dict:
    """One EVE record as Filebeat's suricata/eve fileset indexes it."""
    eve = copy.deepcopy(record)
    event_type = str(eve.get("event_type", "")).lower()
    eve["event_type"] = event_type
    doc: dict = {"@timestamp": _utc_millis(eve.pop("timestamp")),
                 "event": {"module": "suricata", "dataset": "suricata.eve",
                           "kind": "alert" if event_type == "alert" else "event"},
                 "log": {"offset": offset, "file": {"path": path}}}
    categories, types = _CATEGORIES.get(event_type, (["network"], []))
    doc["event"]["category"] = categories
    if types:
        doc["event"]["type"] = types
    flow = eve.get("flow", {})
    for side, prefix, suffix in (("source", "src", "toserver"), ("destination", "dest", "toclient")):
        part: dict = {}
        if f"{prefix}_ip" in eve:
            part["address"] = part["ip"] = eve.pop(f"{prefix}_ip")
        if f"{prefix}_port" in eve:
            part["port"] = eve.pop(f"{prefix}_port")
        for counter, name in (("bytes", "bytes"), ("pkts", "packets")):
            if f"{counter}_{suffix}" in flow:
                part[name] = flow.pop(f"{counter}_{suffix}")
        if part:
            doc[side] = part
    network: dict = {}
    if "proto" in eve:
        network["transport"] = str(eve.pop("proto")).lower()
    app = str(eve.pop("app_proto", "")).lower()
    if app and app not in ("failed", "template", "template-rust"):
        network["protocol"] = "ftp" if app == "ftp-data" else app
    if network:
        doc["network"] = network
    if "start" in flow and "end" in flow:
        doc["event"].update(start=flow["start"], end=flow["end"],
                            duration=_nanoseconds(flow["start"], flow["end"]))
    flow.pop("start", None)
    flow.pop("end", None)
    alert = eve.get("alert")
    if event_type == "alert" and isinstance(alert, dict):
        doc["rule"] = {k: alert[v] for k, v in (("category", "category"), ("id", "signature_id"),
                                                 ("name", "signature")) if v in alert}
        if "severity" in alert:
            doc["event"]["severity"] = alert.pop("severity")
        if "action" in alert:
            doc["event"]["type"] = [alert.pop("action")]
    dns = eve.get("dns", {})
    if event_type == "dns" and dns.get("type") == "query" and "rrname" in dns:
        doc["dns"] = {"question": {"name": dns["rrname"]}, "type": "query"}
    doc["suricata"] = {"eve": eve}
    return doc


def zeek_connection(record: dict, offset: int, path: str) -> dict:
    """One Zeek conn.log JSON record as Filebeat's zeek/connection fileset indexes it."""
    conn = copy.deepcopy(record)
    doc: dict = {"@timestamp": _utc_millis(conn.pop("ts")),
                 "event": {"module": "zeek", "dataset": "zeek.connection",
                           "category": ["network"], "type": ["connection"]},
                 "log": {"offset": offset, "file": {"path": path}}}
    if "duration" in conn:
        doc["event"]["duration"] = round(conn.pop("duration") * 1_000_000_000)
    for side, end in (("source", "orig"), ("destination", "resp")):
        part = {"address": conn.get(f"id.{end}_h"), "ip": conn.pop(f"id.{end}_h", None),
                "port": conn.pop(f"id.{end}_p", None)}
        if f"{end}_ip_bytes" in conn:
            part["bytes"] = conn.pop(f"{end}_ip_bytes")
        if f"{end}_pkts" in conn:
            part["packets"] = conn.pop(f"{end}_pkts")
        conn.pop(f"{end}_bytes", None)  # the module drops payload bytes, keeps IP bytes
        doc[side] = {k: v for k, v in part.items() if v is not None}
    doc["network"] = {"transport": conn.pop("proto", None)}
    if "service" in conn:
        doc["network"]["protocol"] = conn.pop("service")
    zeek: dict = {"session_id": conn.pop("uid")}
    if "conn_state" in conn:
        conn["state"] = conn.pop("conn_state")
    zeek["connection"] = conn
    doc["zeek"] = zeek
    return doc
