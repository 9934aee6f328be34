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
The sensor's own verdict on a detection record (`VERDICT_FIELDS`: a Suricata alert's
`sensor_signature`, `sensor_signature_id`, `sensor_category` and `sensor_severity`, a Zeek
notice's note) is context too: filled on the records of `ALERT_EVENT_TYPES` alone, output only.
A unit of several events (an edge, a window) also lists its top `TOP_EVENTS` events with their
own context, process, command line and verdict included (`top_events`): those that moved the most bytes
(both ways); on equal bytes (host logs move none) those with a command line, then those of the
event types the unit has fewest of, then the earliest (`_top_events` says why).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.collection.schema import ALERT_EVENT_TYPES, CANONICAL_SCHEMA

TIME = pa.timestamp("us", tz="UTC")
# Canonical columns an analyst reads first, in output order.
CONTEXT_FIELDS = ("event_type", "source_ip", "source_port", "dest_ip", "dest_port", "protocol",
                  "service", "community_id", "host", "user")
# A host log's process and command line (null for flows).
PROCESS_FIELDS = ("process", "command_line")
_CANONICAL_CONTEXT = (*CONTEXT_FIELDS, *PROCESS_FIELDS)
# Source fields (kept as extras by the collector) that hold the sensor's own flow id, in order.
SENSOR_ID_FIELDS = ("uid", "flow_id")
# The sensor's own verdict on a detection record: context column -> the event fields that hold
# it, the first present wins (extras the collector keeps under their source names: EVE's
# alert.*, Filebeat's suricata.eve.alert.* and rule.*, Zeek notice's note, EVE anomaly's
# anomaly.*, Zeek weird's name; `severity` is canonical, 1 = critical: Suricata's level 1).
# Filled on the records of `ALERT_EVENT_TYPES` alone: elsewhere a field of such a name is no
# sensor's verdict (a CSV's `name` column), and a labelled capture's `label` and `attack_type`
# are its ground truth, which no column here reads. Output only: `unit_rows` reads context
# after the model scored the events, and no featurizer reads the context columns.
VERDICT_FIELDS: dict[str, tuple[str, ...]] = {
    "sensor_signature": ("alert.signature", "suricata.eve.alert.signature", "rule.name", "note",
                         "anomaly.event", "name"),
    "sensor_signature_id": ("alert.signature_id", "suricata.eve.alert.signature_id", "rule.id"),
    "sensor_category": ("alert.category", "suricata.eve.alert.category", "rule.category",
                        "anomaly.type"),
    "sensor_severity": ("severity",),
}
VERDICT_SCHEMA = pa.schema([("sensor_signature", pa.string()),
                            ("sensor_signature_id", pa.string()),
                            ("sensor_category", pa.string()), ("sensor_severity", pa.float32())])
TOP_EVENTS = 3
EVENT_CONTEXT = pa.struct([("event_id", pa.string()), ("timestamp", TIME),
                          *[(n, CANONICAL_SCHEMA.field(n).type) for n in _CANONICAL_CONTEXT],
                          *VERDICT_SCHEMA, ("bytes", pa.int64())])
CONTEXT_SCHEMA = pa.schema([
    *[(name, CANONICAL_SCHEMA.field(name).type) for name in _CANONICAL_CONTEXT],
    ("sensor_id", pa.string()), *VERDICT_SCHEMA, ("first_seen", TIME), ("last_seen", TIME),
    ("top_events", pa.list_(EVENT_CONTEXT)),
])
_SHARED = [f.name for f in CONTEXT_SCHEMA if f.name not in ("first_seen", "last_seen",
                                                              "top_events")]


def conform_structs(column: pa.ChunkedArray, struct: pa.StructType) -> pa.ChunkedArray:
    """A list-of-structs column read from a file written before some fields of `struct`
    existed, with those fields null; fields are matched by name.
    (pyarrow's own cast fills missing struct fields only from pyarrow 19 on.)"""
    wanted = pa.list_(struct)
    if column.type == wanted:
        return column
    chunks = []
    for chunk in column.chunks:
        values = chunk.flatten()  # the chunk's structs, row after row
        have = {values.type.field(i).name for i in range(values.type.num_fields)}
        fields = [values.field(f.name).cast(f.type) if f.name in have
                  else pa.nulls(len(values), f.type) for f in struct]
        structs = pa.StructArray.from_arrays(fields, fields=list(struct))
        lengths = pc.fill_null(pc.list_value_length(chunk), 0).to_numpy()
        offsets = pa.array(np.r_[0, np.cumsum(lengths)].astype(np.int32))
        chunks.append(pa.ListArray.from_arrays(offsets, structs, type=wanted,
                                               mask=chunk.is_null()))
    return pa.chunked_array(chunks, type=wanted)


