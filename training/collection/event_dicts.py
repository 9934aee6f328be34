"""Event dicts (a flat export record, or `CollectedEvent.to_dict()`) as a canonical table.

They go through the same mapping as collected files (a generic JSON source), so an event
featurized on its own gives exactly the vector it gets inside a collected table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import orjson
import pyarrow as pa

from training.collection.canonical import canonicalize
from training.collection.schema import CANONICAL_SCHEMA
from training.collection.value_shapes import OBJECT, empty_held
from training.errors import SchemaError
from training.sources import DataSource, DataSourceType, RawBatch, create_source
from training.sources.jsonparse import MAX_NESTING, nested_deeper, records_to_table

_EVENTS = "events"
# The source whose field map and labels event dicts are read with (here and in
# `canonical_record`, the per-event form).
EVENT_SOURCE = create_source(DataSource(_EVENTS, DataSourceType.JSON_FILE, {"path": "<in memory>"}))


def _records_table(records: list[dict]) -> pa.Table:
    try:
        return records_to_table(records)
    except UnicodeEncodeError as exc:  # a lone surrogate: JSON text can encode one, UTF-8 cannot
        for i, record in enumerate(records):
            try:
                records_to_table([record])
            except UnicodeEncodeError:
                raise SchemaError(f"event {i} holds text that is not valid Unicode "
                                  f"({exc.reason}: {exc.object[exc.start:exc.end]!r})") from None
        raise


def events_table(events: Iterable[Mapping] | pa.Table) -> pa.Table:
    """A canonical table from event dicts (or a canonical table, returned as it is).

    Raises:
        SchemaError: an event has a value that breaks its field's rule (named with the event's
            position), or is not a mapping.
    """
    if isinstance(events, pa.Table):
        missing = [name for name in CANONICAL_SCHEMA.names if name not in events.column_names]
        if missing:
            raise SchemaError(f"a table given to the featurizers must be a canonical event table "
                              f"(from DataCollector.collect_table); it lacks {missing}")
        return events
    records = [dict(r) if isinstance(r, Mapping) else r for r in events]
    for i, record in enumerate(records):
        if not isinstance(record, dict) or not record:
            raise SchemaError(f"event {i} must be a non-empty dict of fields, got {record!r:.80}")
        if nested_deeper(record):
            raise SchemaError(f"event {i} is nested deeper than {MAX_NESTING} levels")
        # An empty object leaves no column to find it by (`value_shapes`), and dicts have no
        # raw text to look in: looked for here.
        empty = empty_held(record, EVENT_SOURCE)
        if empty is not None:
            raise SchemaError(f"event {i}: {empty[0]} = '{orjson.dumps(empty[1]).decode()}' "
                              f"{OBJECT}")
    n = len(records)
    raw = RawBatch(table=_records_table(records),
                   stream=_EVENTS, lines=np.full(n, -1, dtype=np.int64),
                   records=np.arange(n, dtype=np.int64),
                   start={"offset": 0, "line": 1, "record": 0},
                   end={"offset": 0, "line": 1, "record": n})
    canonical = canonicalize(raw, EVENT_SOURCE)
    if canonical.rejects:
        first = canonical.rejects[0]
        raise SchemaError(f"event {first.record}: {first.reason} ({len(canonical.rejects)} of "
                          f"{n} events rejected)")
    return canonical.table  # a record's own "source" is its source (`canonicalize`)
