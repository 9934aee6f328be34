"""The event context of scored units: who talked to whom, when, over what, by which sensor id,
and for a host log which process ran which command line.

Every scored unit (an event, an edge, a host window) carries the context of the events behind
it, whatever the layer, by one rule: a context column holds the value its events share, and is
null where they disagree (an edge's events share their addresses but not their source ports; a
host window's events share the host's address). An event without the value disagrees with one
that has it: a window of DNS and TLS flows shows no `service`, not "dns". `first_seen` and
`last_seen` bound the events' times. `process` and `command_line` are the canonical event
fields (a Windows, Sysmon or process event's; null for flows). `sensor_id` is the sensor's own
id of the flow: the Zeek (or IoT-23 CSV) `uid`, else Suricata's `flow_id`; `community_id` joins
one flow across sensors.
A unit of several events (an edge, a window) also lists its top `TOP_EVENTS` events with their
own context (`top_events`): those that moved the most bytes (both ways), the earliest first on
ties.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.collection.schema import CANONICAL_SCHEMA

TIME = pa.timestamp("us", tz="UTC")
# Canonical columns an analyst reads first, in output order.
CONTEXT_FIELDS = ("event_type", "source_ip", "source_port", "dest_ip", "dest_port", "protocol",
                  "service", "community_id", "host", "user")
# A host log's process and command line (null for flows); not in `top_events`, whose events
# are the flows of a window unit.
PROCESS_FIELDS = ("process", "command_line")
_CANONICAL_CONTEXT = (*CONTEXT_FIELDS, *PROCESS_FIELDS)
# Source fields (kept as extras by the collector) that hold the sensor's own flow id, in order.
SENSOR_ID_FIELDS = ("uid", "flow_id")
TOP_EVENTS = 3
EVENT_CONTEXT = pa.struct([("event_id", pa.string()), ("timestamp", TIME),
                          *[(n, CANONICAL_SCHEMA.field(n).type) for n in CONTEXT_FIELDS],
                          ("bytes", pa.int64())])
CONTEXT_SCHEMA = pa.schema([
    *[(name, CANONICAL_SCHEMA.field(name).type) for name in _CANONICAL_CONTEXT],
    ("sensor_id", pa.string()), ("first_seen", TIME), ("last_seen", TIME),
    ("top_events", pa.list_(EVENT_CONTEXT)),
])
_SHARED = [f.name for f in CONTEXT_SCHEMA if f.name not in ("first_seen", "last_seen",
                                                              "top_events")]


def sensor_ids(events: pa.Table) -> pa.Array:
    """The sensor's own flow id of every event as text (null when the source has none)."""
    present = [events[name] for name in SENSOR_ID_FIELDS if name in events.column_names]
    if not present:
        return pa.nulls(events.num_rows, pa.string())
    texts = [pc.cast(column, pa.string()) for column in present]
    merged = texts[0] if len(texts) == 1 else pc.coalesce(*texts)
    return merged.combine_chunks() if isinstance(merged, pa.ChunkedArray) else merged


def _context_table(events: pa.Table) -> pa.Table:
    """The context columns of every event, in CONTEXT_SCHEMA order (first/last seen = time)."""
    columns = []
    for field in CONTEXT_SCHEMA:
        if field.name in _CANONICAL_CONTEXT:
            columns.append(events[field.name].cast(field.type) if field.name in
                           events.column_names else pa.nulls(events.num_rows, field.type))
        elif field.name == "sensor_id":
            columns.append(sensor_ids(events))
        elif field.name == "top_events":  # one event: the row's own context is the event's
            columns.append(pa.nulls(events.num_rows, field.type))
        else:
            columns.append(events["timestamp"].cast(TIME))
    return pa.Table.from_arrays(columns, schema=CONTEXT_SCHEMA)


