"""JSON records to flat Arrow tables: JSON Lines blocks, whole documents, Python dicts.

Nested objects become dotted column names ("alert.signature"), as Zeek and ECS already write
them, so every source sees one flat namespace. Lists stay lists.

JSON Lines blocks take pyarrow's multithreaded reader when the block is clean (no malformed
line, one row per non-blank line, no column whose type changes between lines); otherwise each
line is parsed on its own with orjson, bad lines become rejects, and columns whose values mix
types are kept as text.

A record nested deeper than `MAX_NESTING` levels is rejected: real logs nest a few levels, while
parsers recurse once per level (pyarrow's JSON reader crashes the process on a line nested some
20,000 deep, and orjson, Python and Arrow have lower limits of their own).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.json as pjson

from training.sources.base import Parsed, Reject
from training.sources.delimited import decode
from training.sources.files import Block, LineIndex

_PARSE_BLOCK = 4 << 20
_BOM = b"\xef\xbb\xbf"
_BLANK = np.zeros(256, dtype=bool)
_BLANK[[9, 10, 13, 32]] = True
MAX_NESTING = 128


def nested_deeper(value: object, limit: int = MAX_NESTING) -> bool:
    """Whether `value` nests objects and arrays more than `limit` levels (an object is 1)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, (dict, list, tuple)))
    return False


def _may_nest_deeper(data: bytes, limit: int = MAX_NESTING) -> bool:
    """Whether some line of `data` has more than `limit` opening brackets (an upper bound on its
    depth: brackets inside strings count too, which only sends a block to the slow path)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    openers = np.flatnonzero((buf | 0x20) == 0x7B)  # "{" is 0x7B, "[" is 0x5B
    if len(openers) <= limit:
        return False
    line = np.searchsorted(np.flatnonzero(buf == 10), openers)
    return bool((line[limit:] == line[:-limit]).any())


def unique_names(names: Iterable[str]) -> list[str]:
    """Column names made unique by suffixing "~2", "~3"... to repeats."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        count = seen.get(name, 0) + 1
        seen[name] = count
        out.append(name if count == 1 else f"{name}~{count}")
    return out


def flatten_structs(table: pa.Table) -> pa.Table:
    """Struct columns become one column per field, named "parent.child", recursively (an empty
    object has no field, so it leaves no column)."""
    while any(pa.types.is_struct(t) for t in table.schema.types):
        table = table.flatten()
    if len(set(table.column_names)) != table.num_columns:
        table = table.rename_columns(unique_names(table.column_names))
    for i, type_ in enumerate(table.schema.types):
        if _has_empty_struct(type_):
            table = table.set_column(i, table.column_names[i], _as_text(table.column(i).to_pylist()))
    return table


def _has_empty_struct(type_: pa.DataType) -> bool:
    """Whether a type holds an object without fields (`[{}]`), which Parquet cannot store."""
    if pa.types.is_struct(type_):
        return type_.num_fields == 0 or any(_has_empty_struct(f.type) for f in type_)
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        return _has_empty_struct(type_.value_type)
    return False


def _flatten_dict(record: dict, prefix: str, out: dict) -> None:
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten_dict(value, f"{name}.", out)  # nothing for {}, as in flatten_structs
        else:
            while name in out:
                name += "~"
            out[name] = value


def _json_text(value: object) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # an integer beyond 64 bits (from Python objects: JSON text gives floats)
        return json.dumps(value, default=str)


def _as_text(values: list) -> pa.Array:
    return pa.array([v if v is None or isinstance(v, str) else _json_text(v) for v in values],
                    type=pa.string())


def _column(values: list) -> pa.Array:
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        # Mixed types across records (a port as 80 here and "80" there): keep the text.
        return _as_text(values)
    return _as_text(values) if _has_empty_struct(array.type) else array


def flatten_record(record: dict) -> dict:
    """One JSON object as the flat row `records_to_table` makes of it (dotted names)."""
    out: dict = {}
    _flatten_dict(record, "", out)
    return out


