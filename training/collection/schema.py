"""The canonical event schema, field maps and label maps.

Every source is mapped onto one Arrow schema (`CANONICAL_SCHEMA`): the columns below, in this
order, followed by any fields the source has beyond them ("extras", kept under their original
names, never dropped).

| column | type | meaning |
|---|---|---|
| timestamp | timestamp[us, UTC] | when the event happened |
| event_id | string | the source's own id (Zeek `conn:<uid>`), else a content hash |
| source | string | name of the `DataSource` it came from |
| event_type | string | Zeek log path, Suricata event_type, `security:4688`, ... |
| source_ip, dest_ip | string | addresses as written by the sensor |
| source_port, dest_port | int32 | 0..65535 |
| protocol | string | lower-case transport: tcp, udp, icmp, ... |
| service | string | application protocol (dns, http, ssl, ...) |
| bytes_sent, bytes_received | int64 | payload bytes from the originator / responder |
| packets_sent, packets_received | int64 | packets from the originator / responder |
| duration | float64 | seconds |
| conn_state | string | connection state (Zeek conn_state, Suricata flow.state) |
| direction | string | inbound, outbound, internal or external |
| community_id | string | Community ID v1 flow hash; computed from the 5-tuple if absent |
| severity | float32 | 0 (informational) .. 1 (critical) |
| user, host, process, parent_process, command_line | string | who and what |
| file_path, file_hash, domain | string | objects touched |
| label | string | the raw label text |
| is_threat | int8 | -1 unknown, 0 benign, 1 threat |
| attack_type | string | detailed label, alert signature or ATT&CK technique |

A field map says where each canonical column comes from: canonical name -> source field name,
or a list of names tried in order (the first present, non-null value wins). Source modules
define their own maps; a user map given to a `DataSource` overrides entries of the source's map.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.errors import ConfigError

CANONICAL_SCHEMA = pa.schema(
    [
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("event_id", pa.string()),
        ("source", pa.string()),
        ("event_type", pa.string()),
        ("source_ip", pa.string()),
        ("source_port", pa.int32()),
        ("dest_ip", pa.string()),
        ("dest_port", pa.int32()),
        ("protocol", pa.string()),
        ("service", pa.string()),
        ("bytes_sent", pa.int64()),
        ("bytes_received", pa.int64()),
        ("packets_sent", pa.int64()),
        ("packets_received", pa.int64()),
        ("duration", pa.float64()),
        ("conn_state", pa.string()),
        ("direction", pa.string()),
        ("community_id", pa.string()),
        ("severity", pa.float32()),
        ("user", pa.string()),
        ("host", pa.string()),
        ("process", pa.string()),
        ("parent_process", pa.string()),
        ("command_line", pa.string()),
        ("file_path", pa.string()),
        ("file_hash", pa.string()),
        ("domain", pa.string()),
        ("label", pa.string()),
        ("is_threat", pa.int8()),
        ("attack_type", pa.string()),
    ]
)
CANONICAL_FIELDS: tuple[str, ...] = tuple(CANONICAL_SCHEMA.names)
LABEL_FIELDS = ("label", "is_threat", "attack_type")
# Source fields that hold a label, or that a label is derived from, beyond the canonical label
# columns: they stay in the events (nothing is dropped) but never become features. A name
# ending in ".*" covers every field under that prefix (Suricata's alert.signature, ...).
LABEL_SOURCE_FIELDS = (
    "label", "Label", "detailedlabel", "detailed-label", "detailed_label", "is_threat",
    "attack_type", "raw.label", "raw.is_threat", "raw.attack_type", "difficulty",
    "difficulty_level", "attack_cat", "mitre_technique", "alert.*", "flow.alerted",
    "suricata.eve.alert.*", "suricata.eve.flow.alerted", "rule.*",
)
# What the shippers add around a record (Filebeat, Elastic Agent, Logstash): how and by whom it
# was shipped, not what happened. Kept in the events, never a layer-1 feature, so a record scores
# the same whether it was read from the sensor's log or shipped through Elastic
# (`training.sources.ecs`). event.dataset and event.duration are mapped and kept too.
SHIPPING_FIELDS = (
    "event.kind", "event.module", "event.category", "event.type", "event.dataset",
    "event.duration", "event.created", "event.ingested", "event.original", "event.id",
    "event.timezone", "tags", "agent.*", "ecs.*", "input.*", "log.*", "fileset.*", "service.*",
    "host.*", "observer.*", "data_stream.*", "elastic_agent.*", "cloud.*",
)
NOT_FEATURE_FIELDS = LABEL_SOURCE_FIELDS + SHIPPING_FIELDS  # layer 1's default `label_fields`
# Fields that the generic map's documents use as objects of fields (ECS's envelope: host,
# service, agent, ...; Suricata's alert): a mapped name among them may hold an object, read as
# its dotted fields, rather than one value (`training.collection.value_shapes`).
OBJECT_FIELDS = frozenset(f[:-2] for f in NOT_FEATURE_FIELDS if f.endswith(".*"))
# Event types of detections (a Suricata alert, a Zeek notice or weird): when every threat label
# sits on one of them, the labels come from alerts (`labels_from_alerts`).
ALERT_EVENT_TYPES = ("alert", "notice", "weird", "anomaly")
# Records about the sensor itself, not traffic (Suricata's and Zeek's counters, Zeek's capture
# loss, loaded scripts and filters): no model should learn from or score them.
SENSOR_EVENT_TYPES = ("stats", "capture_loss", "loaded_scripts", "packet_filter", "reporter",
                      "broker", "cluster")


def sensor_records(event_types: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Mask of the records of `SENSOR_EVENT_TYPES`."""
    found = pc.is_in(event_types, value_set=pa.array(SENSOR_EVENT_TYPES)).fill_null(False)
    return found.to_numpy(zero_copy_only=False)


