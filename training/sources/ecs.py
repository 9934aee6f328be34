"""Elastic Common Schema (ECS) documents: what their field names alone do not say.

ECS documents (Elasticsearch indices, Kibana or elasticdump exports, Filebeat output) mostly map
by name: `GENERIC_FIELD_MAP` in `training.collection.schema` lists `@timestamp`, `source.ip`,
`destination.port`, `network.transport`, `user.name`, ... and the names Filebeat's Zeek and
Suricata modules write (`zeek.connection.state`, `suricata.eve.event_type`, ...). A few need
more than a name, and are derived here for every source that does not define its own mapping:

- `event.duration` is in nanoseconds; the canonical duration is in seconds.
- Suricata alerts indexed by Filebeat (`suricata.eve.event_type` "alert", or `event.module`
  "suricata" with `event.kind` "alert") are threats, labeled as the EVE reader labels them
  (`training.sources.alerts`): the category from `rule.category`, the signature from
  `rule.name`, and the Suricata level that Filebeat moves to `event.severity`.
- `event.category` and `event.type` are lists; where no scalar field gives the event type
  (`event.dataset`, `event.action`, ...), their values joined ("network/connection,start")
  become it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from training.sources.alerts import alert_columns, first_present
from training.sources.coerce import plain, to_float

_ALERT_CATEGORY = ("rule.category", "suricata.eve.alert.category")
_ALERT_SIGNATURE = ("rule.name", "suricata.eve.alert.signature")
# Filebeat renames suricata.eve.alert.severity to event.severity; some pipelines keep both.
_ALERT_SEVERITY = ("suricata.eve.alert.severity", "event.severity")


def _equals(table: pa.Table, name: str, value: str) -> pa.Array | None:
    if name not in table.column_names:
        return None
    column = plain(table[name])
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return None
    return pc.fill_null(pc.equal(column, value), False)


def _suricata_alerts(table: pa.Table) -> pa.Array | None:
    """True for Suricata alerts indexed by Filebeat, None when the batch has no such field."""
    by_type = _equals(table, "suricata.eve.event_type", "alert")
    module, kind = _equals(table, "event.module", "suricata"), _equals(table, "event.kind", "alert")
    by_kind = pc.and_(module, kind) if module is not None and kind is not None else None
    if by_type is None:
        return by_kind
    return by_type if by_kind is None else pc.or_(by_type, by_kind)


def _joined(values: object) -> str | None:
    if isinstance(values, list):
        text = ",".join(str(v) for v in values if v is not None)
        return text or None
    return None if values is None else str(values)


def _list_event_type(table: pa.Table, mapped: Sequence[str]) -> pa.Array | None:
    """"category/type" from the ECS lists, only for rows no mapped candidate names a type."""
    names = table.column_names
    if "event.category" not in names:
        return None
    scalar = first_present(table, [c for c in mapped if c not in ("event.category", "event.type")])
    missing = (pc.is_null(scalar) if scalar is not None else pa.array([True] * table.num_rows))
    if not pc.any(missing).as_py():
        return None
    categories = table["event.category"].to_pylist()
    types = table["event.type"].to_pylist() if "event.type" in names else [None] * table.num_rows
    out = []
    for need, category, kind in zip(missing.to_pylist(), categories, types):
        parts = [p for p in (_joined(category), _joined(kind)) if p]
        out.append("/".join(parts) if need and parts else None)
    return pa.array(out, pa.string())


def derive_ecs(table: pa.Table, fields: Mapping[str, Sequence[str]]) -> dict[str, pa.Array]:
    """Canonical columns from ECS fields (see the module docstring); {} for other records.

    Args:
        table: the raw batch.
        fields: the source's resolved field map (to know which rows already have a type).
    """
    derived: dict[str, pa.Array] = {}
    if "event.duration" in table.column_names:
        nanoseconds = to_float(table["event.duration"], 0.0, "a duration").values
        derived["duration"] = pc.divide(nanoseconds, 1e9)
    alerts = _suricata_alerts(table)
    if alerts is not None:
        derived.update(alert_columns(table, alerts, _ALERT_CATEGORY, _ALERT_SIGNATURE,
                                     _ALERT_SEVERITY))
    event_type = _list_event_type(table, fields.get("event_type", ()))
    if event_type is not None:
        derived["event_type"] = event_type
    return derived
