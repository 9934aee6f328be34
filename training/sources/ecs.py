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

The same sensor record gives the same canonical columns and the same extras whether it was read
from the sensor's own log or shipped through Elastic (`normalize_ecs`, `derive_ecs`):

- `event.dataset` "zeek.<fileset>" is the Zeek log path (`ZEEK_FILESETS`: connection -> conn,
  signature -> signatures, else the fileset's name); "suricata.eve" is the EVE `event_type`
  (`suricata.eve.event_type`).
- Filebeat's Zeek names go back to Zeek's: `zeek.session_id` -> `uid` (so the Zeek uid is the
  alert's sensor_id, and a conn record's event id is "conn:<uid>" where the document has no
  `_id`, as for a raw conn.log), `zeek.connection.state` -> `conn_state` and every other
  `zeek.connection.<name>` (history, local_orig, local_resp, missed_bytes) -> `<name>`; with
  no `network.direction`, the direction follows local_orig/local_resp as for the raw log.
- A network sensor's document (`event.module` zeek or suricata) names in `host.*` the machine
  that shipped it, not a party to the traffic: `host.name`/`host.hostname` move to
  `observer.hostname`, so the canonical `host` stays empty as for the raw log.
- The envelope (`SHIPPING_FIELDS` in `training.collection.schema`: event.kind, event.module,
  tags, agent.*, ecs.version, log.*, input.type, fileset.*, ...) stays in the events but is
  never a layer-1 feature.

Filebeat's Zeek module drops `orig_bytes`/`resp_bytes` and writes Zeek's IP-level byte counts
(`orig_ip_bytes`) as `source.bytes`; bytes_sent of such an index counts IP headers too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from training.sources.alerts import alert_columns, first_present
from training.sources.coerce import (
    direction_from_locality, null_where, plain, to_float, to_string,
)

_ALERT_CATEGORY = ("rule.category", "suricata.eve.alert.category")
_ALERT_SIGNATURE = ("rule.name", "suricata.eve.alert.signature")
# Filebeat renames suricata.eve.alert.severity to event.severity; some pipelines keep both.
_ALERT_SEVERITY = ("suricata.eve.alert.severity", "event.severity")
# Filebeat's Zeek fileset names whose Zeek log path differs; others are the path itself.
ZEEK_FILESETS = {"connection": "conn", "signature": "signatures"}
# Filebeat's Zeek field names -> Zeek's; any other `zeek.connection.<name>` becomes `<name>`.
ZEEK_NAMES = {"zeek.session_id": "uid", "zeek.connection.state": "conn_state"}
_ZEEK_CONNECTION = "zeek.connection."
_SENSOR_MODULES = ("zeek", "suricata")  # whose host.* is the shipper's, not a party's
_SHIPPER_HOST = ("host.name", "host.hostname")
_OBSERVER = "observer.hostname"


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


def normalize_ecs(table: pa.Table) -> pa.Table:
    """Filebeat's Zeek names renamed to Zeek's, and a network sensor's shipper host moved to
    `observer.hostname` (see the module docstring); other tables are returned unchanged. A name
    that the table already has is left as it is (nothing is overwritten)."""
    names = table.column_names
    if "event.dataset" not in names and "event.module" not in names:
        return table  # not shipped by Filebeat or Elastic Agent
    renamed = []
    for name in names:
        target = ZEEK_NAMES.get(name) or (name[len(_ZEEK_CONNECTION):]
                                          if name.startswith(_ZEEK_CONNECTION) else None)
        taken = target is None or target in names or target in renamed
        renamed.append(name if taken else target)
    table = table.rename_columns(renamed)
    sensor = _in(table, "event.module", _SENSOR_MODULES)
    shipped = [n for n in _SHIPPER_HOST if n in table.column_names]
    if sensor is None or not shipped or _OBSERVER in table.column_names:
        return table
    hosts = [to_string(table[n]).values for n in shipped]
    host = hosts[0] if len(hosts) == 1 else pc.coalesce(*hosts)
    for name in shipped:
        at = table.column_names.index(name)
        table = table.set_column(at, name, null_where(plain(table[name]), sensor))
    return table.append_column(_OBSERVER, null_where(host, pc.invert(sensor)))


def _in(table: pa.Table, name: str, values: Sequence[str]) -> pa.Array | None:
    """True where text column `name` is one of `values`; None when it is absent or not text."""
    if name not in table.column_names:
        return None
    column = plain(table[name])
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return None
    return pc.fill_null(pc.is_in(column, value_set=pa.array(values, pa.string())), False)


def _dataset_event_type(table: pa.Table) -> pa.Array | None:
    """The Zeek log path of "zeek.<fileset>" rows and the EVE event_type of "suricata.eve"
    rows (null elsewhere); None when the table has no text `event.dataset`."""
    if _in(table, "event.dataset", ()) is None:
        return None
    datasets = plain(table["event.dataset"]).to_pylist()
    eve = (to_string(table["suricata.eve.event_type"]).values.to_pylist()
           if "suricata.eve.event_type" in table.column_names else [None] * len(datasets))
    out = []
    for dataset, eve_type in zip(datasets, eve):
        if dataset is not None and dataset.startswith("zeek."):
            fileset = dataset[len("zeek."):]
            out.append(ZEEK_FILESETS.get(fileset, fileset) or None)
        else:
            out.append(eve_type if dataset == "suricata.eve" else None)
    return pa.array(out, pa.string())


def _zeek_conn_ids(table: pa.Table, event_type: pa.Array, mapped: Sequence[str]
                   ) -> pa.Array | None:
    """"conn:<uid>" for Zeek conn records with no mapped id (an index's `_id` is kept)."""
    if "uid" not in table.column_names:
        return None
    own = pc.utf8_replace_slice(to_string(table["uid"]).values, 0, 0, "conn:")
    own = null_where(own, pc.invert(pc.fill_null(pc.equal(event_type, "conn"), False)))
    given = first_present(table, mapped)
    return own if given is None else pc.coalesce(to_string(given).values, own)


def derive_ecs(table: pa.Table, fields: Mapping[str, Sequence[str]]) -> dict[str, pa.Array]:
    """Canonical columns from ECS fields (see the module docstring); {} for other records.

    Args:
        table: the raw batch, after `normalize_ecs`.
        fields: the source's resolved field map (to know which rows already have a type or
            an id).
    """
    derived: dict[str, pa.Array] = {}
    dataset_type = _dataset_event_type(table)
    if dataset_type is not None:
        derived["event_type"] = dataset_type
        ids = _zeek_conn_ids(table, dataset_type, fields.get("event_id", ()))
        if ids is not None:
            derived["event_id"] = ids
        names = table.column_names
        if not set(fields.get("direction", ())) & set(names) and {"local_orig",
                                                                  "local_resp"} <= set(names):
            derived["direction"] = direction_from_locality(table["local_orig"],
                                                           table["local_resp"])
    if "event.duration" in table.column_names:
        nanoseconds = to_float(table["event.duration"], 0.0, "a duration").values
        derived["duration"] = pc.divide(nanoseconds, 1e9)
    alerts = _suricata_alerts(table)
    if alerts is not None:
        derived.update(alert_columns(table, alerts, _ALERT_CATEGORY, _ALERT_SIGNATURE,
                                     _ALERT_SEVERITY))
    event_type = _list_event_type(table, fields.get("event_type", ()))
    if event_type is not None:  # only rows no dataset or mapped field names a type
        derived["event_type"] = (event_type if dataset_type is None
                                 else pc.coalesce(dataset_type, event_type))
    return derived