def labeled(table: pa.Table) -> np.ndarray:
    """Which rows of a canonical table carry a label (is_threat 0 or 1, not -1)."""
    return table["is_threat"].to_numpy(zero_copy_only=False) >= 0


def traffic_times(table: pa.Table) -> tuple[int, int]:
    """(traffic records of `table`, those without a time): the sensor's own records, untimed
    as many are (Zeek's loaded_scripts.log), are neither."""
    traffic = ~sensor_records(table["event_type"])
    return int(traffic.sum()), int((traffic & ~table["timestamp"].is_valid().to_numpy(
        zero_copy_only=False)).sum())


def is_label_field(name: str, fields: Sequence[str] = LABEL_SOURCE_FIELDS) -> bool:
    """Whether source field `name` is one of `fields` (a "prefix.*" entry covers its prefix)."""
    return any(name == f or (f.endswith(".*") and name.startswith(f[:-1])) for f in fields)


def labels_from_alerts(events: pa.Table) -> bool:
    """True when the events' threat labels all sit on alert events (a Suricata EVE file: an
    alert is a threat, every other record unknown or benign): the labels are the detections
    themselves, so a model whose input holds those events would be scored on finding them."""
    threat = pc.equal(events["is_threat"], 1).fill_null(False)
    if not pc.any(threat).as_py():
        return False
    kinds = pc.is_in(events["event_type"], value_set=pa.array(ALERT_EVENT_TYPES)).fill_null(False)
    return bool(pc.all(pc.or_(pc.invert(threat), kinds)).as_py())

# Fields the collector fills itself; a field map may still name a source column for them.
_DERIVED = {"source"}

FieldMap = Mapping[str, str | Sequence[str]]

# Names used by generic exports (JSON, CSV, Parquet): our own output, Zeek-style CSV (IoT-23),
# common SIEM export spellings, Splunk's `_time` and its CIM Network Traffic names (transport,
# bytes_out/packets_out: from src, bytes_in/packets_in: to it; CIM's src and dest are left out,
# as they may hold a host name rather than an address: map them with --field-map), then the
# Elastic Common Schema and the names Filebeat's Zeek and Suricata modules index (so an
# Elasticsearch index and a JSON export of it map the same way; `training.sources.ecs` derives
# what needs more than a name, like event.duration in ns, and renames Filebeat's Zeek names).
# Source modules start from this map or write their own. `FIELD_NAMES` names the rules: a
# collection's recipe holds it, so one collected under other rules is refused on resume.
FIELD_NAMES = "ecs-sensor-names.v1"
GENERIC_FIELD_MAP: dict[str, tuple[str, ...]] = {
    "timestamp": ("timestamp", "@timestamp", "ts", "time", "event_time", "_time"),
    "event_id": ("event_id", "_id"),
    "event_type": ("event_type", "suricata.eve.event_type", "event.dataset", "event.action"),
    "source_ip": ("source_ip", "src_ip", "srcip", "id.orig_h", "source.ip"),
    "source_port": ("source_port", "src_port", "sport", "id.orig_p", "source.port"),
    "dest_ip": ("dest_ip", "dst_ip", "dstip", "destination_ip", "id.resp_h", "destination.ip"),
    "dest_port": ("dest_port", "dst_port", "dport", "destination_port", "id.resp_p", "destination.port"),
    "protocol": ("protocol", "proto", "network.transport", "transport"),
    "service": ("service", "app_proto", "network.protocol", "network.application"),
    "bytes_sent": ("bytes_sent", "orig_bytes", "src_bytes", "bytes_out", "source.bytes"),
    "bytes_received": ("bytes_received", "resp_bytes", "dst_bytes", "bytes_in", "destination.bytes"),
    "packets_sent": ("packets_sent", "orig_pkts", "src_pkts", "packets_out", "source.packets"),
    "packets_received": ("packets_received", "resp_pkts", "dst_pkts", "packets_in",
                         "destination.packets"),
    "duration": ("duration",),
    "conn_state": ("conn_state", "zeek.connection.state", "suricata.eve.flow.state"),
    "direction": ("direction", "network.direction"),
    "community_id": ("community_id", "network.community_id"),
    "severity": ("severity", "event.severity"),
    "user": ("user", "username", "user_name", "user.name"),
    "host": ("host", "hostname", "host.name", "host.hostname"),
    "process": ("process", "process_name", "process.name"),
    "parent_process": ("parent_process", "process.parent.name"),
    "command_line": ("command_line", "process.command_line"),
    "file_path": ("file_path", "file.path"),
    "file_hash": ("file_hash", "file.hash.sha256", "file.hash.sha1", "file.hash.md5"),
    "domain": ("domain", "dns.question.name", "url.domain", "tls.client.server_name",
               "zeek.dns.query", "zeek.ssl.server_name"),
    "label": ("label", "Label"),
    "is_threat": ("is_threat",),
    "attack_type": ("attack_type", "detailed_label", "detailedlabel", "detailed-label"),
}
# Values of a service field that name no service: Suricata's app_proto "failed" (it tried to
# detect the flow's application protocol and could not; most flows of some captures) is no
# service, not one named "failed", whichever source reads it (suricata:, json:, csv:, ...).
# Applied where `service` becomes canonical (`collection.canonical`, `canonical_record`), and
# named in the recipe of every source whose service is read from one of these fields
# (`Source.recipe_params`), so a collection made without the rule is not resumed with it.
NO_SERVICE_FIELDS = ("app_proto",)
NO_SERVICE = ("failed",)


