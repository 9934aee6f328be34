"""Sources: one module per input format, behind the `Source` protocol and a registry dict."""

from __future__ import annotations

from training.errors import ConfigError
from training.sources.base import FileSource, RawBatch, Reject, Source
from training.sources.config import DataSource, DataSourceType
from training.sources.csv_file import CsvFileSource
from training.sources.elasticsearch import ElasticsearchSource
from training.sources.json_file import JsonFileSource
from training.sources.parquet_file import ParquetFileSource
from training.sources.suricata import SuricataSource
from training.sources.unsupported import UnsupportedSource
from training.sources.windows_events import WindowsEventSource
from training.sources.zeek import ZeekSource

SOURCES: dict[DataSourceType, type[Source]] = {}


def register_source(source_type: DataSourceType, cls: type[Source]) -> None:
    """Make `cls` the reader for `source_type`."""
    if not (isinstance(cls, type) and issubclass(cls, Source)):
        raise ConfigError(f"a source must subclass training.sources.Source, got {cls!r}")
    SOURCES[DataSourceType(source_type)] = cls


def create_source(config: DataSource) -> Source:
    """The reader for a configured source."""
    try:
        cls = SOURCES[config.source_type]
    except KeyError:
        valid = ", ".join(t.value for t in SOURCES)
        raise ConfigError(f"no reader registered for {config.source_type!r}; known: {valid}") from None
    return cls(config)


for _type, _cls in {
    DataSourceType.JSON_FILE: JsonFileSource,
    DataSourceType.CSV_FILE: CsvFileSource,
    DataSourceType.PARQUET_FILE: ParquetFileSource,
    DataSourceType.ZEEK_LOGS: ZeekSource,
    DataSourceType.SURICATA_LOGS: SuricataSource,
    DataSourceType.WINDOWS_EVENTS: WindowsEventSource,
    DataSourceType.ELASTIC: ElasticsearchSource,
    DataSourceType.SPLUNK: UnsupportedSource,
    DataSourceType.QRADAR: UnsupportedSource,
}.items():
    register_source(_type, _cls)

__all__ = [
    "SOURCES", "DataSource", "DataSourceType", "ElasticsearchSource", "FileSource", "RawBatch",
    "Reject", "Source", "create_source", "register_source",
]
