"""Incidents: alerts grouped by entity and time window across layers, ranked.

A scan is hundreds of event alerts, a few edge alerts and a window alert on one host; an
incident puts them together. An alert's entity is its source address (the host that started
the flows), else its host or user (host logs), else the entity its unit names (`entity@bucket`, `source->dest@window`); its
window is its first-seen time floored to `window_seconds`.

Ranking: each alert's weight is how far into the benign tail it is, -log10 of the share of the
model's benign validation scores at or above it (from its percentile; `MAX_TAIL` where the
percentile is 100, and score/threshold where the model has no calibration). An incident's score
is the sum over layers of each layer's heaviest alert: evidence from several layers adds up,
hundreds of alerts of one kind do not. Ties (alerts past every benign score) go to the
incident whose alert is furthest above its threshold (score / threshold).

Columns of the incidents table (`INCIDENT_SCHEMA`): rank, entity, window_start, score,
alerts, per-layer counts (`layers`: list of {layer, alerts}), first_seen, last_seen, flows
(the alerts' events joined by Community ID: list of {community_id, event_ids, event_types},
so a Zeek conn and the Suricata alert of one flow sit together), and top (the heaviest alerts:
list of {layer, unit, score, percentile, reasons}).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from training.errors import ConfigError
from training.layers.reasons import REASON_TYPE
from training.scoring.context import TIME

MAX_TAIL = 6.0  # a score above every benign validation score: 1 in a million, at most
TOP_ALERTS = 3
_HEAVY = ("reasons", "top_events")  # nested columns read only where shown
INCIDENT_SCHEMA = pa.schema([
    ("rank", pa.int32()), ("entity", pa.string()), ("window_start", TIME),
    ("score", pa.float64()), ("alerts", pa.int64()),
    ("layers", pa.list_(pa.struct([("layer", pa.string()), ("alerts", pa.int64())]))),
    ("first_seen", TIME), ("last_seen", TIME),
    ("flows", pa.list_(pa.struct([("community_id", pa.string()),
                                  ("event_ids", pa.list_(pa.string())),
                                  ("event_types", pa.list_(pa.string()))]))),
    ("top", pa.list_(pa.struct([("layer", pa.string()), ("unit", pa.string()),
                                ("score", pa.float32()), ("percentile", pa.float32()),
                                ("reasons", pa.list_(REASON_TYPE))]))),
])


def alert_weight(row: dict[str, Any]) -> float:
    """How far into the benign tail one alert is (see the module docstring)."""
    percentile = row.get("percentile")
    if percentile is None:
        threshold = row.get("threshold") or 0.0
        return float(row["score"]) / threshold if threshold > 0 else float(row["score"])
    above = 1.0 - float(percentile) / 100.0  # share of benign scores at or above it
    return MAX_TAIL if above <= 10.0 ** -MAX_TAIL else -math.log10(above)


def entity_of(row: dict[str, Any]) -> str:
    """The host an alert is about: its source address, else its host or user (host logs),
    else the entity its unit names."""
    for key in ("source_ip", "host", "user"):
        if row.get(key):
            return str(row[key])
    return str(row["unit"]).split("@", 1)[0].split("->", 1)[0]


def build_incidents(alerts: Sequence[pa.Table] | pa.Table, window_seconds: float = 3600.0
                    ) -> pa.Table:
    """Group alert rows (the `score` output, any layers) into ranked incidents.

    Args:
        alerts: scored-unit tables (`training.scoring.alerts.OUTPUT_SCHEMA`); rows that do
            not alert are left out.
        window_seconds: the length of an incident's time window (> 0).

    Returns:
        The incidents, best first (`INCIDENT_SCHEMA`).
    """
    if not window_seconds > 0:
        raise ConfigError(f"window_seconds must be > 0, got {window_seconds}")
    tables = [alerts] if isinstance(alerts, pa.Table) else list(alerts)
    groups: dict[tuple[str, int], list[dict]] = defaultdict(list)
    reasons: list[pa.ChunkedArray] = []  # per table; read only for the alerts shown
    for source, table in enumerate(tables):
        table = table.filter(pc.field("is_alert"))
        reasons.append(table["reasons"] if "reasons" in table.column_names else None)
        light = table.select([n for n in table.column_names if n not in _HEAVY])
        for at, row in enumerate(light.to_pylist()):
            seen = row.get("first_seen") or row["time"]
            slot = math.floor(seen.timestamp() / window_seconds) if seen else 0
            row["_at"] = (source, at)
            groups[(entity_of(row), slot)].append(row)
    incidents = [_incident(entity, slot * window_seconds, rows, reasons)
                 for (entity, slot), rows in groups.items()]
    incidents.sort(key=lambda i: (-i["score"], -i.pop("peak"), i["window_start"], i["entity"]))
    for rank, incident in enumerate(incidents, 1):
        incident["rank"] = rank
    return pa.Table.from_pylist(incidents, schema=INCIDENT_SCHEMA)


def _incident(entity: str, start: float, rows: list[dict],
              reasons: list[pa.ChunkedArray | None]) -> dict[str, Any]:
    weights = [alert_weight(r) for r in rows]
    best: dict[str, float] = {}
    counts: dict[str, int] = defaultdict(int)
    for row, weight in zip(rows, weights):
        counts[row["layer"]] += 1
        best[row["layer"]] = max(best.get(row["layer"], -math.inf), weight)
    seen = [t for r in rows for t in (r.get("first_seen"), r.get("last_seen"), r["time"]) if t]
    order = sorted(range(len(rows)), key=lambda i: -weights[i])[:TOP_ALERTS]
    return {
        "entity": entity, "window_start": datetime.fromtimestamp(start, timezone.utc),
        "score": sum(best.values()), "alerts": len(rows), "peak": _peak(rows),
        "layers": [{"layer": k, "alerts": counts[k]} for k in sorted(counts)],
        "first_seen": min(seen) if seen else None, "last_seen": max(seen) if seen else None,
        "flows": _flows(rows),
        "top": [{**{k: rows[i].get(k) for k in ("layer", "unit", "score", "percentile")},
                 "reasons": _reasons_of(rows[i]["_at"], reasons)} for i in order],
    }


def _reasons_of(at: tuple[int, int], reasons: list[pa.ChunkedArray | None]) -> Any:
    column = reasons[at[0]]
    return None if column is None else column[at[1]].as_py()


def _peak(rows: list[dict]) -> float:
    """The highest score/threshold of the alerts: breaks ties between incidents whose alerts
    are all beyond every benign validation score (the tail weight tops out there)."""
    return max(float(r["score"]) / r["threshold"] if r.get("threshold") else float(r["score"])
               for r in rows)


def _flows(rows: list[dict]) -> list[dict[str, Any]]:
    """The alerts' events joined by Community ID (alerts without one are left out)."""
    flows: dict[str, dict[str, list[str]]] = {}
    for row in rows:
        flow_id = row.get("community_id")
        if not flow_id:
            continue
        flow = flows.setdefault(flow_id, {"event_ids": [], "event_types": []})
        flow["event_ids"].extend(i for i in row["event_ids"] if i not in flow["event_ids"])
        if row.get("event_type") and row["event_type"] not in flow["event_types"]:
            flow["event_types"].append(row["event_type"])
    return [{"community_id": k, **v} for k, v in flows.items()]
