"""Parsing blocks of delimited lines (Zeek TSV, CSV) into Arrow, fast when clean, exact when not.

Fast path: the whole block goes through pyarrow's multithreaded CSV parser with the declared
column types. It is taken only when it is provably right: no parse or conversion error, no row
with the wrong number of fields, and one row per data line (so line numbers are exact).

Slow path, for a block that fails any of those: every data line is split in Python, lines with
the wrong field count or bytes that are not UTF-8 become rejects, and each column is converted
on its own so that a bad value rejects its row only. Both paths give the same table for the
same good lines.

A quoted dialect's field may hold line breaks (RFC 4180; a Windows event's Message exported
by a SIEM): its lines are one record, numbered by its first line, and blocks end only between
records (`training.sources.quoted_csv` says where records begin and end). Blocks without a
`"`, and unquoted dialects (Zeek), cut at line breaks.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from training.sources.base import Parsed, Reject
from training.sources.coerce import Converted
from training.sources.files import Block, LineIndex, has_line_starting
from training.sources.quoted_csv import (
    MAX_RECORD_LINES, open_at_end, quoted_records, record_index,
)


@dataclass(frozen=True)
class Dialect:
    """How a delimited format is written.

    Attributes:
        delimiter: the field separator.
        quoted: fields may be quoted CSV-style ("a, b" and "" escapes).
        null_values: texts that mean "no value".
        comment: lines starting with this byte are not data (Zeek's #close).
    """

    delimiter: str
    quoted: bool
    null_values: tuple[str, ...] = ("",)
    true_values: tuple[str, ...] = ()
    false_values: tuple[str, ...] = ()
    comment: bytes | None = None


def decode(raw: bytes) -> str:
    """Text for messages and quarantine records; bytes that are not UTF-8 become \\x escapes."""
    return raw.decode("utf-8", errors="backslashreplace")


def parse_block(
    block: Block,
    names: Sequence[str],
    types: dict[str, pa.DataType],
    dialect: Dialect,
    stream: str,
    record: int,
    converters: dict[pa.DataType, Callable[[pa.Array], Converted]],
) -> Parsed:
    """Parse one block.

    Args:
        block: whole lines of the file.
        names: column names, in order.
        types: declared column types (columns not named here are inferred by pyarrow on the
            fast path and kept as text on the slow path).
        dialect: separators, quoting, null markers.
        stream: file name for rejects.
        record: ordinal of the block's first data line in the stream.
        converters: text -> declared type, with bad-row reporting, for the slow path.

    Returns:
        The good rows with their line numbers and record ordinals, and the rejected lines.
    """
    data = block.data
    index = LineIndex(data)
    first = None  # the line (0-based, in the block) of each record, where records span lines
    loose = 0  # lines left with a quote open: pyarrow would read on, line breaks and all
    # A clean block: pyarrow gives one row per line (it skips blank lines and reads a quoted
    # line break as text, so both show up as a missing row) and no line is a comment.
    if dialect.comment is None or not has_line_starting(data, dialect.comment):
        n_lines = block.n_lines
        table = _fast_parse(data, n_lines, names, types, dialect)
        if table is not None and not (dialect.quoted and open_at_end(data, dialect.delimiter)):
            rows = np.arange(n_lines, dtype=np.int64)
            return Parsed(table, block.line + rows, record + rows, [], index.spans(rows), n_lines)
    if dialect.quoted and b'"' in data:
        spanning, _, loose = quoted_records(data, dialect.delimiter, final=True)
        if len(spanning):
            index, first = record_index(data, spanning)
            table = None if loose else _fast_parse(data, len(first), names, types, dialect,
                                                   newlines=True)
            if table is not None:  # one row per record
                rows = np.arange(len(first), dtype=np.int64)
                return Parsed(table, block.line + first, record + rows, [], index.spans(rows),
                              len(first))
    starts, ends = index.bounds
    is_data = ends > starts
    is_comment = np.zeros(len(starts), dtype=bool)
    if dialect.comment is not None and len(starts):
        firsts = np.frombuffer(data, dtype=np.uint8)[np.minimum(starts, max(len(data) - 1, 0))]
        is_comment = is_data & (firsts == dialect.comment[0])
        is_data &= ~is_comment
    comments = [(block.line + int(i), index.line(i)) for i in np.flatnonzero(is_comment)]
    data_index = np.flatnonzero(is_data)
    lines = block.line + (data_index if first is None else first[data_index])
    records = record + np.arange(len(data_index), dtype=np.int64)
    if len(data_index) == 0:
        return Parsed(_empty(names, types), lines, records, [], index.spans(data_index), 0,
                      comments)
    if len(data_index) < len(starts) and not loose:
        # Blank or comment lines (Zeek's #close): parse the data lines alone if they are clean.
        only_data = b"\n".join(index.line(i) for i in data_index)
        table = _fast_parse(only_data, len(data_index), names, types, dialect,
                            newlines=first is not None)
        if table is not None:
            return Parsed(table, lines, records, [], index.spans(data_index), len(data_index),
                          comments)
    parsed = _slow_parse(index, data_index, lines, records, names, types, dialect, stream,
                         converters)
    parsed.comments = comments
    return parsed


def _fast_parse(data: bytes, n_rows: int, names: Sequence[str], types: dict[str, pa.DataType],
                dialect: Dialect, newlines: bool = False) -> pa.Table | None:
    """pyarrow's parser over the whole buffer; None unless it yields exactly `n_rows` clean rows."""
    invalid = 0

    def on_invalid(row: object) -> str:
        nonlocal invalid
        invalid += 1
        return "skip"

    try:
        table = pcsv.read_csv(
            pa.BufferReader(data),
            # One chunk per column (nothing to combine later) and one thread: the collector
            # already overlaps parsing with the rest of the work on the other core.
            read_options=pcsv.ReadOptions(column_names=list(names), block_size=len(data) + 1,
                                          use_threads=False),
            parse_options=pcsv.ParseOptions(
                delimiter=dialect.delimiter,
                quote_char='"' if dialect.quoted else False,
                double_quote=dialect.quoted,
                escape_char=False,
                newlines_in_values=newlines,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pcsv.ConvertOptions(
                column_types=types,
                null_values=list(dialect.null_values),
                strings_can_be_null=True,
                true_values=list(dialect.true_values) or None,
                false_values=list(dialect.false_values) or None,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if invalid or table.num_rows != n_rows:
        return None
    if any(pa.types.is_binary(t) for t in table.schema.types):
        return None  # inferred for text that is not UTF-8: the slow path rejects those lines
    return table


def _empty(names: Sequence[str], types: dict[str, pa.DataType]) -> pa.Table:
    return pa.table({n: pa.array([], type=types.get(n, pa.string())) for n in names})


def _split(line: bytes, dialect: Dialect) -> list[bytes]:
    if not dialect.quoted:
        return line.split(dialect.delimiter.encode())
    text = line.decode("utf-8")  # UnicodeDecodeError is reported by the caller
    rows = list(csv.reader([text], delimiter=dialect.delimiter, strict=True))
    return [field.encode("utf-8") for field in rows[0]] if rows else [b""]


def _slow_parse(index: LineIndex, data_index: np.ndarray, lines: np.ndarray, records: np.ndarray,
                names: Sequence[str], types: dict[str, pa.DataType], dialect: Dialect,
                stream: str, converters: dict) -> Parsed:
    """Line by line: bad lines and bad values reject their own row only."""
    n_cols = len(names)
    rejects: list[Reject] = []
    kept: list[int] = []
    columns: list[list[str | None]] = [[] for _ in names]
    nulls = set(dialect.null_values)
    for k, i in enumerate(data_index):
        raw = index.line(i)
        try:
            if not dialect.quoted:
                raw.decode("utf-8")  # a bad byte's offset is then counted in the line, not the field
            fields = _split(raw, dialect)
            if len(fields) != n_cols:
                raise _FieldCount(len(fields))
            values = [f.decode("utf-8") for f in fields]
        except _FieldCount as exc:
            rejects.append(Reject(stream, int(lines[k]), int(records[k]), None,
                                  f"expected {n_cols} fields, found {exc.found}", decode(raw)))
            continue
        except UnicodeDecodeError as exc:
            rejects.append(Reject(stream, int(lines[k]), int(records[k]), None,
                                  f"bytes at {exc.start} are not valid UTF-8", decode(raw)))
            continue
        except csv.Error as exc:
            reason = (f"the quoted field opened on line {lines[k]} does not close (within "
                      f"{MAX_RECORD_LINES:,} lines, its quotes paired); line {lines[k]} is read "
                      "on its own" if str(exc) == "unexpected end of data" else str(exc))
            rejects.append(Reject(stream, int(lines[k]), int(records[k]), None,
                                  f"malformed CSV: {reason}", decode(raw)))
            continue
        kept.append(k)
        for column, value in zip(columns, values):
            column.append(None if value in nulls else value)
    keep = np.array(kept, dtype=np.int64)
    arrays: dict[str, pa.Array] = {}
    bad_rows = np.zeros(len(keep), dtype=bool)
    for name, values in zip(names, columns):
        array = pa.array(values, type=pa.string())
        declared = types.get(name)
        if declared is None:
            array = infer_numbers(array)
        elif declared != pa.string():
            converted = converters[declared](array)
            array = converted.values
            if converted.bad is not None:
                for j in np.flatnonzero(converted.bad & ~bad_rows):
                    k = keep[j]
                    rejects.append(Reject(stream, int(lines[k]), int(records[k]), name,
                                          f"{values[j]!r} {converted.reason}",
                                          decode(index.line(data_index[k]))))
                bad_rows |= converted.bad
        arrays[name] = array
    table = pa.table(arrays) if arrays else pa.table({})
    good = np.flatnonzero(~bad_rows)
    table = table.take(good)
    keep = keep[good]
    rejects.sort(key=lambda r: r.record)
    return Parsed(table, lines[keep], records[keep], rejects, index.spans(data_index[keep]),
                  len(data_index))


class _FieldCount(Exception):
    def __init__(self, found: int) -> None:
        super().__init__(found)
        self.found = found


def infer_numbers(array: pa.Array) -> pa.Array:
    """Integers or floats when every value of a text column is one, as pyarrow's CSV inference."""
    for numeric in (pa.int64(), pa.float64()):
        try:
            return array.cast(numeric)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return array


def strings_as(array: pa.Array, marker: str, replacement: str) -> pa.Array:
    """Replace one exact marker text (Zeek's "(empty)") in a string column."""
    hits = pc.equal(array, marker)
    if not pc.any(hits).as_py():
        return array  # the common case; rebuilding a string column is what costs
    return pc.if_else(hits, replacement, array)
