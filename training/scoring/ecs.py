"""Alerts as Elastic Common Schema documents: the field names the SIEM already uses.

One document per alerting event (layer 1, the fused score; `event_alerts`):

    {"@timestamp": event time, "event": {"kind": "alert", "id", "created", "dataset",
     "risk_score", "severity", "original_id"}, "rule": {"name", "id", "version", "ruleset"},
     "source": {"ip", "port"}, "destination": {"ip", "port"}, "network": {"transport",
     "protocol", "community_id"}, "related": {"ip": [...]}, "observer": {"name"},
     "host": {"name"}, "user": {"name"}, "process": {"name", "executable", "command_line",
     "parent": {"name", "executable"}} (host logs; `executable` where the log gives a path),
     the event's domain (`dns.question.name`, `tls.client.server_name`, `url.domain` or
     `destination.domain`, by event type),
     "maximus": {"layer", "unit", "score", "threshold", "percentile", "event_ids",
                 "sensor_id", "reasons"}}

A unit of a window layer (a layer-2 edge, a layer-3 entity window; `unit_alerts`) gets the
same fields from what its events share, `event.start`/`event.end` (its window) and its top
events (`maximus.top_events`, their addresses in `related.ip`).

`event.risk_score` (0-100) is the score's percentile among the model's benign validation scores
when the model has a calibration; otherwise 50 at the threshold, 100 from twice the threshold.
The event's scored row (`training.scoring.alerts`) decides whether it alerts and gives
`maximus.score` (float32, as in the scores file), `maximus.percentile` and the risk score
drawn from it, `sensor_id` (the Zeek uid or Suricata flow_id) and `reasons` (the alert's top
reasons, when the model can explain its scores): one source for the scores file and the
alerts. `event.id` is a digest of (model, version, unit): a
replayed batch (a restart after a crash) gives the same id, so an index keyed on it holds each
alert once. Empty values are left out, as ECS producers do.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from training.evaluation.calibration import Calibration
from training.features.layer1 import EVENT_CATEGORIES

_FIELDS = ("timestamp", "event_id", "event_type", "source", "source_ip", "source_port", "dest_ip",
           "dest_port", "protocol", "service", "community_id", "host", "user", "domain",
           "process", "parent_process", "command_line")


@dataclass(frozen=True)
class AlertRule:
    """The model behind the alerts, as ECS `rule.*` and the scale of `event.risk_score`."""

    model_name: str
    version: str
    layer: str
    threshold: float
    calibration: Calibration | None = None

    @property
    def name(self) -> str:
        return f"MAXIMUS {self.layer} anomaly ({self.model_name})"

    def risk_scores(self, scores: np.ndarray) -> np.ndarray:
        """0..100: the percentile among benign scores, else 50 * score / threshold (capped)."""
        if self.calibration is not None:
            return np.asarray(self.calibration.percentile(scores), dtype=np.float64)
        if self.threshold <= 0:
            return np.full(len(scores), 100.0)
        return np.clip(50.0 * scores / self.threshold, 0.0, 100.0)


# Where an event's `domain` goes by the kind of its event type (layer 1's event categories:
# "dns_query" and "sysmon:22" are DNS, "ssl" and "x509" TLS, ...): the DNS query, the TLS
# server name (SNI), the HTTP host; any other kind of event names its destination's domain.
_DOMAIN_FIELDS = {name: path for kind, path in (
    ("dns", ("dns", "question", "name")), ("tls", ("tls", "client", "server_name")),
    ("http", ("url", "domain"))) for name in EVENT_CATEGORIES[kind]}


def _alerting(rows: pa.RecordBatch) -> pa.Array:
    """The positions of the rows that alert."""
    return pa.array(np.flatnonzero(rows.column("is_alert").to_numpy(zero_copy_only=False)))


def _risk(rule: AlertRule, rows: pa.RecordBatch, taken: pa.Array, scores: np.ndarray
          ) -> list[float]:
    """`event.risk_score` of the picked rows: their percentile as the scores file has it (one
    source for both), else the threshold's scale (`AlertRule.risk_scores`)."""
    if rule.calibration is not None:
        return rows.column("percentile").take(taken).cast(pa.float64()).to_pylist()
    return rule.risk_scores(scores.astype(np.float64)).tolist()


