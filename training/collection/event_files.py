"""Events as Python objects (`CollectedEvent`) and as files (JSON Lines, JSON, Parquet).

`CollectedEvent.to_dict()` gives the canonical fields at the top level and the source's other
fields under `raw_data`. Files written here read back through the JSON and Parquet sources to
the same events: JSON nests `raw_data`; Parquet written from a table keeps the extra columns
typed, and Parquet written from a stream of events (whose fields are not known in advance)
stores `raw_data` as one JSON text column.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from itertools import islice
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from training.artifacts.atomic import atomic_write
from training.collection.canonical import RAW_PREFIX
from training.collection.schema import CANONICAL_FIELDS, CANONICAL_SCHEMA, LABEL_FIELDS
from training.errors import ConfigError

CHUNK = 65_536
_HEADER = ("event_id", "timestamp", "source", "event_type")
_ORJSON = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class CollectedEvent:
    """One collected event (the original per-event API).

    Attributes:
        event_id, timestamp, source, event_type: identity and time.
        raw_data: the source's fields that have no canonical column, under their own names.
        labels: {"label", "is_threat", "attack_type"}.
        fields: every other canonical field (source_ip, dest_port, user, ...).
    """

    event_id: str
    timestamp: datetime | None
    source: str
    event_type: str
    raw_data: dict = field(default_factory=dict)
    labels: dict | None = None
    fields: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Canonical fields in schema order (timestamp as ISO 8601 text), then `raw_data`."""
        labels = self.labels or {}
        out = {"timestamp": _iso(self.timestamp), "event_id": self.event_id,
               "source": self.source, "event_type": self.event_type}
        fields = self.fields
        for name in _OTHER_FIELDS:
            out[name] = fields.get(name)
        out["label"] = labels.get("label")
        out["is_threat"] = labels.get("is_threat", -1)
        out["attack_type"] = labels.get("attack_type")
        out["raw_data"] = self.raw_data
        return out


_CANONICAL = frozenset(CANONICAL_FIELDS)
_OTHER_FIELDS = tuple(k for k in CANONICAL_FIELDS if k not in _HEADER and k not in LABEL_FIELDS)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _datetimes(column: pa.Array) -> list[datetime | None]:
    """UTC datetimes; from epoch microseconds, a third of what Arrow's tz-aware conversion costs."""
    micros = column.cast(pa.int64()).to_pylist()
    return [None if us is None else _EPOCH + timedelta(microseconds=us) for us in micros]


def table_to_events(table: pa.Table) -> Iterator[CollectedEvent]:
    """The rows of a canonical table as events, converted column by column a batch at a time."""
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
            yield CollectedEvent(ids[i], times[i], sources[i], types[i],
                                 {n: v[i] for n, v in extras}, {n: v[i] for n, v in labels},
                                 {n: v[i] for n, v in others})


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
