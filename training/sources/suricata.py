"""Suricata EVE JSON (flow, alert, dns, http, tls, fileinfo, anomaly, stats, ...).

An alert is a threat: is_threat 1, label = the alert category, attack_type = the signature,
severity from the alert (Suricata's 1 = high .. 3 = low become 1.0 .. 0.33). Every other record
is unknown (-1) unless the source's `default_label` and label map say otherwise. `app_proto`
becomes `service`, except "failed" (`NO_SERVICE`): Suricata tried to detect the flow's
application protocol and could not, so the flow has no known service (null), not one named
"failed". The rule is the canonical mapping's (`training.collection.schema.NO_SERVICE`), so an
EVE file read as json: gets it too, and both recipes name it (`Source.recipe_params`).

Time: a `flow` (`netflow`) record happened at its `flow.start` (`netflow.start`). Its EVE
`timestamp` is when Suricata logged it (at the flow's end or timeout; in a replayed capture
many at one time: 3,571 of slips_test6's 5,000 records share one timestamp though their flows
span a day): timed by it, flows would crowd one window, and a Zeek conn (timed by `ts`, its
start) and the EVE flow of one connection would fall into different hours. So they are timed
by their start, as Zeek times a conn; a flow whose start is missing or
unreadable keeps its `timestamp`. Other records (an alert, dns, http) keep `timestamp`, the
moment they describe. A time field or map entry given in the config is used as given.
`collect` and `score --follow` map batches through the same `derive`; under --follow, a flow
is read when it is logged, so one logged after its window closed (`--window-grace`) is
quarantined as late, as a long Zeek conn is.

Ports: an ICMP record has none in EVE, only `icmp_type` and `icmp_code`; they become its source
and destination ports, as Zeek's conn.log writes them, so the record has a Community ID and
joins the Zeek conn and the alerts of its flow.

EVE's top-level `host` is the sensor's name (Suricata's `sensor-name`), the same on every
record of a sensor, not a party to the traffic: the canonical `host` is the machine an event
is about (an entity of layers 2 and 3), and the schema has no observer column. It becomes
`observer.hostname`, as for Suricata documents shipped through Elastic
(`training.sources.ecs`): kept in the events, never a layer-1 feature.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from training.collection.schema import NO_SERVICE as NO_SERVICE  # the rule, re-exported
from training.sources.alerts import alert_columns
from training.sources.base import RawBatch
from training.sources.coerce import plain, to_int, to_timestamp
from training.sources.config import FORMATS, DataSourceType
from training.sources.json_file import JsonFileSource

SURICATA_FIELD_MAP: dict[str, tuple[str, ...]] = {
    "timestamp": ("timestamp",),
    "event_type": ("event_type",),
    "source_ip": ("src_ip",),
    "source_port": ("src_port",),
    "dest_ip": ("dest_ip",),
    "dest_port": ("dest_port",),
    "protocol": ("proto",),
    "service": ("app_proto",),
    "bytes_sent": ("flow.bytes_toserver",),
    "bytes_received": ("flow.bytes_toclient",),
    "packets_sent": ("flow.pkts_toserver",),
    "packets_received": ("flow.pkts_toclient",),
    "conn_state": ("flow.state",),
    "direction": ("direction",),
    "community_id": ("community_id",),
    "domain": ("dns.rrname", "dns.query.rrname", "http.hostname", "tls.sni"),
    "file_path": ("fileinfo.filename",),
    "file_hash": ("fileinfo.sha256", "fileinfo.md5"),
    "label": ("label",),
}
RECIPE = 3  # what the source delivers: 2 = flows timed by their start, the sensor not `host`;
# 3 = an ICMP record's type and code as its ports (so it has a Community ID)
# Event types timed by their start, and the field that holds it.
STARTS = {"flow": "flow.start", "netflow": "netflow.start"}
# The time fields of the map, with and without the default time_field: EVE's own time.
_OWN_TIME = (SURICATA_FIELD_MAP["timestamp"], ("@timestamp", *SURICATA_FIELD_MAP["timestamp"]))
_SENSOR, _OBSERVER = "host", "observer.hostname"


class SuricataSource(JsonFileSource):
    """Suricata eve.json files (JSON Lines, plain or gzip), a folder of them or a glob."""

    field_map: ClassVar = SURICATA_FIELD_MAP
    format_name, format_fields = FORMATS[DataSourceType.SURICATA_LOGS]
    # logrotate's names too: eve.json.1, eve.json.2.gz, eve.json-20221201(.gz) (trial T)
    patterns: ClassVar[tuple[str, ...]] = ("*.json", "*.json.gz", "*.log", "*.log.gz",
                                           "*.json.[0-9]*", "*.json-*")

    def recipe_params(self) -> dict[str, object]:
        # A collection begun before these rules (flows at their logging time, the sensor as
        # host) is not resumed with them: its events would mix both.
        return {**super().recipe_params(), "eve_rules": RECIPE}

    def read(self, stream: str, start: dict) -> Iterator[RawBatch]:
        with self.open(stream) as source:
            yield from self.read_json(source, start, lines_only=True)

    def prepare(self, table: pa.Table) -> pa.Table:
        """The sensor's name (EVE `host`) renamed `observer.hostname` (module docstring); kept
        as it is where the table has both, or the config's field map reads `host` from it."""
        table = super().prepare(table)
        names = table.column_names
        if _SENSOR not in names or _OBSERVER in names or _SENSOR in self.fields.get("host", ()):
            return table
        return table.rename_columns([_OBSERVER if n == _SENSOR else n for n in names])

    def derive(self, table: pa.Table) -> dict[str, pa.Array]:
        names = set(table.column_names)
        derived: dict[str, pa.Array] = {}
        if "flow.start" in names and "flow.end" in names:
            start, end = (to_timestamp(table[c]).values.cast(pa.int64()) for c in ("flow.start", "flow.end"))
            derived["duration"] = pc.divide(pc.subtract(end, start).cast(pa.float64()), 1e6)
        if "event_type" not in names:
            return derived
        if self.fields["timestamp"] in _OWN_TIME:
            started = _flow_starts(table)
            if started is not None:
                derived["timestamp"] = started
        derived.update(_icmp_ports(table))
        alert = pc.fill_null(pc.equal(plain(table["event_type"]), "alert"), False)
        derived.update(alert_columns(table, alert, category=("alert.category",),
                                     signature=("alert.signature",), severity=("alert.severity",)))
        return derived


def _icmp_ports(table: pa.Table) -> dict[str, pa.Array]:
    """An ICMP record's type and code as its source and destination ports, as Zeek's conn.log
    writes them (null on other records): without them its Community ID could not be computed,
    and an EVE ICMP flow never joined the Zeek conn or the alert of the same flow."""
    derived: dict[str, pa.Array] = {}
    for field, name in (("source_port", "icmp_type"), ("dest_port", "icmp_code")):
        if name in table.column_names:
            converted = to_int(table[name], 0, 255, pa.int32(), "an ICMP type or code")
            derived[field] = converted.values  # an unreadable one is null: not rejected
    return derived


def _flow_starts(table: pa.Table) -> pa.Array | None:
    """Each flow (netflow) record's start, null for other records and unreadable starts; None
    when the batch has no start field."""
    kinds = plain(table["event_type"])
    starts = None
    for kind, field in STARTS.items():
        if field not in table.column_names:
            continue
        start = to_timestamp(table[field]).values  # an unreadable start is null: not rejected
        start = pc.if_else(pc.fill_null(pc.equal(kinds, kind), False), start, None)
        starts = start if starts is None else pc.coalesce(starts, start)
    return starts
