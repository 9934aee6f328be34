"""Mapped source fields holding the wrong shape: an object, or a list, where one value belongs.

Readers flatten a JSON object into dotted columns (`"source": {"ip": ...}` -> `source.ip`), as
ECS documents need. Where the field map expects one value, the same flattening would empty the
field without a word: `"proto": {"x": 1}` left the protocol null and added a column `proto.x`.
So a mapped name that holds an object rejects its record (quarantined with file, line and
field, as a value that does not convert is), unless the name is a container: other mapped
names lie under it (`source` of `source.ip`), or the source says it may hold one
(`Source.object_fields`: ECS's `host`, `service`, ...). Zeek's writer flattens records itself,
so no Zeek field is a container. An empty object (`"proto": {}`) flattens into no column at
all, so it is looked for in the records' raw text (their JSON), where the format has it, and
rejects its record the same way.

A list is kept where the format allows one (in ECS any field may be an array: its first item
is the value); a format that writes some fields as one value names them
(`Source.single_value_fields`: Zeek's, beside its sets), and a list there rejects its record.
A JSON Lines block whose records mix a list with other values in one field is read with that
field as text (`jsonparse`), so a text value starting with "[" is checked against the record's
own line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from training.sources.jsonparse import flatten_record

if TYPE_CHECKING:
    from training.sources.base import Source
    from training.sources.files import Spans

OBJECT = "is an object where one value belongs"


@dataclass
class Fault:
    """Rows whose `field` broke `reason`, with the field's values to show (by row)."""

    mask: np.ndarray
    field: str
    reason: str
    values: pa.Array


@dataclass
class Shapes:
    """What `wrong_shapes` found: the faults, and the columns an object was flattened into
    (all null once its records are quarantined, so they are not kept as extra columns)."""

    faults: list[Fault] = field(default_factory=list)
    flattened: set[str] = field(default_factory=set)


def wrong_shapes(table: pa.Table, source: Source, spans: Callable[[], Spans] | None) -> Shapes:
    """The rows of `table` (a raw batch of `source`) whose mapped fields hold an object or a
    list where one value belongs (see the module docstring); `spans` are the rows' raw
    bytes, when the format has them."""
    found = Shapes()
    for name, columns in held_objects(table.column_names, source).items():
        _objects(table, name, columns, found)
    if spans is not None:
        _empty_objects(table, source, spans, found)
    mapped, _ = _names(source)
    for name in sorted(source.single_value_fields & mapped & set(table.column_names)):
        _lists(table, name, spans, source.format_name or "the format", found)
    return found


def held_objects(columns: Iterable[str], source: Source) -> dict[str, list[str]]:
    """{mapped name that is no container: the dotted `columns` under it}; a name found here
    held an object in the records that have one of those columns and not the name itself."""
    mapped, containers = _names(source)
    under: dict[str, list[str]] = {}
    for column in columns:
        for i, c in enumerate(column):
            if c == "." and column[:i] in mapped and column[:i] not in containers:
                under.setdefault(column[:i], []).append(column)
    return under


def empty_held(record: dict, source: Source) -> tuple[str, dict] | None:
    """The first mapped name, no container, under which `record` holds an empty object
    (`{"proto": {}}`, `{"proto": {"x": {}}}`), and the object there as the record wrote it
    (its empty objects); flattening leaves no trace of them, so `held_objects` cannot see
    them. None when there is none, or the record also spells the name out with a value
    (`{"proto": 6, "proto.x": {}}`, which `_objects` keeps too)."""
    empties = list(_empty_names(record, ""))
    if not empties:
        return None
    mapped, containers = _names(source)
    flat = flatten_record(record)
    for empty in empties:
        for at in [i for i, c in enumerate(empty) if c == "."] + [len(empty)]:
            name = empty[:at]
            if name in mapped and name not in containers and flat.get(name) is None:
                return name, _nested({e: {} for e in empties if e.startswith(name + ".")},
                                     len(name) + 1)
    return None


def _empty_names(record: dict, prefix: str) -> Iterator[str]:
    """The dotted names at which `record` holds an empty object."""
    for key, value in record.items():
        if isinstance(value, dict):
            if value:
                yield from _empty_names(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}"