def resolve_field_map(base: FieldMap, override: FieldMap | None = None) -> dict[str, tuple[str, ...]]:
    """Merge a user field map over a source's map, validating both.

    Raises:
        ConfigError: a key is not a canonical field (the message lists them), or a value is not
            a field name or a list of names.
    """
    merged: dict[str, tuple[str, ...]] = {}
    for mapping in (base, override or {}):
        for field, names in mapping.items():
            if field not in CANONICAL_FIELDS or field in _DERIVED:
                raise ConfigError(
                    f"field map key {field!r} is not a canonical field; a field map goes from "
                    f"canonical name to source field name(s). Canonical fields: "
                    f"{', '.join(f for f in CANONICAL_FIELDS if f not in _DERIVED)}"
                )
            # Anything but a str or a sequence is kept whole, so the check below refuses it.
            candidates = (tuple(names) if isinstance(names, Sequence) and not isinstance(names, str)
                          else (names,))
            if not all(isinstance(n, str) and n for n in candidates):
                raise ConfigError(
                    f"field map entry {field!r} must be a field name or a list of names, got {names!r}"
                )
            merged[field] = candidates
    return merged


def _normalize(text: str) -> str:
    return text.strip().casefold()


class LabelMap:
    """Turns raw label text into `is_threat`: 0 benign, 1 threat, -1 unknown.

    Defaults: benign/normal/0 -> 0; background/unknown/empty/"-"/"(empty)" -> -1; anything else
    (Malicious, neptune, C&C-Torii, an alert category, ...) -> 1. Matching ignores case and
    surrounding blanks. Overrides take precedence, e.g. `{"Background": 0}` for a capture known
    to be clean, or `{"Not Suspicious Traffic": 0}` for a Suricata category.

    Args:
        overrides: raw label text -> -1, 0 or 1.
    """

    DEFAULTS: Mapping[str, int] = {
        "benign": 0,
        "normal": 0,
        "0": 0,
        "background": -1,
        "unknown": -1,
        "": -1,
        "-": -1,
        "(empty)": -1,
    }

    def __init__(self, overrides: Mapping[str, int] | None = None) -> None:
        self.overrides = dict(overrides or {})
        for text, value in self.overrides.items():
            if not isinstance(text, str) or value not in (-1, 0, 1) or isinstance(value, bool):
                raise ConfigError(
                    f"label map entries must map text to -1, 0 or 1, got {text!r}: {value!r}"
                )
        self._table = dict(self.DEFAULTS)
        self._table.update({_normalize(k): v for k, v in self.overrides.items()})
        # The labels read (normalized, the first SEEN_KEPT of them): an override that matches
        # none is a typo or a label of another capture (`unmatched`).
        self.seen: set[str] = set()

    SEEN_KEPT = 1000

    def classify_one(self, label: str | None) -> int:
        """is_threat for one raw label; None is unknown."""
        if label is None:
            return -1
        key = _normalize(label)
        if len(self.seen) < self.SEEN_KEPT:
            self.seen.add(key)
        return self._table.get(key, 1)

    def unmatched(self) -> list[str]:
        """The overrides that matched no label read so far (as given); none before any label
        was read, or when more distinct labels than `SEEN_KEPT` were (unknown then)."""
        if not self.seen or len(self.seen) >= self.SEEN_KEPT:
            return []
        return [text for text in self.overrides if _normalize(text) not in self.seen]

    def classify(self, labels: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """is_threat (int8) for every label, classifying each distinct text once."""
        encoded = pc.dictionary_encode(labels)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        classes = np.array(
            [self.classify_one(v) for v in encoded.dictionary.to_pylist()] + [-1], dtype=np.int8
        )
        indices = encoded.indices.fill_null(len(classes) - 1)
        return classes[indices.to_numpy(zero_copy_only=False)]