def iso_times(column: pa.Array | pa.ChunkedArray) -> list[str | None]:
    """UTC timestamps as ISO 8601 text ("2026-12-06T15:48:50.914970Z"), None for nulls.

    Vectorized: turning an Arrow timestamp with a time zone into Python datetimes costs about
    30 us a row on this machine, more than scoring the event."""
    values = column.cast(pa.int64())
    text = np.datetime_as_string(values.fill_null(0).to_numpy(zero_copy_only=False)
                                 .astype("datetime64[us]"), unit="us").tolist()
    if values.null_count:
        valid = values.is_valid().to_numpy(zero_copy_only=False)
        return [t + "Z" if ok else None for t, ok in zip(text, valid.tolist())]
    return [t + "Z" for t in text]


def alert_id(rule: AlertRule, unit: str) -> str:
    """The stable id of the alert `rule` raises on `unit` (the same on every replay)."""
    key = f"{rule.model_name}\x00{rule.version}\x00{unit}".encode()
    return hashlib.blake2b(key, digest_size=16).hexdigest()


def event_alerts(rule: AlertRule, events: pa.Table, rows: pa.RecordBatch,
                 created: datetime | None = None) -> list[dict[str, Any]]:
    """ECS documents for the events of `events` whose row alerts.

    Args:
        rule: the model (or the fused detector) and its threshold.
        events: canonical events, one per row.
        rows: their scored rows (`training.scoring.alerts.OUTPUT_SCHEMA` first): `is_alert`
            decides, and the score, sensor id and reasons go into `maximus`.
        created: when the alerts were made (default now, UTC).
    """
    taken = _alerting(rows)
    if not len(taken):
        return []
    created_text = (created or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    picked = events.take(taken)
    columns = {f: (picked[f].to_pylist() if f in picked.column_names else [None] * len(taken))
               for f in _FIELDS if f != "timestamp"}  # column by column: cheaper than rows
    columns["timestamp"] = (iso_times(picked["timestamp"]) if "timestamp" in picked.column_names
                            else [None] * len(taken))
    scores = rows.column("score").take(taken).to_numpy(zero_copy_only=False)
    risk = _risk(rule, rows, taken, scores)
    percentiles = risk if rule.calibration is not None else None
    sensor_ids = rows.column("sensor_id").take(taken).to_pylist()
    reasons = rows.column("reasons").take(taken).to_pylist()
    rule_doc = {"name": rule.name, "id": rule.model_name, "version": rule.version,
                "ruleset": "maximus"}
    docs = []
    for i, score in enumerate(scores.tolist()):
        event = {f: values[i] for f, values in columns.items()}
        unit = event["event_id"] or ""
        maximus = {"layer": rule.layer, "unit": unit, "score": score,
                   "threshold": rule.threshold, "event_ids": [unit]}
        if percentiles is not None:
            maximus["percentile"] = percentiles[i]
        if sensor_ids[i] is not None:
            maximus["sensor_id"] = sensor_ids[i]
        if reasons[i]:
            maximus["reasons"] = reasons[i]
        docs.append(_document(rule, rule_doc, event, unit, risk[i], created_text, maximus))
    return docs


def unit_alerts(rule: AlertRule, rows: pa.RecordBatch, window_seconds: float,
                created: datetime | None = None) -> list[dict[str, Any]]:
    """ECS documents for the alerting units of a window layer (edges, entity windows).

    A unit's context is what its events share (`training.scoring.context`); `@timestamp` and
    `event.start` are its window's start, `event.end` the window's end; `related.ip` also
    names the addresses of its top events, which go into `maximus.top_events`.

    Args:
        rows: scored units (`training.scoring.alerts.OUTPUT_SCHEMA`).
        window_seconds: the span of a unit's window.
    """
    taken = _alerting(rows)
    if not len(taken):
        return []
    created_text = (created or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    picked = rows.take(taken)
    starts = picked.column("time")
    ends = pa.array(starts.cast(pa.int64()).to_numpy(zero_copy_only=False)
                    + round(window_seconds * 1_000_000)).cast(starts.type)
    times = {name: iso_times(column) for name, column in (
        ("timestamp", starts), ("end", ends), ("first_seen", picked.column("first_seen")),
        ("last_seen", picked.column("last_seen")))}
    scores = picked.column("score").to_numpy(zero_copy_only=False)
    risk = _risk(rule, rows, taken, scores)
    rule_doc = {"name": rule.name, "id": rule.model_name, "version": rule.version,
                "ruleset": "maximus"}
    docs = []
    for i, row in enumerate(picked.to_pylist()):
        event = {f: row.get(f) for f in _FIELDS}
        event.update(timestamp=times["timestamp"][i], event_id=None, source=None, domain=None)
        maximus = {"layer": rule.layer, "unit": row["unit"], "score": float(scores[i]),
                   "threshold": rule.threshold, "event_ids": row["event_ids"],
                   "first_seen": times["first_seen"][i], "last_seen": times["last_seen"][i]}
        if rule.calibration is not None:
            maximus["percentile"] = risk[i]
        top = [{**e, "timestamp": e["timestamp"] and
                e["timestamp"].isoformat().replace("+00:00", "Z")}
               for e in row["top_events"] or ()]
        if top:
            maximus["top_events"] = top
        if row["sensor_id"] is not None:  # the events are one flow's (its Zeek uid, ...)
            maximus["sensor_id"] = row["sensor_id"]
        if row["reasons"]:
            maximus["reasons"] = row["reasons"]
        doc = _document(rule, rule_doc, event, row["unit"], risk[i], created_text, maximus)
        doc["event"].update(start=times["timestamp"][i], end=times["end"][i])
        related = [ip for e in (event, *top) for ip in (e["source_ip"], e["dest_ip"]) if ip]
        if related:
            doc["related"] = {"ip": list(dict.fromkeys(related))}
        docs.append(doc)
    return docs


def _document(rule: AlertRule, rule_doc: dict, event: dict, unit: str, risk: float,
              created: str, maximus: dict) -> dict[str, Any]:
    """One alert; a hot loop (thousands a second at 10k events/s): plain dict building."""
    time, source_ip, dest_ip = event["timestamp"], event["source_ip"], event["dest_ip"]
    doc: dict[str, Any] = {
        "@timestamp": time if time is not None else created,
        "event": {"kind": "alert", "id": alert_id(rule, unit), "created": created,
                  "risk_score": round(risk, 3), "severity": int(round(risk)),
                  "original_id": unit},
        "rule": rule_doc,
    }
    if event["event_type"]:
        doc["event"]["dataset"] = event["event_type"]
    for ecs, ip, port in (("source", source_ip, event["source_port"]),
                          ("destination", dest_ip, event["dest_port"])):
        if ip or port is not None:
            doc[ecs] = {"ip": ip, "port": port} if ip and port is not None else \
                ({"ip": ip} if ip else {"port": port})
    network = {k: v for k, v in (("transport", event["protocol"]), ("protocol", event["service"]),
                                 ("community_id", event["community_id"])) if v}
    if network:
        doc["network"] = network
    if source_ip or dest_ip:
        doc["related"] = {"ip": [ip for ip in dict.fromkeys((source_ip, dest_ip)) if ip]}
    for ecs, name in (("host", "host"), ("user", "user"), ("observer", "source")):
        if event[name]:
            doc[ecs] = {"name": event[name]}
    process = _process(event.get("process"))
    if event.get("command_line"):
        process["command_line"] = event["command_line"]
    if event.get("parent_process"):
        process["parent"] = _process(event["parent_process"])
    if process:
        doc["process"] = process
    if event["domain"]:  # the name the event is about, where ECS keeps it for its kind
        *parents, name = _DOMAIN_FIELDS.get(event["event_type"] or "", ("destination", "domain"))
        node = doc
        for parent in parents:
            node = node.setdefault(parent, {})
        node[name] = event["domain"]
    doc["maximus"] = maximus
    return doc


def _process(image: str | None) -> dict[str, str]:
    """ECS's process.name (the file name) and, for a path, process.executable."""
    if not image:
        return {}
    name = image.replace("\\", "/").rsplit("/", 1)[-1]
    return {"name": name} if name == image else {"name": name, "executable": image}