def sensor_ids(events: pa.Table) -> pa.Array:
    """The sensor's own flow id of every event as text (null when the source has none)."""
    present = [events[name] for name in SENSOR_ID_FIELDS if name in events.column_names]
    if not present:
        return pa.nulls(events.num_rows, pa.string())
    texts = [pc.cast(column, pa.string()) for column in present]
    merged = texts[0] if len(texts) == 1 else pc.coalesce(*texts)
    return merged.combine_chunks() if isinstance(merged, pa.ChunkedArray) else merged


def sensor_verdicts(events: pa.Table) -> dict[str, pa.Array]:
    """The sensor's own verdict on every event (`VERDICT_FIELDS`, typed as `VERDICT_SCHEMA`):
    the first of each column's fields present with a value, on detection records alone."""
    n = events.num_rows
    if "event_type" in events.column_names:
        detection = pc.fill_null(pc.is_in(events["event_type"].cast(pa.string()),
                                          value_set=pa.array(ALERT_EVENT_TYPES)), False)
    else:
        detection = pa.array(np.zeros(n, bool))
    verdicts = {}
    for field in VERDICT_SCHEMA:
        present = [events[name].cast(field.type) for name in VERDICT_FIELDS[field.name]
                   if name in events.column_names and _scalar(events[name].type)]
        value = (pa.nulls(n, field.type) if not present else
                 present[0] if len(present) == 1 else pc.coalesce(*present))
        value = pc.if_else(detection, value, pa.scalar(None, field.type))
        verdicts[field.name] = (value.combine_chunks() if isinstance(value, pa.ChunkedArray)
                                else value)
    return verdicts


def _scalar(kind: pa.DataType) -> bool:
    """Whether a field of type `kind` holds one plain value (a list or an object is no
    verdict: EVE's alert.metadata.* are lists)."""
    return (pa.types.is_string(kind) or pa.types.is_large_string(kind)
            or pa.types.is_integer(kind) or pa.types.is_floating(kind)
            or pa.types.is_dictionary(kind) or pa.types.is_null(kind))


def _context_table(events: pa.Table) -> pa.Table:
    """The context columns of every event, in CONTEXT_SCHEMA order (first/last seen = time)."""
    columns = []
    verdicts = sensor_verdicts(events)
    for field in CONTEXT_SCHEMA:
        if field.name in _CANONICAL_CONTEXT:
            columns.append(events[field.name].cast(field.type) if field.name in
                           events.column_names else pa.nulls(events.num_rows, field.type))
        elif field.name in verdicts:
            columns.append(verdicts[field.name])
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
    columns = _shared(context.take(rows), pc.cast(parents, pa.int64()).to_numpy(),
                      len(event_ids))
    columns["top_events"] = _top_events(events, rows, parents, len(event_ids))
    return pa.Table.from_arrays([columns[f.name] for f in CONTEXT_SCHEMA], schema=CONTEXT_SCHEMA)


def _shared(taken: pa.Table, parents: np.ndarray, n_units: int) -> dict[str, pa.Array]:
    """Per unit, each context column's shared value (null where its events differ) and its
    events' first and last times, from the context of its events (`taken`, grouped by unit:
    `parents` is ascending, as a list column lays out its values).

    Runs of equal codes replace a hash aggregation, which held 2.4 KB a unit (730 MB for the
    edges of 300k events). Nulls count as a value of their own: an event without the value
    disagrees with one that has it, so {null, "dns"} is two values and shares none."""
    first = np.flatnonzero(np.diff(parents, prepend=-1))  # none without units
    owner = parents[first]  # the unit of each run
    at = np.full(n_units, -1, np.int64)  # each unit's first event; -1: it has none
    at[owner] = first
    has = at >= 0
    same_unit = parents[1:] == parents[:-1]
    columns = {}
    for name in _SHARED:
        column = taken[name].combine_chunks()
        codes = pc.fill_null(pc.dictionary_encode(column).indices, -1).to_numpy()
        differs = np.zeros(n_units, bool)
        differs[parents[1:][same_unit & (codes[1:] != codes[:-1])]] = True
        value = column.take(pa.array(np.where(has, at, 0))) if len(column) else \
            pa.nulls(n_units, column.type)
        columns[name] = pc.if_else(pa.array(has & ~differs), value,
                                   pa.scalar(None, column.type))
    times = taken["first_seen"].combine_chunks()
    micros = pc.fill_null(times.cast(pa.int64()), 0).to_numpy()
    valid = times.is_valid().to_numpy(zero_copy_only=False)
    for name, reduce, blank in (("first_seen", np.minimum, np.iinfo(np.int64).max),
                                ("last_seen", np.maximum, np.iinfo(np.int64).min)):
        per_run = (reduce.reduceat(np.where(valid, micros, blank), first) if len(first)
                   else np.zeros(0, np.int64))
        bound = np.full(n_units, blank, np.int64)
        bound[owner] = per_run
        columns[name] = pa.array(bound, pa.int64(), mask=bound == blank).cast(TIME)
    return columns