def _empty_objects(table: pa.Table, source: Source, spans: Callable[[], Spans],
                   found: Shapes) -> None:
    """Rows whose record holds an empty object under a mapped name (see `empty_held`) and
    no value of its own there, found in the rows' raw JSON: only rows whose text holds an
    empty object are parsed (one scan of the batch's bytes, which real logs pass)."""
    data, starts, ends = spans()
    offsets = np.array([m.start() for m in _EMPTY.finditer(data)], dtype=np.int64)
    if not len(offsets) or not len(starts):
        return
    if np.all(starts[1:] >= starts[:-1]):  # rows in file order: each `{}` to its row
        rows = np.searchsorted(starts, offsets, side="right") - 1
        rows = np.unique(rows[(rows >= 0) & (offsets < ends[np.maximum(rows, 0)])])
    else:
        rows = np.array([r for r in range(len(starts))
                         if _EMPTY.search(data, int(starts[r]), int(ends[r]))], dtype=np.int64)
    flagged = {f.field: f.mask for f in found.faults}
    bad: dict[str, list[tuple[int, dict]]] = {}
    for row in rows.tolist():
        try:
            record = orjson.loads(bytes(data[starts[row]:ends[row]]).removeprefix(_BOM))
        except orjson.JSONDecodeError:
            continue  # not JSON (a TSV row whose text holds "{}")
        held = empty_held(record, source) if isinstance(record, dict) else None
        if held is None or (held[0] in flagged and flagged[held[0]][row]):
            continue
        bad.setdefault(held[0], []).append((row, held[1]))
    for name, held in bad.items():
        at = np.array([row for row, _ in held], dtype=np.int64)
        mask = np.zeros(table.num_rows, dtype=bool)
        mask[at] = True
        found.faults.append(Fault(mask, name, OBJECT,
                                  _shown(table.num_rows, at, [shown for _, shown in held])))


_EMPTY = re.compile(rb"\{\s*\}")
_BOM = b"\xef\xbb\xbf"  # a first line's


def _names(source: Source) -> tuple[frozenset[str], frozenset[str]]:
    """The source's mapped names, and those of them that may hold an object (cached)."""
    cached = _NAMES.get(id(source))
    if cached is None or cached[0] is not source.fields:
        mapped = frozenset(name for names in source.fields.values() for name in names)
        containers = frozenset(name[:i] for name in mapped for i, c in enumerate(name) if c == ".")
        cached = _NAMES[id(source)] = (source.fields, mapped, containers | source.object_fields)
    return cached[1], cached[2]


_NAMES: dict[int, tuple[dict, frozenset[str], frozenset[str]]] = {}


def _objects(table: pa.Table, name: str, columns: list[str], found: Shapes) -> None:
    """Rows where `name` is null and one of its dotted `columns` is not: the record held an
    object there (a record may also spell a dotted name out: `"proto": 6, "proto.x": 1`)."""
    held = np.zeros(table.num_rows, dtype=bool)
    for column in columns:
        held |= table[column].is_valid().to_numpy(zero_copy_only=False)
    own = (table[name].is_valid().to_numpy(zero_copy_only=False) if name in table.column_names
           else np.zeros(table.num_rows, dtype=bool))
    bad = held & ~own
    if bad.any():
        rows = np.flatnonzero(bad)
        objects = [_nested(record, len(name) + 1)
                   for record in table.select(columns).take(rows).to_pylist()]
        found.faults.append(Fault(bad, name, OBJECT, _shown(table.num_rows, rows, objects)))
    if not (held & own).any():
        found.flattened.update(columns)


def _nested(record: dict, cut: int) -> dict:
    """{"proto.x.y": 1} -> {"x": {"y": 1}} (the object as the record wrote it); flat names
    where the record spelt a dotted name out beside an object ({"x": 1, "x.y": 2})."""
    values = {column[cut:]: value for column, value in record.items() if value is not None}
    out: dict = {}
    for name, value in values.items():
        *parents, leaf = name.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                return values
        if leaf in node:
            return values
        node[leaf] = value
    return out


def _lists(table: pa.Table, name: str, spans: Callable[[], Spans] | None, format_name: str,
           found: Shapes) -> None:
    column = table[name]
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        bad = column.is_valid().to_numpy(zero_copy_only=False)
        rows = np.flatnonzero(bad)
        lists = column.take(rows).to_pylist()
    elif spans is not None and pa.types.is_string(column.type):
        rows = np.flatnonzero(pc.starts_with(column, "[").fill_null(False)
                              .to_numpy(zero_copy_only=False))
        if not len(rows):
            return
        data, starts, ends = spans()
        lists = [_listed(bytes(data[starts[i]:ends[i]]), name) for i in rows]
        rows = np.array([i for i, value in zip(rows, lists) if value is not None], dtype=np.int64)
        lists = [value for value in lists if value is not None]
        bad = np.zeros(table.num_rows, dtype=bool)
        bad[rows] = True
    else:
        return
    if len(rows):
        found.faults.append(Fault(bad, name, f"is a list where {format_name} writes one value",
                                  _shown(table.num_rows, rows, lists)))


def _listed(line: bytes, name: str) -> list | None:
    """The list the JSON record on `line` holds at `name`; None when it holds none there (or
    the line is not JSON: a TSV row whose text starts with "[")."""
    try:
        record = orjson.loads(line.removeprefix(_BOM))
    except orjson.JSONDecodeError:
        return None
    value = flatten_record(record).get(name) if isinstance(record, dict) else None
    return value if isinstance(value, list) else None


def _shown(n: int, rows: np.ndarray, values: list) -> pa.Array:
    """Text of `values` at `rows` (JSON, as the record wrote them), null elsewhere."""
    text: list[str | None] = [None] * n
    for row, value in zip(rows, values):
        text[int(row)] = orjson.dumps(value, default=str).decode()
    return pa.array(text, pa.string())
