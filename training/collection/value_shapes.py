"""Mapped source fields holding the wrong shape: an object, or a list, where one value belongs.

Readers flatten a JSON object into dotted columns (`"source": {"ip": ...}` -> `source.ip`), as
ECS documents need. Where the field map expects one value, the same flattening would empty the
field without a word: `"proto": {"x": 1}` left the protocol null and added a column `proto.x`.
So a mapped name that holds an object rejects its record (quarantined with file, line and
field, as a value that does not convert is), unless the name is a container: other mapped
names lie under it (`source` of `source.ip`), or the source says it may hold one
(`Source.object_fields`: ECS's `host`, `service`, ...). Zeek's writer flattens records itself,
so no Zeek field is a container.

A list is kept where the format allows one (in ECS any field may be an array: its first item
is the value); a format that writes some fields as one value names them
(`Source.single_value_fields`: Zeek's, beside its sets), and a list there rejects its record.
A JSON Lines block whose records mix a list with other values in one field is read with that
field as text (`jsonparse`), so a text value starting with "[" is checked against the record's
own line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
        record = orjson.loads(line.removeprefix(b"\xef\xbb\xbf"))  # a first line's BOM
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
