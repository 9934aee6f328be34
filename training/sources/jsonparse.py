"""JSON records to flat Arrow tables: JSON Lines blocks, whole documents, Python dicts.

Nested objects become dotted column names ("alert.signature"), as Zeek and ECS already write
them, so every source sees one flat namespace. Lists stay lists.

JSON Lines blocks take pyarrow's multithreaded reader when the block is clean (no malformed
line, one row per non-blank line, no column whose type changes between lines); otherwise each
line is parsed on its own with orjson, bad lines become rejects, and columns whose values mix
types are kept as text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.json as pjson

from training.fileio import Block, LineIndex
from training.sources.base import Parsed, Reject
from training.sources.delimited import decode

_PARSE_BLOCK = 4 << 20
_BOM = b"\xef\xbb\xbf"
_BLANK = np.zeros(256, dtype=bool)
_BLANK[[9, 10, 13, 32]] = True


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
    """Struct columns become one column per field, named "parent.child", recursively."""
    while any(pa.types.is_struct(t) for t in table.schema.types):
        table = table.flatten()
    if len(set(table.column_names)) != table.num_columns:
        table = table.rename_columns(unique_names(table.column_names))
    return table


def _flatten_dict(record: dict, prefix: str, out: dict) -> None:
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            _flatten_dict(value, f"{name}.", out)
        else:
            while name in out:
                name += "~"
            out[name] = value


def _column(values: list) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        # Mixed types across records (a port as 80 here and "80" there): keep the text.
        return pa.array(
            [v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for v in values],
            type=pa.string(),
        )


def records_to_table(records: list[dict]) -> pa.Table:
    """A flat table from non-empty JSON objects; keys missing from a record are null there."""
    flat = []
    for record in records:
        out: dict = {}
        _flatten_dict(record, "", out)
        flat.append(out)
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
            if isinstance(value, dict) and value:
                good.append(value)
                kept.append(k)
                continue
            reason = ("empty JSON object" if value == {} else
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
    try:
        table = pjson.read_json(pa.BufferReader(data), read_options=pjson.ReadOptions(block_size=_PARSE_BLOCK))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_rows != expected_rows or table.num_columns == 0:
        return None
    table = flatten_structs(table)
    if _has_all_null_rows(table):
        return None  # `{}` lines (read as rows of nulls): the line-by-line path rejects them
    return table