def _top_events(events: pa.Table, rows: pa.Array, parents: pa.Array, n_units: int) -> pa.Array:
    """Per unit, its `TOP_EVENTS` events with their context, the most telling first.

    The order, read from the unit's own events alone (no other layer's model is needed, and a
    unit lists the same events whichever units share its batch):
    1. the most bytes, both ways: a flow's volume is what an analyst weighs first;
    2. a command line before none: host logs move no bytes, and a process creation (Sysmon 1,
       Security 4688) is the event that says what ran; nearly every host event names a process
       (the one acting), so `process` alone would pick out nothing;
    3. the event types the unit has fewest of: the one service install or log clear among
       hundreds of registry writes and image loads;
    4. the earliest.
    """
    known = pc.is_valid(rows)
    rows, parents = rows.filter(known), parents.filter(known)
    taken = events.take(rows)
    volume = np.zeros(len(taken), np.int64)
    for name in ("bytes_sent", "bytes_received"):
        if name in taken.column_names:
            volume += pc.fill_null(taken[name], 0).to_numpy().astype(np.int64)
    table = pa.table({"unit": parents, "bytes": volume, "command": _has_command_line(taken),
                      "kind_count": _kind_counts(taken, parents),
                      "time": taken["timestamp"].cast(TIME), "at": pa.array(np.arange(len(taken)))})
    order = pc.sort_indices(table, [("unit", "ascending"), ("bytes", "descending"),
                                    ("command", "descending"), ("kind_count", "ascending"),
                                    ("time", "ascending"), ("at", "ascending")]).to_numpy()
    unit = table["unit"].to_numpy()[order]
    starts = np.r_[0, np.flatnonzero(np.diff(unit)) + 1].astype(np.int64)
    within = np.arange(len(unit)) - np.repeat(starts, np.diff(np.r_[starts, len(unit)]))
    keep = order[within < TOP_EVENTS]
    chosen = taken.take(pa.array(keep))
    fields = {"event_id": chosen["event_id"], "timestamp": chosen["timestamp"].cast(TIME),
              **{n: (chosen[n].cast(CANONICAL_SCHEMA.field(n).type) if n in chosen.column_names
                     else pa.nulls(len(chosen), CANONICAL_SCHEMA.field(n).type))
                 for n in _CANONICAL_CONTEXT},
              **sensor_verdicts(chosen),
              "bytes": table["bytes"].take(pa.array(keep)).cast(pa.int64())}
    structs = pa.StructArray.from_arrays([pa.chunked_array(v).combine_chunks()
                                          if isinstance(v, pa.ChunkedArray) else v
                                          for v in fields.values()], fields=list(EVENT_CONTEXT))
    counts = np.bincount(table["unit"].to_numpy()[keep], minlength=n_units)
    offsets = pa.array(np.r_[0, np.cumsum(counts)].astype(np.int32))
    return pa.ListArray.from_arrays(offsets, structs, type=pa.list_(EVENT_CONTEXT))


def _has_command_line(events: pa.Table) -> np.ndarray:
    """1 for each event with a (non-empty) command line, else 0."""
    if "command_line" not in events.column_names:
        return np.zeros(events.num_rows, np.int8)
    text = events["command_line"].cast(pa.string())
    return pc.fill_null(pc.greater(pc.utf8_length(text), 0), False).to_numpy(
        zero_copy_only=False).astype(np.int8)


def _kind_counts(events: pa.Table, parents: pa.Array) -> np.ndarray:
    """For each event, how many events of its unit (`parents`) have its event type (events
    without one count as one more type)."""
    if "event_type" not in events.column_names or not events.num_rows:
        return np.zeros(events.num_rows, np.int64)
    kinds = pc.dictionary_encode(events["event_type"].cast(pa.string()).combine_chunks())
    kind = pc.fill_null(kinds.indices, -1).to_numpy().astype(np.int64) + 1
    key = pc.cast(parents, pa.int64()).to_numpy() * (len(kinds.dictionary) + 1) + kind
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    return counts[inverse].astype(np.int64)
