"""Alerts as Elastic Common Schema documents: the field names the SIEM already uses.

One document per alerting event (layer 1):

    {"@timestamp": event time, "event": {"kind": "alert", "id", "created", "dataset",
     "risk_score", "severity", "original_id"}, "rule": {"name", "id", "version", "ruleset"},
     "source": {"ip", "port"}, "destination": {"ip", "port"}, "network": {"transport",
     "protocol", "community_id"}, "related": {"ip": [...]}, "observer": {"name"},
     "maximus": {"layer", "unit", "score", "threshold", "percentile", "event_ids"}}

`event.risk_score` (0-100) is the score's percentile among the model's benign validation scores
when the model has a calibration; otherwise 50 at the threshold, 100 from twice the threshold.
`event.id` is a digest of (model, version, unit): a replayed batch (a restart after a crash)
gives the same id, so an index keyed on it holds each alert once. Empty values are left out,
as ECS producers do.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from training.evaluation.calibration import Calibration

_FIELDS = ("timestamp", "event_id", "event_type", "source", "source_ip", "source_port", "dest_ip",
           "dest_port", "protocol", "service", "community_id", "host", "user", "domain")


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


def alert_id(rule: AlertRule, unit: str) -> str:
    """The stable id of the alert `rule` raises on `unit` (the same on every replay)."""
    key = f"{rule.model_name}\x00{rule.version}\x00{unit}".encode()
    return hashlib.blake2b(key, digest_size=16).hexdigest()


def event_alerts(rule: AlertRule, events: pa.Table, scores: np.ndarray,
                 created: datetime | None = None) -> list[dict[str, Any]]:
    """ECS documents for the events of `events` whose score reaches the rule's threshold.

    Args:
        rule: the model and its threshold.
        events: canonical events, one per score (layer-1 units).
        scores: (n,) anomaly scores, higher = more anomalous.
        created: when the alerts were made (default now, UTC).
    """
    rows = np.flatnonzero(scores >= rule.threshold)
    if not len(rows):
        return []
    created_text = (created or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    picked = events.select([f for f in _FIELDS if f in events.column_names]).take(pa.array(rows))
    risk = rule.risk_scores(scores[rows])
    percentiles = risk if rule.calibration is not None else None
    docs = []
    for i, (event, score) in enumerate(zip(picked.to_pylist(), scores[rows].tolist())):
        unit = event.get("event_id") or ""
        maximus = {"layer": rule.layer, "unit": unit, "score": score,
                   "threshold": rule.threshold, "event_ids": [unit]}
        if percentiles is not None:
            maximus["percentile"] = float(percentiles[i])
        docs.append(_document(rule, event, unit, float(risk[i]), created_text, maximus))
    return docs


def _document(rule: AlertRule, event: dict, unit: str, risk: float, created: str,
              maximus: dict) -> dict[str, Any]:
    time = event.get("timestamp")
    source = _drop_empty({"ip": event.get("source_ip"), "port": event.get("source_port")})
    destination = _drop_empty({"ip": event.get("dest_ip"), "port": event.get("dest_port")})
    related = [ip for ip in (event.get("source_ip"), event.get("dest_ip")) if ip]
    event_type = event.get("event_type")
    doc = {
        "@timestamp": time.isoformat().replace("+00:00", "Z") if time is not None else created,
        "event": _drop_empty({
            "kind": "alert", "id": alert_id(rule, unit), "created": created,
            "dataset": f"{event.get('source')}.{event_type}" if event_type else None,
            "risk_score": round(risk, 3), "severity": int(round(risk)), "original_id": unit,
        }),
        "rule": {"name": rule.name, "id": rule.model_name, "version": rule.version,
                 "ruleset": "maximus"},
        "source": source, "destination": destination,
        "network": _drop_empty({"transport": event.get("protocol"),
                                "protocol": event.get("service"),
                                "community_id": event.get("community_id")}),
        "related": {"ip": list(dict.fromkeys(related))} if related else {},
        "host": _drop_empty({"name": event.get("host")}),
        "user": _drop_empty({"name": event.get("user")}),
        "dns": _drop_empty({"question": _drop_empty({"name": event.get("domain")})}),
        "observer": _drop_empty({"name": event.get("source")}),
        "maximus": maximus,
    }
    return _drop_empty(doc)


def _drop_empty(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not None and v != {} and v != ""}
