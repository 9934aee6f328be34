"""Events as Python objects (`CollectedEvent`) and as files (JSON Lines, JSON, Parquet).

A `CollectedEvent` is what the original API gave: a naive UTC `timestamp` and `raw_data`, the
source record as read (its own field names, nested objects as "a.b"). `to_dict()` gives the
canonical fields at the top level and, under `raw_data`, the source's fields that have no
canonical column. Files written here read back through the JSON and Parquet sources to the same
events: JSON nests that `raw_data`; Parquet written from a table keeps the extra columns typed,
and Parquet written from a stream of events (whose fields are not known in advance) stores
`raw_data` as one JSON text column.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from itertools import islice
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from training.artifacts.atomic import atomic_write
from training.collection.canonical import RAW_PREFIX
from training.collection.schema import CANONICAL_FIELDS, CANONICAL_SCHEMA, LABEL_FIELDS
from training.sources.base import RawBatch
from training.errors import ConfigError

CHUNK = 65_536
_HEADER = ("event_id", "timestamp", "source", "event_type")
_ORJSON = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def _iso(value: datetime | None) -> str | None:
    """ISO 8601 text ending in "Z"; a naive datetime is taken as UTC."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


@dataclass
class CollectedEvent:
    """One collected event (the original per-event API).

    Built by hand as the original was (`CollectedEvent(event_id, timestamp, source, event_type,
    raw_data, labels)`), the canonical fields are read from `raw_data` under their own names.

    Attributes:
        event_id, source, event_type: identity.
        timestamp: naive datetime in UTC (an aware one given here is converted), or None.
        raw_data: the source record as read, under the source's own field names.
        labels: {"label", "is_threat", "attack_type"}.
        fields: the other canonical fields (source_ip, dest_port, user, ...); None = those of
            `raw_data` that have a canonical name.
        extra: the source's fields without a canonical column; None = the rest of `raw_data`.
    """

    event_id: str
    timestamp: datetime | None
    source: str
    event_type: str
    raw_data: dict = field(default_factory=dict)
    labels: dict | None = None
    fields: dict | None = None
    extra: dict | None = None

    def __post_init__(self) -> None:
        if isinstance(self.timestamp, datetime) and self.timestamp.tzinfo is not None:
            self.timestamp = self.timestamp.astimezone(timezone.utc).replace(tzinfo=None)

    def to_dict(self) -> dict:
        """Canonical fields in schema order (timestamp as ISO 8601 text in UTC), then `raw_data`:
        the source's fields that have no canonical column."""
        raw = self.raw_data or {}
        fields = self.fields if self.fields is not None else \
            {k: v for k, v in raw.items() if k in _CANONICAL}
        labels = self.labels if self.labels is not None else \
            {k: fields[k] for k in LABEL_FIELDS if k in fields}
        out = {"timestamp": _iso(self.timestamp), "event_id": self.event_id,
               "source": self.source, "event_type": self.event_type}
        for name in _OTHER_FIELDS:
            out[name] = fields.get(name)
        out["label"] = labels.get("label")
        out["is_threat"] = labels.get("is_threat", -1)
        out["attack_type"] = labels.get("attack_type")
        out["raw_data"] = self.extra if self.extra is not None else \
            {k: v for k, v in raw.items() if k not in _CANONICAL}
        return out


_CANONICAL = frozenset(CANONICAL_FIELDS)
_OTHER_FIELDS = tuple(k for k in CANONICAL_FIELDS if k not in _HEADER and k not in LABEL_FIELDS)
_EPOCH = datetime(1970, 1, 1)


def _datetimes(column: pa.Array) -> list[datetime | None]:
    """Naive UTC datetimes; from epoch microseconds, a third of what Arrow's tz-aware
    conversion costs."""
    micros = column.cast(pa.int64()).to_pylist()
    return [None if us is None else _EPOCH + timedelta(microseconds=us) for us in micros]


def source_records(raw: RawBatch | None, rows: np.ndarray | None) -> list[dict] | None:
    """Rows `rows` of a raw batch as the records they were read as.

    A JSON record is its object parsed again from its own bytes (values as written, nested
    objects nested); a record of another format (CSV, Zeek TSV, Parquet) is its row of the
    raw table, under the source's field names, its null fields left out.
    """
    if raw is None or rows is None:
        return None
    parsed: list[dict | None] = [None] * len(rows)
    if raw.spans is not None:
        data, starts, ends = raw.spans()
        parsed = [_json_object(data[starts[i]:ends[i]]) for i in rows]
    if any(p is None for p in parsed):
        table = raw.table.take(pa.array(rows, pa.int64())).to_pylist()
        parsed = [p if p is not None else {k: v for k, v in row.items() if v is not None}
                  for p, row in zip(parsed, table)]
    return parsed


