"""Raw source batches onto the canonical event schema (see `training.collection.schema`).

For each canonical column the source's field map names candidate source fields; each present
candidate is converted to the canonical type and the first non-null value wins. A value that
cannot be converted (an unparseable timestamp, port 70000, an IP "1.2.3") rejects its row with
the field and the rule, so the row is quarantined, never half-kept; so does a mapped field
holding an object, or a list where the format writes one value (`value_shapes`). Then labels
(label map, default label), Community IDs for flows that lack one, and event ids (the source's
own id, else a 64-bit content hash of the record) are filled in. Source fields that did not become
a canonical column are kept as extra columns under their own names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from training.collection.schema import CANONICAL_SCHEMA, NO_SERVICE, NO_SERVICE_FIELDS, LabelMap
from training.collection.schema import FIELD_NAMES as FIELD_NAMES  # for the recipe
from training.collection.schema_union import as_text
from training.collection.value_shapes import Fault as _Fault
from training.collection.value_shapes import wrong_shapes
from training.errors import ConfigError
from training.kernels.community_id import community_id_v1
from training.kernels.hashing import hash_array, hash_byte_ranges, hash_rows, to_hex
from training.sources.base import RawBatch, Reject, Source
from training.sources.coerce import (
    Converted, ConvertedIps, map_distinct, null_where, plain, to_direction, to_float, to_int, to_ip,
    to_protocol, to_severity, to_string, to_timestamp,
)
from training.sources.delimited import decode
from training.sources.jsonparse import records_to_table

RAW_PREFIX = "raw."
OWN_SOURCE, OWN_ID = "source", "event_id"  # the columns our own event files name them by
DEFAULT_EVENT_TYPE = "event"
# 64 bits: two distinct records share an id with probability about n^2 / 2^65 (3e-6 for ten
# million events); a second 64-bit pass would double the cost of the slowest step of
# collecting id-less sources.
_CONTENT_KEY = 0x6D61_7869_6D75_7331
_PROTOCOL_NUMBERS = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58, "sctp": 132}


def _port(array: pa.Array) -> Converted:
    return to_int(array, 0, 65535, pa.int32(), "a port")


def _count(array: pa.Array) -> Converted:
    return to_int(array, 0, 2**63 - 1, pa.int64(), "a count")


def _threat(array: pa.Array) -> Converted:
    return to_int(array, -1, 1, pa.int8(), "an is_threat value")


# How address text is stored (a collection's recipe names it, so that one written by other
# rules is not resumed): IPv6 compressed (RFC 5952, `coerce.ipv6_text`) since trial B.
IP_TEXT = "rfc5952"
CONVERTERS: dict[str, Callable[[pa.Array], Converted]] = {
    "timestamp": to_timestamp,
    "source_ip": to_ip,
    "dest_ip": to_ip,
    "source_port": _port,
    "dest_port": _port,
    "protocol": to_protocol,
    "bytes_sent": _count,
    "bytes_received": _count,
    "packets_sent": _count,
    "packets_received": _count,
    "duration": lambda a: to_float(a, 0.0, "a duration"),
    "direction": to_direction,
    "severity": to_severity,
    "is_threat": _threat,
}


@dataclass
class Canonical:
    """A batch on the canonical schema: good rows with their record ordinals, and rejects.

    `source_rows` are the rows of the raw batch the rows of `table` came from: the per-event
    API gives each event its record as read (`CollectedEvent.raw_data`) from them.
    """

    table: pa.Table
    records: np.ndarray
    rejects: list[Reject]
    source_rows: np.ndarray | None = None


def canonicalize(raw: RawBatch, source: Source, require_time: bool = False) -> Canonical:
    """Map one raw batch onto the canonical schema.

    `require_time` (collection) rejects records without a time when the batch has a time field
    (see `_missing_times`), and warns once per source of files whose times look relative
    (before 1990: `training.collection.relative_time`); event dicts handed to the featurizers
    may lack one.
    """
    config = source.config
    table = source.prepare(expand_raw_data(raw.table))
    n = table.num_rows
    columns: dict[str, pa.Array] = {}
    ips: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # packed addresses, for Community IDs
    shapes = wrong_shapes(table, source, raw.spans)  # an object or list where a value belongs
    faults: list[_Fault] = shapes.faults
    consumed: set[str] = shapes.flattened
    names = set(table.column_names)
    if require_time:  # collecting: a user field map's names no record has, once per source
        source.missing_fields.check(names, n, raw.stream)
    for field, candidates in source.fields.items():
        present = [c for c in candidates if c in names]
        if not present:
            continue
        convert = CONVERTERS.get(field, to_string)
        converted = [_no_service(field, c, convert(table[c])) for c in present]
        for name, result in zip(present, converted):
            if result.bad is not None:
                faults.append(_Fault(result.bad, name, result.reason, plain(table[name])))
        columns[field] = converted[0].values if len(converted) == 1 else pc.coalesce(
            *(c.values for c in converted))
        if isinstance(converted[0], ConvertedIps):
            ips[field] = _first_address(converted)
        consumed.update(_represented(present, converted, table))
    if require_time and "timestamp" in columns:
        faults.extend(_missing_times(columns["timestamp"], source.fields["timestamp"], table))
    for field, values in source.derive(table).items():
        columns[field] = (values if field not in columns or field in source.derived_whole
                          else pc.coalesce(values, columns[field]))

    _fill_labels(columns, n, config.label_map, config.default_label)
    event_type = columns.get("event_type")
    default_type = raw.event_type or DEFAULT_EVENT_TYPE
    columns["event_type"] = (pc.coalesce(event_type, default_type) if event_type is not None
                             else _constant(default_type, n))
    columns["community_id"] = _community_ids(columns, ips, n)
    columns["event_id"] = _event_ids(columns.get("event_id"), raw, table, columns["event_type"])
    columns["source"] = _sources(table, source, consumed)

    bad, rejects = _rejects(faults, raw, n)
    rejects = sorted(raw.rejects + rejects, key=lambda r: r.record)
    canonical = {name: _as(columns.get(name), type_, n)
                 for name, type_ in zip(CANONICAL_SCHEMA.names, CANONICAL_SCHEMA.types)}
    for name in table.column_names:
        if name not in consumed:
            canonical[RAW_PREFIX + name if name in canonical else name] = table[name]
    out = pa.table(canonical)
    records, rows = raw.records, np.arange(n)
    if bad is not None:
        rows = np.flatnonzero(~bad)
        out, records = out.take(rows), records[rows]
    if require_time:  # collecting (every command, --follow too): say so once per file
        source.relative_times.check(out["timestamp"], raw.stream)
        source.untimed.check(source.name, out["timestamp"], table,
                             [c for c in table.column_names if c not in consumed])
    return Canonical(out, records, rejects, rows)


def _no_service(field: str, name: str, result: Converted) -> Converted:
    """`result` with no value where source field `name` of `service` holds a value that names
    no service (`schema.NO_SERVICE`: Suricata's app_proto "failed")."""
    if field != "service" or name not in NO_SERVICE_FIELDS:
        return result
    values = result.values
    none = pc.is_in(values, value_set=pa.array(NO_SERVICE, values.type))
    return Converted(null_where(values, none), result.bad, result.reason)


def _sources(table: pa.Table, source: Source, consumed: set[str]) -> pa.Array:
    """The events' source: the DataSource's name or, for a source that reads our own event
    files (its field map names their `event_id` column: JSON, CSV, Parquet), the `source`
    column they carry where set. That column is collection bookkeeping (where the events were
    first collected): read as an extra field it would give the events other vectors than the
    records they were collected from."""
    name = _constant(source.config.name, table.num_rows)
    if OWN_SOURCE not in table.column_names or OWN_ID not in source.fields.get("event_id", ()):
        return name
    consumed.add(OWN_SOURCE)
    # As text the way every text field is read (a list gives its first item, an object its
    # JSON): a plain cast refuses those with an Arrow error.
    return pc.coalesce(to_string(table[OWN_SOURCE]).values, name)


def _missing_times(times: pa.Array, candidates: tuple[str, ...], table: pa.Table) -> list[_Fault]:
    """Records without a time in a source that has a time field: every later stage orders
    events in time, so such a record is quarantined here rather than failing the run later.
    (A source with no time field at all, such as the NSL-KDD CSV, is collected without.)"""
    missing = times.is_null().to_numpy(zero_copy_only=False)
    if not missing.any():
        return []
    name = next(c for c in candidates if c in table.column_names)
    return [_Fault(missing, name, "is missing; every record of a source with a time field "
                   "needs a time", plain(table[name]))]


def _represented(present: list[str], converted: list[Converted], table: pa.Table) -> list[str]:
    """The candidates whose every value made it into the canonical column: no earlier candidate
    had a value in any of their rows. The others stay as extra columns, so nothing is lost."""
    if len(present) == 1:  # the common case: nothing to lose to
        return [] if _is_list(table[present[0]].type) else present
    kept, taken = [], np.zeros(table.num_rows, dtype=bool)
    for name, result in zip(present, converted):
        has = pc.is_valid(result.values).to_numpy(zero_copy_only=False)
        if not _is_list(table[name].type) and not (has & taken).any():
            kept.append(name)
        taken |= has
    return kept


def _first_address(candidates: list[ConvertedIps]) -> tuple[np.ndarray, np.ndarray]:
    """Packed address and version of the first candidate that has one, row by row."""
    packed, version = candidates[0].packed.copy(), candidates[0].version.copy()
    for candidate in candidates[1:]:
        missing = version == 0
        packed[missing] = candidate.packed[missing]
        version[missing] = candidate.version[missing]
    return packed, version


def _constant(text: str, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(text, pa.string()), n)


def _is_list(type_: pa.DataType) -> bool:
    return pa.types.is_list(type_) or pa.types.is_large_list(type_)


def _as(values: pa.Array | None, type_: pa.DataType, n: int) -> pa.Array:
    if values is None:
        return pa.nulls(n, type_)
    values = plain(values)
    return values if values.type == type_ else values.cast(type_)


def _fill_labels(columns: dict[str, pa.Array], n: int, label_map: LabelMap,
                 default_label: str | None) -> None:
    """label (with the default), is_threat (given, else from the label map), attack_type."""
    label = columns.get("label")
    if default_label is not None:
        label = pc.coalesce(label, default_label) if label is not None else _constant(default_label, n)
    if label is not None:
        label = to_string(label).values
        columns["label"] = label
        classified = pa.array(label_map.classify(label), pa.int8())
    else:
        classified = pa.array(np.full(n, -1, np.int8))
    given = columns.get("is_threat")
    is_threat = pc.coalesce(plain(given).cast(pa.int8()), classified) if given is not None else classified
    columns["is_threat"] = is_threat
    detail = columns.get("attack_type")
    if detail is not None:
        detail = to_string(detail).values
        detail = null_where(detail, pc.is_in(detail, pa.array(["", "-", "(empty)"])))
    threats = pc.equal(is_threat, 1)
    if label is None:
        columns["attack_type"] = detail
    elif detail is None:
        columns["attack_type"] = null_where(label, pc.invert(threats))
    elif pc.any(pc.and_(threats, pc.is_null(detail))).as_py():
        columns["attack_type"] = pc.coalesce(detail, null_where(label, pc.invert(threats)))
    else:
        columns["attack_type"] = detail


def _community_ids(columns: dict[str, pa.Array], ips: dict[str, tuple[np.ndarray, np.ndarray]],
                   n: int) -> pa.Array | None:
    """The sensor's Community ID where given, else computed from the 5-tuple."""
    given = columns.get("community_id")
    if "source_ip" not in ips or "dest_ip" not in ips or "protocol" not in columns:
        return given
    (src_packed, src_version), (dst_packed, dst_version) = ips["source_ip"], ips["dest_ip"]
    numbers = map_distinct(plain(columns["protocol"]), lambda p: _PROTOCOL_NUMBERS.get(p, -1),
                           pa.int16()).fill_null(-1).to_numpy(zero_copy_only=False)
    # Zeek writes "icmp" for ICMPv6 too; the address family tells them apart.
    numbers = np.where((numbers == 1) & (src_version == 6), 58, numbers)
    ports = [plain(columns[f]).fill_null(-1).to_numpy(zero_copy_only=False) if f in columns
             else np.full(n, -1) for f in ("source_port", "dest_port")]
    computed = community_id_v1(src_packed, src_version, dst_packed, dst_version, numbers, *ports)
    return computed if given is None else pc.coalesce(to_string(given).values, computed)


def _event_ids(given: pa.Array | None, raw: RawBatch, table: pa.Table,
               event_type: pa.Array) -> pa.Array:
    """The mapped id, else the source's row id ("conn:<uid>"; a CSV's bare uid), else a
    content hash."""
    if table.num_rows == 0:  # e.g. a block whose every line was rejected: nothing to hash
        return pa.array([], pa.string())
    ids = to_string(given).values if given is not None else None
    if raw.id_columns and all(c in table.column_names for c in raw.id_columns):
        parts = [to_string(table[c]).values for c in raw.id_columns]
        own = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, ":")
        if raw.event_type is not None:  # a log path keeps ids of Zeek's log types apart
            own = pc.utf8_replace_slice(own, 0, 0, f"{raw.event_type}:")
            # Only rows of the log type the ids belong to (a conn.json may hold other _paths).
            own = null_where(own, pc.not_equal(event_type, raw.event_type))
        ids = own if ids is None else pc.coalesce(ids, own)
    if ids is not None and ids.null_count == 0:
        return ids
    content = _content_ids(raw)
    return content if ids is None else pc.coalesce(ids, content)


