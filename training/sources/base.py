"""The source protocol: a source turns one configured input into raw Arrow batches.

A source knows how to read its format and how its fields map onto the canonical schema; the
collector does everything else (conversion, labels, ids, dedup, time filter, checkpoints).

Reading is organised in *streams*, each with its own resume position: a file for file sources,
a slice for Elasticsearch. A position is a small JSON-able dict; `read(stream, start)` yields
batches from `start` on, each telling where it starts and ends, so the collector can checkpoint
after any batch and resume exactly there. A source whose streams are independent remote reads
(Elasticsearch slices) sets `concurrent_streams` and the collector reads them in parallel.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pyarrow as pa

from training.collection.field_map_check import MissingFields
from training.collection.relative_time import RelativeTimes
from training.collection.untimed import UntimedSource
from training.collection.schema import (
    GENERIC_FIELD_MAP, NO_SERVICE, NO_SERVICE_FIELDS, OBJECT_FIELDS, FieldMap, resolve_field_map,
)
from training.errors import ConfigError
from training.sources.ecs import derive_ecs, normalize_ecs
from training.sources.files import (
    DEFAULT_BLOCK_SIZE, DEFAULT_MAX_DECOMPRESSED, ByteStream, Spans, check_text,
)
from training.sources.paths import expand_paths
from training.sources.sniff import wrong_type_message

if TYPE_CHECKING:
    from training.sources.config import DataSource

START: dict[str, int] = {"offset": 0, "line": 1, "record": 0}


@dataclass(frozen=True)
class Reject:
    """A record that could not be collected, with where it was and why.

    Attributes:
        file: the input it came from.
        line: 1-based line (or row) number, None when the format has no lines.
        record: 0-based ordinal of the record in its stream (resume bookkeeping).
        field: the source field at fault, None for a whole-record fault.
        reason: the rule it broke.
        raw: the record as read (bytes that are not UTF-8 shown as \\x escapes).
    """

    file: str
    line: int | None
    record: int
    field: str | None
    reason: str
    raw: str

    def to_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "field": self.field,
                "reason": self.reason, "raw": self.raw}


@dataclass
class RawBatch:
    """Rows of one stream as read, before mapping onto the canonical schema.

    Attributes:
        table: flat columns under the source's own names (nested objects as "a.b").
        stream: the stream key (a file path).
        lines: line (or row) number of each table row, for messages.
        records: record ordinal of each table row within the stream.
        start, end: positions before the batch's first record and after its last one.
        rejects: records of this batch that failed to parse.
        event_type: event type of every row when the format implies one (Zeek's log path).
        id_columns: columns that form the source's own event id (Zeek: uid), if any.
        spans: the raw bytes of the rows as (buffer, starts, ends), computed on demand: the
            content hash of a row and the text of a quarantined one. None for columnar
            formats, whose rows are hashed and shown from their values.
        position_after: the position right after a given record of this batch, for sources
            whose re-read may order records differently (Elasticsearch across point-in-time
            views). None: a batch cut after record k resumes at `start` skipping records
            through k, which needs the re-read to number records the same way.
    """

    table: pa.Table
    stream: str
    lines: np.ndarray
    records: np.ndarray
    start: dict
    end: dict
    rejects: list[Reject] = field(default_factory=list)
    event_type: str | None = None
    id_columns: tuple[str, ...] = ()
    spans: Callable[[], Spans] | None = None
    position_after: Callable[[int], dict] | None = None


@dataclass
class Parsed:
    """What a format parser makes of one block.

    Attributes:
        table, lines, records, rejects, spans: as in `RawBatch`.
        n_records: records in the block, good and rejected (for the end position).
        comments: (line number, text) of comment lines in the block (Zeek's #close).
    """

    table: pa.Table
    lines: np.ndarray
    records: np.ndarray
    rejects: list[Reject]
    spans: Callable[[], Spans]
    n_records: int
    comments: list[tuple[int, bytes]] = field(default_factory=list)


class Source(ABC):
    """Base of every source. Subclasses implement `streams` and `read`.

    Class attributes:
        field_map: the source's canonical-field -> source-field(s) map.
        params: connection_params keys the source accepts, with defaults.
        how_params: connection_params that change how the source is read but not what it
            delivers (block sizes, timeouts) or that must never be stored (credentials):
            left out of a collection's recipe, so changing them does not block a resume.
        concurrent_streams: read the streams in parallel (independent remote reads) rather
            than one after another (files, whose order the user gave).
        format_name: what the format is called in messages ("Zeek"); None for a generic one.
        format_fields: fields that mark the format: a file whose records carry none of them
            is refused (`check_format`) rather than read into events without time or
            addresses. Empty for generic formats (JSON, CSV), whose records need a field of
            the field map instead.
        syntax: what the source reads records from ("json", "csv"; None for no file
            syntax): a refused file is pointed to a typed source only where that source reads
            this syntax (`config.FORMAT_SYNTAX`).
        object_fields: mapped fields that may hold an object (read as its dotted fields,
            `source: {ip: ...}` as `source.ip`) though no mapped name lies under them; any
            other mapped name holding an object is quarantined (`collection.value_shapes`).
            A name that other mapped names lie under (`source` of `source.ip`) is one anyway.
        single_value_fields: mapped fields the format writes as one value, where a list is
            quarantined. Empty for generic formats: in ECS any field may hold a list.
    """

    field_map: ClassVar[FieldMap] = GENERIC_FIELD_MAP
    params: ClassVar[dict[str, object]] = {}
    how_params: ClassVar[frozenset[str]] = frozenset()
    concurrent_streams: ClassVar[bool] = False
    format_name: ClassVar[str | None] = None
    format_fields: ClassVar[tuple[str, ...]] = ()
    syntax: ClassVar[str | None] = None
    object_fields: ClassVar[frozenset[str]] = OBJECT_FIELDS
    single_value_fields: ClassVar[frozenset[str]] = frozenset()
    # Fields `derive` computes whole: where it gives null there is no value, never the mapped
    # field's raw text (a Windows file_hash from an IMPHASH alone).
    derived_whole: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: DataSource) -> None:
        self.config = config
        unknown = set(config.connection_params) - set(self.params)
        if unknown:
            raise ConfigError(
                f"{config.source_type.value} source {config.name!r}: unknown connection_params "
                f"{sorted(unknown)}; accepted: {sorted(self.params)}"
            )
        self.options = {**self.params, **config.connection_params}
        fields = resolve_field_map(self.field_map, config.field_map)
        if config.time_field and config.time_field not in fields["timestamp"]:
            # The seed's time_field names the timestamp column; it is tried first when present.
            fields["timestamp"] = (config.time_field, *fields["timestamp"])
        self.fields = fields
        self.time_range: tuple[datetime | None, datetime | None] = (None, None)
        self.relative_times = RelativeTimes()  # files whose times were found relative
        self.untimed = UntimedSource()  # warns once when no event has a time (untimed.py)
        self.missing_fields = MissingFields(config.name, config.field_map)  # typos in the map

    @property
    def name(self) -> str:
        return self.config.name

    def recipe_params(self) -> dict[str, object]:
        """The connection_params that decide which events are delivered (see `how_params`),
        and the values read as no service (`no_service`) where the service comes from a field
        that may hold one (`schema.NO_SERVICE_FIELDS`: EVE's app_proto, as suricata: and the
        generic json:, csv:, parquet: and es: maps read it)."""
        params = {k: v for k, v in self.config.connection_params.items() if k not in self.how_params}
        if not set(self.fields.get("service", ())).isdisjoint(NO_SERVICE_FIELDS):
            params["no_service"] = list(NO_SERVICE)
        return params

    @abstractmethod
    def streams(self) -> list[str]:
        """Keys of the streams to read, in a stable order."""

    @abstractmethod
    def read(self, stream: str, start: dict) -> Iterator[RawBatch]:
        """Yield the stream's batches from position `start` on."""

    def begin(self, start: datetime | None, end: datetime | None) -> None:
        """Called before each collection run with its time range (UTC, end exclusive).

        A source that can filter where the data lives (Elasticsearch) narrows its query to
        it; file sources read everything. The collector applies the range either way.
        """
        self.time_range = (start, end)

    def prepare(self, table: pa.Table) -> pa.Table:
        """The raw batch with the field names the field map expects, before it is mapped (a
        new table). The default renames what Elastic's shippers wrote (`ecs.normalize_ecs`)."""
        return normalize_ecs(table)

    def derive(self, table: pa.Table) -> dict[str, pa.Array]:
        """Canonical columns computed from several source fields (e.g. Zeek's direction).

        They fill what the field map left empty; a non-null `is_threat` here overrides the
        label map (a Suricata alert is a threat whatever its text). The default handles
        Elastic Common Schema documents (`training.sources.ecs`).
        """
        return derive_ecs(table, self.fields)

    def close(self) -> None:
        """Called after each collection run: release connections (file sources hold none)."""

    def recognises(self, columns: set[str], stream: str) -> bool:
        """Whether records with these fields, read from `stream`, are of this format: a typed
        format's carry one of `format_fields`; a generic format's (JSON, CSV) a field of the
        field map other than the event id (an id alone says nothing of what happened)."""
        if self.format_fields:
            return not columns.isdisjoint(self.format_fields)
        known = {name for field, names in self.fields.items() if field != "event_id"
                 for name in names}
        return not columns.isdisjoint(known)

    def check_format(self, batches: Iterator[RawBatch]) -> Iterator[RawBatch]:
        """`batches` of one stream, refused at the first that holds records when those carry
        none of the format's fields: a file given the wrong type (a Suricata eve.json read as
        Zeek) would otherwise become events with no time, addresses or event type.

        Raises:
            ConfigError: naming the file, the type given and the type the records look like
                (`training.sources.sniff`).
        """
        checked = False
        for batch in batches:
            if not checked and batch.table.num_rows:
                columns = set(batch.table.column_names)
                if not self.recognises(columns, batch.stream):
                    raise ConfigError(wrong_type_message(self, batch.stream, columns))
                checked = True
            yield batch


class FileSource(Source):
    """A source reading files: `connection_params["path"]` is a file, directory, glob or list.

    Links in a scanned folder (or matched by a glob) that lead outside it are skipped and
    reported unless `connection_params["follow_symlinks"]` is True (see `sources.paths`).

    Class attributes:
        patterns: file-name patterns taken when scanning a directory; None takes every file.
    """

    params: ClassVar[dict[str, object]] = {
        "path": None,
        "follow_symlinks": False,
        "block_size": DEFAULT_BLOCK_SIZE,
        "max_decompressed_bytes": DEFAULT_MAX_DECOMPRESSED,
    }
    how_params: ClassVar[frozenset[str]] = frozenset(
        {"block_size", "max_decompressed_bytes", "max_document_bytes"})
    patterns: ClassVar[tuple[str, ...] | None] = None
    excluded: ClassVar[tuple[str, ...]] = ()  # names a folder scan skips though they match

    def __init__(self, config: DataSource) -> None:
        super().__init__(config)
        if not self.options.get("path"):
            raise ConfigError(
                f"{config.source_type.value} source {config.name!r} needs "
                "connection_params['path'] (a file, directory, glob or list of them)"
            )
        block_size = self.options["block_size"]
        if not isinstance(block_size, int) or block_size < 1:
            raise ConfigError(f"block_size must be an integer >= 1, got {block_size!r}")
        if not isinstance(self.options["follow_symlinks"], bool):
            raise ConfigError(f"follow_symlinks must be true or false, got "
                              f"{self.options['follow_symlinks']!r}")
        self.skipped: list[Path] = []
        self.skipped_links: list[Path] = []

    def streams(self) -> list[str]:
        found = expand_paths(self.options["path"], self.patterns, self.options["follow_symlinks"],
                             self.excluded)
        self.skipped, self.skipped_links = found.skipped, found.links
        return [str(path) for path in found.files]

    def open(self, stream: str) -> ByteStream:
        """The text file `stream` as bytes (gunzipped when it is gzip), opened once per read;
        refused when it is not UTF-8 text (see `files.check_text`)."""
        source = ByteStream(stream, max_bytes=self.options["max_decompressed_bytes"])
        try:
            check_text(source)
        except BaseException:
            source.close()
            raise
        return source