def _json_object(text: bytes) -> dict | None:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None  # not a JSON record: a CSV or TSV line
    return value if isinstance(value, dict) else None


def table_to_events(table: pa.Table, records: list[dict] | None = None
                    ) -> Iterator[CollectedEvent]:
    """The rows of a canonical table as events, converted column by column a batch at a time.

    `records` are the rows' source records as read (see `source_records`); without them an
    event's `raw_data` is what the table holds of it (its non-null fields, extra columns under
    their own names, the timestamp as ISO text).
    """
    offset = 0
    for batch in table.to_batches(max_chunksize=CHUNK):
        names = batch.schema.names
        values = {name: batch.column(i).to_pylist() for i, name in enumerate(names)
                  if name != "timestamp"}
        times = _datetimes(batch.column(names.index("timestamp")))
        extras = [(n.removeprefix(RAW_PREFIX), values[n]) for n in names if n not in _CANONICAL]
        labels = [(n, values[n]) for n in LABEL_FIELDS]
        others = [(n, values[n]) for n in _OTHER_FIELDS]
        ids, sources, types = values["event_id"], values["source"], values["event_type"]
        for i in range(batch.num_rows):
            extra = {n: v[i] for n, v in extras}
            other = {n: v[i] for n, v in others}
            label = {n: v[i] for n, v in labels}
            if records is not None:
                raw = records[offset + i]
            else:
                raw = {**{k: v for k, v in (other | label).items() if v is not None}, **extra}
                if times[i] is not None:
                    raw["timestamp"] = _iso(times[i])
            yield CollectedEvent(ids[i], times[i], sources[i], types[i], raw, label, other, extra)
        offset += batch.num_rows


def _dicts(events: Iterable[CollectedEvent] | pa.Table) -> Iterator[dict]:
    items = table_to_events(events) if isinstance(events, pa.Table) else events
    for event in items:
        yield event.to_dict() if isinstance(event, CollectedEvent) else event


def _format(path: Path) -> tuple[str, bool]:
    suffixes = [s.lower() for s in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] == ".gz"
    base = suffixes[-2] if compressed and len(suffixes) > 1 else (suffixes[-1] if suffixes else "")
    formats = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet"}
    if base not in formats or (compressed and formats[base] == "parquet"):
        raise ConfigError(f"cannot tell the format of {path}: use .jsonl, .json or .parquet "
                          "(.jsonl.gz and .json.gz are compressed)")
    return formats[base], compressed


def write_events(events: Iterable[CollectedEvent] | pa.Table, path: str | Path,
                 metadata: dict | None = None) -> Path:
    """Write events to `path` atomically, streaming; the format comes from the suffix. The file
    holds raw input, so it is created private to the user (0600)."""
    path = Path(path)
    kind, compressed = _format(path)
    with atomic_write(path, private=True) as handle:
        if kind == "parquet":
            _write_parquet(events, handle)
            return path
        sink = gzip.GzipFile(fileobj=handle, mode="wb", mtime=0) if compressed else nullcontext(handle)
        with sink as out:
            if kind == "jsonl":
                for event in _dicts(events):
                    out.write(orjson.dumps(event, option=_ORJSON | orjson.OPT_APPEND_NEWLINE))
            else:
                out.write(b'{"metadata":' + orjson.dumps(metadata or {}) + b',"events":[')
                for i, event in enumerate(_dicts(events)):
                    out.write((b",\n" if i else b"\n") + orjson.dumps(event, option=_ORJSON))
                out.write(b"\n]}\n")
    return path


def _write_parquet(events: Iterable[CollectedEvent] | pa.Table, handle) -> None:
    if isinstance(events, pa.Table):
        pq.write_table(events, handle)
        return
    schema = CANONICAL_SCHEMA.append(pa.field("raw_data", pa.string()))
    with pq.ParquetWriter(handle, schema) as writer:
        iterator = iter(_dicts(events))
        while chunk := list(islice(iterator, CHUNK)):
            columns = {name: [e.get(name) for e in chunk] for name in CANONICAL_FIELDS}
            columns["timestamp"] = pa.array(columns["timestamp"], pa.string()).cast(
                CANONICAL_SCHEMA.field("timestamp").type)
            columns["raw_data"] = [orjson.dumps(e.get("raw_data") or {}, default=str).decode()
                                   for e in chunk]
            writer.write_table(pa.table(columns, schema=schema))
