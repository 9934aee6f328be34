"""What a user configures: the kind of source and where and how to read it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import Enum

from training.collection.schema import FieldMap, LabelMap
from training.errors import ConfigError, did_you_mean

# connection_params never shown (in reprs, hence in logs and tracebacks) nor stored.
SECRET_PARAMS = frozenset({"api_key", "password"})


class DataSourceType(str, Enum):
    """Kinds of sources; the values are the original system's names."""

    ELASTIC = "elasticsearch"
    SPLUNK = "splunk"
    QRADAR = "qradar"
    JSON_FILE = "json_file"
    CSV_FILE = "csv_file"
    PARQUET_FILE = "parquet_file"
    ZEEK_LOGS = "zeek_logs"
    SURICATA_LOGS = "suricata_logs"
    WINDOWS_EVENTS = "windows_events"


# Short names the command line and TOML files accept beside the DataSourceType values.
TYPE_ALIASES = {
    "json": DataSourceType.JSON_FILE, "jsonl": DataSourceType.JSON_FILE,
    "csv": DataSourceType.CSV_FILE, "parquet": DataSourceType.PARQUET_FILE,
    "zeek": DataSourceType.ZEEK_LOGS, "suricata": DataSourceType.SURICATA_LOGS,
    "windows": DataSourceType.WINDOWS_EVENTS, "es": DataSourceType.ELASTIC,
    **{t.value: t for t in DataSourceType},
}

# What each typed format is called, and the fields that mark its records (a file of records
# carrying none of them was given the wrong type: `training.sources.sniff`).
FORMATS: dict[DataSourceType, tuple[str, tuple[str, ...]]] = {
    DataSourceType.ZEEK_LOGS: ("Zeek", ("ts", "uid", "id.orig_h", "_path")),
    DataSourceType.SURICATA_LOGS: ("Suricata EVE", ("timestamp", "event_type", "flow_id",
                                                    "in_iface")),
    DataSourceType.WINDOWS_EVENTS: ("Windows events", ("EventID", "Channel", "TimeCreated",
                                                       "UtcTime", "Computer",
                                                       "winlog.event_id")),
}
# What the typed readers read: records of a file in another syntax (a CSV of Windows events)
# reach none of them, however their fields look, so no refusal points such a file to one
# (`training.sources.sniff`). `Source.syntax` says what a source read the refused records from.
FORMAT_SYNTAX: dict[DataSourceType, frozenset[str]] = {
    DataSourceType.ZEEK_LOGS: frozenset({"json", "zeek_tsv"}),
    DataSourceType.SURICATA_LOGS: frozenset({"json"}),
    DataSourceType.WINDOWS_EVENTS: frozenset({"json"}),
}


def source_type(name: DataSourceType | str) -> DataSourceType:
    """The DataSourceType a value or alias names (see `TYPE_ALIASES`).

    Raises:
        ConfigError: an unknown name; the message lists the valid ones.
    """
    if isinstance(name, DataSourceType):
        return name
    try:
        return TYPE_ALIASES[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown source type {name!r}{did_you_mean(str(name), TYPE_ALIASES)}; "
                          f"use one of {', '.join(sorted(TYPE_ALIASES))}") from None


@dataclass
class DataSource:
    """One input to collect from.

    Args:
        name: how events from it are tagged (`source` column) and checkpointed.
        source_type: a `DataSourceType` (or its value, e.g. "zeek_logs", or an alias: "zeek").
        connection_params: where and how to read; file sources take `path` (a file, directory,
            glob or list), `block_size` and `max_decompressed_bytes`, plus format options
            (see each source module).
        query_filter: a query for sources that accept one (Elasticsearch).
        time_field: the field holding the event time; tried before the source's defaults.
        batch_size: page size for paged sources (Elasticsearch); files are read in blocks of
            `block_size` bytes instead, which is what keeps them fast.
        field_map: canonical field -> source field name(s), overriding the source's own map.
        label_map: raw label text -> -1/0/1, overriding the defaults (see `LabelMap`).
        default_label: label text for records that carry none, e.g. "malicious" for a
            recording of an attack window or "benign" for a known-clean capture.
    """

    name: str
    source_type: DataSourceType | str
    connection_params: Mapping[str, object] = field(default_factory=dict)
    query_filter: str | Mapping | None = None
    time_field: str | None = "@timestamp"
    batch_size: int = 1000
    field_map: FieldMap | None = None
    label_map: Mapping[str, int] | LabelMap | None = None
    default_label: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"name must be a non-empty string, got {self.name!r}")
        self.source_type = source_type(self.source_type)
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        self.connection_params = dict(self.connection_params or {})
        if not isinstance(self.label_map, LabelMap):
            self.label_map = LabelMap(self.label_map)

    def __repr__(self) -> str:
        shown = {k: "***" if k in SECRET_PARAMS and v is not None else v
                 for k, v in self.connection_params.items()}
        values = {f.name: getattr(self, f.name) for f in fields(self)} | {"connection_params": shown}
        return f"DataSource({', '.join(f'{k}={v!r}' for k, v in values.items())})"