def _content_ids(raw: RawBatch) -> pa.Array:
    """A hash of the record's raw bytes when the format has them (so the id does not depend on
    which other records share the batch or how their types were inferred), else of its values."""
    if raw.spans is not None:
        data, starts, ends = raw.spans()
        return to_hex(hash_byte_ranges(data, starts, ends, key=_CONTENT_KEY))
    return to_hex(hash_rows(_hashable(raw.table), key=_CONTENT_KEY, nulls_as_absent=True))


def _raw_text(raw: RawBatch, rows: np.ndarray) -> list[str]:
    """The records as read, for quarantine."""
    if raw.spans is not None:
        data, starts, ends = raw.spans()
        return [decode(data[starts[i]:ends[i]]) for i in rows]
    return [orjson.dumps(row, default=str).decode() for row in raw.table.take(rows).to_pylist()]


def _hashable(table: pa.Table) -> pa.Table:
    """The table with columns of types the hash does not take (decimal, map...) as text."""
    for index, name in enumerate(table.column_names):
        try:
            hash_array(table[name].slice(0, 0))
        except ConfigError:
            table = table.set_column(index, name, as_text(table[name]))
    return table


def _rejects(faults: list[_Fault], raw: RawBatch, n: int) -> tuple[np.ndarray | None, list[Reject]]:
    """Rows with any conversion fault, each reported once with its first fault."""
    if not faults:
        return None, []
    bad = np.zeros(n, dtype=bool)
    rejects = []
    for fault in faults:
        rows = np.flatnonzero(fault.mask & ~bad)
        for i, text in zip(rows, _raw_text(raw, rows)):
            line = int(raw.lines[i])
            rejects.append(Reject(
                raw.stream, line if line > 0 else None, int(raw.records[i]), fault.field,
                f"{fault.field} = {fault.values[int(i)].as_py()!r} {fault.reason}", text,
            ))
        bad |= fault.mask
    return bad, rejects


def expand_raw_data(table: pa.Table) -> pa.Table:
    """Unwrap a `raw_data` object written by our own `save_to_file` back into extra columns."""
    names = table.column_names
    if "raw_data" in names and (pa.types.is_string(table["raw_data"].type)
                                or pa.types.is_large_string(table["raw_data"].type)):
        try:
            objects = [orjson.loads(v) if v else {} for v in table["raw_data"].to_pylist()]
        except orjson.JSONDecodeError:
            return table  # not ours: an ordinary text field that happens to be called raw_data
        if not all(isinstance(o, dict) for o in objects):
            return table
        extra = records_to_table([o or {"raw_data": None} for o in objects])
        table = table.drop_columns(["raw_data"])
        for name in extra.column_names:
            if name not in table.column_names and name != "raw_data":
                table = table.append_column(name, extra[name])
        return table
    prefix = "raw_data."
    if any(name.startswith(prefix) for name in names):
        renamed = [name[len(prefix):] if name.startswith(prefix) and name[len(prefix):] not in names
                   else name for name in names]
        table = table.rename_columns(renamed)
    return table
