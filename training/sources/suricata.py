"""Suricata EVE JSON (flow, alert, dns, http, tls, fileinfo, anomaly, stats, ...).

An alert is a threat: is_threat 1, label = the alert category, attack_type = the signature,
severity from the alert (Suricata's 1 = high .. 3 = low become 1.0 .. 0.33). Every other record
is unknown (-1) unless the source's `default_label` and label map say otherwise. `app_proto`
becomes `service`, except "failed" (`NO_SERVICE`): Suricata tried to detect the flow's
application protocol and could not, so the flow has no known service (null), not one named
"failed". The rule is the canonical mapping's (`training.collection.schema.NO_SERVICE`), so an
EVE file read as json: gets it too, and both recipes name it (`Source.recipe_params`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from training.collection.schema import NO_SERVICE as NO_SERVICE  # the rule, re-exported
from training.sources.alerts import alert_columns
from training.sources.base import RawBatch
from training.sources.coerce import plain, to_timestamp
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
    "host": ("host",),
    "domain": ("dns.rrname", "dns.query.rrname", "http.hostname", "tls.sni"),
    "file_path": ("fileinfo.filename",),
    "file_hash": ("fileinfo.sha256", "fileinfo.md5"),
    "label": ("label",),
}


class SuricataSource(JsonFileSource):
    """Suricata eve.json files (JSON Lines, plain or gzip), a folder of them or a glob."""

    field_map: ClassVar = SURICATA_FIELD_MAP
    format_name, format_fields = FORMATS[DataSourceType.SURICATA_LOGS]
    patterns: ClassVar[tuple[str, ...]] = ("*.json", "*.json.gz", "*.log", "*.log.gz")

    def read(self, stream: str, start: dict) -> Iterator[RawBatch]:
        with self.open(stream) as source:
            yield from self.read_json(source, start, lines_only=True)

    def derive(self, table: pa.Table) -> dict[str, pa.Array]:
        names = set(table.column_names)
        derived: dict[str, pa.Array] = {}
        if "flow.start" in names and "flow.end" in names:
            start, end = (to_timestamp(table[c]).values.cast(pa.int64()) for c in ("flow.start", "flow.end"))
            derived["duration"] = pc.divide(pc.subtract(end, start).cast(pa.float64()), 1e6)
        if "event_type" not in names:
            return derived
        alert = pc.fill_null(pc.equal(plain(table["event_type"]), "alert"), False)
        derived.update(alert_columns(table, alert, category=("alert.category",),
                                     signature=("alert.signature",), severity=("alert.severity",)))
        return derived