def unit_context(events: pa.Table, event_ids: pa.Array | pa.ChunkedArray) -> pa.Table:
    """The context of every unit (one row each, CONTEXT_SCHEMA) from the events behind it.

    Args:
        events: the canonical event table the units were made from.
        event_ids: per unit, the list of ids of its events (`Layer.unit_columns`).

    Returns:
        A table with one row per unit: the value its events share in each context column
        (null where they differ, where only some of them have one, or none is known), and its
        events' first and last times.
    """
    if isinstance(event_ids, pa.ChunkedArray):
        event_ids = event_ids.combine_chunks()
    context = _context_table(events)
    flat = pc.list_flatten(event_ids)
    lengths = pc.list_value_length(event_ids).fill_null(0)
    single = len(event_ids) == len(flat) and pc.all(pc.equal(lengths, 1)).as_py()
    if single and len(flat) == events.num_rows and \
            pc.all(pc.equal(flat, events["event_id"])).as_py():
        return context  # one event per unit, in the events' order (layer 1): no lookup
    rows = pc.index_in(flat, value_set=events["event_id"])
    if single:
        return context.take(rows)  # one event per unit: its own context
    parents = pc.list_parent_indices(event_ids)
    taken = context.drop_columns(["top_events"]).take(rows).append_column("unit", parents)
    # Nulls count as a value of their own: an event without the value disagrees with one that
    # has it, so {null, "dns"} is two values and shares none.
    every = pc.CountOptions(mode="all")
    grouped = taken.group_by("unit").aggregate(
        [(name, "count_distinct", every) for name in _SHARED] + [(name, "max") for name in _SHARED]
        + [("first_seen", "min"), ("last_seen", "max")])
    # Units without a known event get no row from group_by: place rows by unit index.
    where = pc.index_in(pa.array(range(len(event_ids)), pa.int64()),
                        value_set=grouped["unit"].cast(pa.int64()))
    grouped = grouped.take(where)
    columns = []
    for field in CONTEXT_SCHEMA:
        if field.name == "top_events":
            columns.append(_top_events(events, rows, parents, len(event_ids)))
            continue
        if field.name in ("first_seen", "last_seen"):
            agg = "min" if field.name == "first_seen" else "max"
            columns.append(grouped[f"{field.name}_{agg}"].cast(field.type))
            continue
        shared = pc.equal(grouped[f"{field.name}_count_distinct"], 1)
        value = grouped[f"{field.name}_max"].cast(field.type)
        columns.append(pc.if_else(shared, value, pa.scalar(None, field.type)))
    return pa.Table.from_arrays([pa.chunked_array(c).combine_chunks()
                                 if isinstance(c, pa.ChunkedArray) else c for c in columns],
                                schema=CONTEXT_SCHEMA)


def _top_events(events: pa.Table, rows: pa.Array, parents: pa.Array, n_units: int) -> pa.Array:
    """Per unit, its `TOP_EVENTS` events that moved the most bytes, with their context."""
    known = pc.is_valid(rows)
    rows, parents = rows.filter(known), parents.filter(known)
    taken = events.take(rows)
    volume = np.zeros(len(taken), np.int64)
    for name in ("bytes_sent", "bytes_received"):
        if name in taken.column_names:
            volume += pc.fill_null(taken[name], 0).to_numpy().astype(np.int64)
    table = pa.table({"unit": parents, "bytes": volume, "time": taken["timestamp"].cast(TIME),
                      "at": pa.array(np.arange(len(taken)))})
    order = pc.sort_indices(table, [("unit", "ascending"), ("bytes", "descending"),
                                    ("time", "ascending"), ("at", "ascending")]).to_numpy()
    unit = table["unit"].to_numpy()[order]
    starts = np.r_[0, np.flatnonzero(np.diff(unit)) + 1].astype(np.int64)
    within = np.arange(len(unit)) - np.repeat(starts, np.diff(np.r_[starts, len(unit)]))
    keep = order[within < TOP_EVENTS]
    chosen = taken.take(pa.array(keep))
    fields = {"event_id": chosen["event_id"], "timestamp": chosen["timestamp"].cast(TIME),
              **{n: (chosen[n].cast(CANONICAL_SCHEMA.field(n).type) if n in chosen.column_names
                     else pa.nulls(len(chosen), CANONICAL_SCHEMA.field(n).type))
                 for n in CONTEXT_FIELDS},
              "bytes": table["bytes"].take(pa.array(keep)).cast(pa.int64())}
    structs = pa.StructArray.from_arrays([pa.chunked_array(v).combine_chunks()
                                          if isinstance(v, pa.ChunkedArray) else v
                                          for v in fields.values()], fields=list(EVENT_CONTEXT))
    counts = np.bincount(table["unit"].to_numpy()[keep], minlength=n_units)
    offsets = pa.array(np.r_[0, np.cumsum(counts)].astype(np.int32))
    return pa.ListArray.from_arrays(offsets, structs, type=pa.list_(EVENT_CONTEXT))