def records_to_table(records: list[dict]) -> pa.Table:
    """A flat table from non-empty JSON objects; keys missing from a record are null there."""
    flat = [flatten_record(record) for record in records]
    keys = dict.fromkeys(k for record in flat for k in record)
    return pa.table({key: _column([r.get(key) for r in flat]) for key in keys})


def parse_jsonl_block(block: Block, stream: str, record: int) -> Parsed:
    """Parse a block of JSON Lines."""
    data = block.data
    index = LineIndex(data)
    n_lines = block.n_lines
    table = _fast_parse(data, n_lines)  # one row per line, or it is not taken
    if table is not None:
        rows = np.arange(n_lines, dtype=np.int64)
        return Parsed(table, block.line + rows, record + rows, [], index.spans(rows), n_lines)
    starts, ends = index.bounds
    buf = np.frombuffer(data, dtype=np.uint8)
    solid = np.concatenate([[0], np.cumsum(~_BLANK[buf])])
    data_index = np.flatnonzero(solid[ends] - solid[starts] > 0)
    lines = block.line + data_index
    records = record + np.arange(len(data_index), dtype=np.int64)
    if len(data_index) < len(starts):
        table = _fast_parse(data, len(data_index))  # pyarrow skips blank lines itself
        if table is not None:
            return Parsed(table, lines, records, [], index.spans(data_index), len(data_index))
    rejects: list[Reject] = []
    good: list[dict] = []
    kept: list[int] = []
    for k, i in enumerate(data_index):
        raw = index.line(i)
        try:
            value = orjson.loads(raw[len(_BOM):] if raw.startswith(_BOM) else raw)
        except orjson.JSONDecodeError as exc:
            reason = f"malformed JSON: {exc}"
        else:
            deep = (isinstance(value, dict) and raw.count(b"{") + raw.count(b"[") > MAX_NESTING
                    and nested_deeper(value))
            if isinstance(value, dict) and value and not deep:
                good.append(value)
                kept.append(k)
                continue
            reason = ("empty JSON object" if value == {} else
                      f"nested deeper than {MAX_NESTING} levels" if deep else
                      f"expected a JSON object, found {type(value).__name__}")
        rejects.append(Reject(stream, int(lines[k]), int(records[k]), None, reason, decode(raw)))
    keep = np.array(kept, dtype=np.int64)
    return Parsed(records_to_table(good), lines[keep], records[keep], rejects,
                  index.spans(data_index[keep]), len(data_index))


def is_utf8(data: bytes) -> bool:
    """Whether `data` is valid UTF-8 (Arrow's vectorized check, about 1 ms per 16 MiB)."""
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    text = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _has_all_null_rows(table: pa.Table) -> bool:
    """Whether some row is null in every column (stops at the first column that rules it out)."""
    empty = np.ones(table.num_rows, dtype=bool)
    for column in table.columns:
        empty &= column.is_null().to_numpy(zero_copy_only=False)
        if not empty.any():
            break
    return bool(empty.any())


def _fast_parse(data: bytes, expected_rows: int) -> pa.Table | None:
    if expected_rows == 0:
        return pa.table({})
    # pyarrow reads a `null` line as a row of nulls, and crashes (segfault, pyarrow 26) on a
    # block that starts with one: only blocks whose every record starts with "{" go to it.
    starts_with_object = data.startswith((b"{", _BOM + b"{"))
    if data.count(b"\n{") + starts_with_object != expected_rows:
        return None
    if not is_utf8(data):  # pyarrow's JSON reader does not check; orjson rejects the bad lines
        return None
    if _may_nest_deeper(data):
        return None  # pyarrow's reader recurses per level: deep lines go to the checked path
    try:
        table = pjson.read_json(pa.BufferReader(data), read_options=pjson.ReadOptions(block_size=_PARSE_BLOCK))
        table.validate()  # e.g. [null, null] comes back as a list<null> with too few values
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_rows != expected_rows or table.num_columns == 0:
        return None
    table = flatten_structs(table)
    if _has_all_null_rows(table):
        return None  # `{}` lines (read as rows of nulls): the line-by-line path rejects them
    return table
