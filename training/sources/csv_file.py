"""CSV files: with a header line, or headerless with user-given column names; plain or gzip.

connection_params: `path`, `has_header` (default True), `column_names` (required without a
header; with one, they replace its names; presets in `training.sources.presets`), `delimiter`
(default ","). A first line that looks like data (numbers, addresses) is refused as a header,
with the fix in the message. One record per line, except that a quoted field may hold line
breaks (RFC 4180: the lines of such a record are one record, numbered by its first line; a
quote inside an unquoted field is text; see `training.sources.quoted_csv`): a record with the
wrong number of fields, bytes that are not UTF-8 or a quote that does not close is quarantined
on its own. Column types are inferred per block (numbers become numbers).
A Zeek conn log written as CSV (IoT-23: `uid` and `conn_state` columns) keeps its `uid` as the
event id, and its rows are "conn" events, as the Zeek reader types the rows of a conn log
(unless the field map names an event type column the file has). A cell that is "-" or
"(empty)" and nothing else is no value (`NULL_CELLS`), as an empty one is. In a Zeek log
written as CSV (its `ts` and one of Zeek's ids: `uid`, `fuid`, `id.orig_h`), the fields Zeek
types bool (`ZEEK_BOOL_FIELDS`: local_orig, local_resp, ...) are booleans, as the Zeek reader
gives them: T/F, true/false (`coerce.to_bool`); another value there quarantines its line, with
the field. Every other column is typed as before.
"""

from __future__ import annotations

import csv
import functools
import math
import re
from collections.abc import Callable, Iterator
from typing import ClassVar

import numpy as np
import pyarrow as pa

from training.errors import ConfigError, SchemaError, SourceError
from training.sources.base import FileSource, Parsed, RawBatch, Reject
from training.sources.coerce import direction_from_locality, to_bool
from training.sources.delimited import Dialect, decode, parse_block
from training.sources.quoted_csv import quoted_records
from training.sources.files import ByteStream, Spans
from training.sources.jsonparse import unique_names
from training.sources.lines import read_lines
from training.sources.zeek import ZEEK_BOOL_FIELDS

MAX_COLUMNS = 10_000
_NO_CONVERTERS: dict = {}
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
# Cells that mean "no value", in every column of every CSV, not only Zeek-shaped ones. Zeek
# writes "-" for an unset field and its TSV reader makes it null, so a conn log exported as CSV
# (a SIEM's export, IoT-23) must too, or its service "-" is one more service to the models and
# every such event looks new to one trained on the TSV. "(empty)", Zeek's empty set or text, is
# null as well: a CSV cannot tell empty from unset, and reads an empty cell as null already.
# "-" alone is how most exports write nothing: Kibana's CSV export writes every missing cell
# so (quoted), as do Apache/nginx access logs and Windows events ("-" user), and number,
# address and time columns already read it as none (coerce.NULL_TEXT); a real value of just
# "-" is rare and worth less than one reading of a record whatever its format. Only the whole
# cell, quoted or not: "- x", "--" and "->" are kept. Recorded in a collection's recipe
# (`recipe_params`), so one collected when "-" was text is not resumed with it.
NULL_CELLS = ("", "-", "(empty)")


def _record_end(data: bytes, delimiter: str) -> int:
    """Where the whole records of `data` end: a block's cut (`iter_blocks`)."""
    if b'"' not in data:
        return data.rfind(b"\n") + 1
    return quoted_records(data, delimiter, final=False)[1]


def _data_like(name: str) -> bool:
    """A value no one names a column: a number or an IPv4 address."""
    text = name.strip()
    if _IPV4.match(text):
        return True
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _refuse_data_as_header(names: list[str], stream: str) -> None:
    """Line 1 of a file read with a header must look like one: a header whose names are
    numbers or addresses (a quarter of them or more) is the first data row of a file that has
    no header, and reading it as names would lose that row and misname every column."""
    data = [n for n in names if _data_like(n)]
    if data and len(data) * 4 >= len(names):
        shown = ", ".join(repr(n) for n in list(dict.fromkeys(data))[:4])
        raise SchemaError(
            f"{stream}: line 1 looks like data, not a header: {len(data)} of its {len(names)} "
            f"fields are numbers or addresses ({shown}, ...). If the file has no header line, "
            f"give its {len(names)} column names: --column-names NAME,NAME,... on the command "
            "line, column_names = [...] in its [[sources]] entry, or in Python "
            'connection_params["column_names"] = [...] with "has_header": False (a preset for '
            "NSL-KDD files: --column-names nsl_kdd, or in Python its names and field map "
            "training.sources.presets.NSL_KDD_COLUMNS and NSL_KDD_FIELDS; see "
            "training/sources/presets.py)")


def row_id_columns(names: list[str]) -> tuple[str, ...]:
    """The columns holding each row's own id: a Zeek conn log's `uid` (an IoT-23 CSV), unique
    per row only in conn logs (DNS and HTTP rows repeat their connection's uid), so only where
    the file has conn columns too (`conn_state`). Ids are never taken from other columns."""
    return ("uid",) if "uid" in names and "conn_state" in names else ()


def zeek_log_type(names: list[str]) -> str | None:
    """The Zeek log a CSV's columns say it is: "conn" for one with a conn log's columns (the
    rule its row ids follow, `row_id_columns`: `conn_state` is a conn log's own field), else
    None (the file does not say; its rows get the default type)."""
    return "conn" if row_id_columns(names) else None


def zeek_booleans(names: list[str]) -> tuple[str, ...]:
    """The columns read as booleans: in a Zeek log written as CSV (its `ts` and one of Zeek's
    ids), the fields Zeek types bool; none in any other CSV, where such names may mean
    anything."""
    if "ts" not in names or not {"uid", "fuid", "id.orig_h"} & set(names):
        return ()
    return tuple(name for name in names if name in ZEEK_BOOL_FIELDS)


def _as_booleans(parsed: Parsed, columns: tuple[str, ...], stream: str) -> Parsed:
    """`columns` of a parsed block (read as text) as booleans; a row holding a value that is
    no boolean is rejected with its field, as a cell that does not convert is."""
    table, rejects = parsed.table, []
    bad = np.zeros(table.num_rows, dtype=bool)
    for name in columns:
        converted = to_bool(table[name])
        if converted.bad is not None:
            data, starts, ends = parsed.spans()
            for j in np.flatnonzero(converted.bad & ~bad):
                rejects.append(Reject(stream, int(parsed.lines[j]), int(parsed.records[j]), name,
                                      f"{table[name][int(j)].as_py()!r} {converted.reason}",
                                      decode(bytes(data[starts[j]:ends[j]]))))
            bad |= converted.bad
        table = table.set_column(table.schema.get_field_index(name), name, converted.values)
    parsed.table = table
    if rejects:
        keep = np.flatnonzero(~bad)

        def spans(whole: Callable[[], Spans] = parsed.spans) -> Spans:  # of the kept rows
            data, starts, ends = whole()
            return data, starts[keep], ends[keep]

        parsed.table, parsed.lines, parsed.records = (
            table.take(pa.array(keep)), parsed.lines[keep], parsed.records[keep])
        parsed.spans = spans
        parsed.rejects = sorted(parsed.rejects + rejects, key=lambda r: r.record)
    return parsed


class CsvFileSource(FileSource):
    """Comma- (or otherwise) separated values."""

    params: ClassVar[dict[str, object]] = {
        **FileSource.params, "has_header": True, "column_names": None, "delimiter": ",",
    }
    patterns: ClassVar[tuple[str, ...]] = ("*.csv", "*.csv.gz", "*.tsv", "*.tsv.gz", "*.txt",
                                            "*.txt.gz")
    syntax: ClassVar[str | None] = "csv"

    def __init__(self, config) -> None:
        super().__init__(config)
        delimiter = self.options["delimiter"]
        if not isinstance(delimiter, str) or len(delimiter) != 1:
            raise ConfigError(f"delimiter must be one character, got {delimiter!r}")
        names = self.options["column_names"]
        # A text would pass as a list of its letters ("nsl_kdd": 7 columns named n, s, l, ...).
        if names is not None and (isinstance(names, str) or not names
                                  or not all(isinstance(n, str) for n in names)):
            raise ConfigError(f"column_names must be a non-empty list of strings, got {names!r}"
                              + (" (a preset's names are in training.sources.presets, e.g. "
                                 "NSL_KDD_COLUMNS)" if isinstance(names, str) else ""))
        if not self.options["has_header"] and names is None:
            raise ConfigError(
                f"csv source {config.name!r}: has_header is False, so column_names must list "
                "the columns (e.g. the 43 NSL-KDD column names)"
            )
        self.dialect = Dialect(delimiter=delimiter, quoted=True, null_values=NULL_CELLS)

    def recipe_params(self) -> dict[str, object]:
        """The base's, the cells read as no value and the fields of a Zeek log read as
        booleans: other rules deliver other events. Named for every CSV, Zeek-like or not: the
        recipe is fixed before any file's header is read (a folder's files may differ)."""
        return {**super().recipe_params(), "null_cells": list(NULL_CELLS),
                "zeek_bool_fields": sorted(ZEEK_BOOL_FIELDS), "zeek_conn_type": "conn"}

    def derive(self, table: pa.Table) -> dict[str, pa.Array]:
        """The base's, and for a Zeek log written as CSV what the Zeek reader derives: the
        event type of a conn log's rows (`zeek_log_type`) where the field map finds no event
        type column in the file, and the direction from local_orig/local_resp (read as
        booleans, `zeek_booleans`) where the file has no direction."""
        derived = super().derive(table)
        names = table.column_names
        log_type = zeek_log_type(names)
        mapped = not set(self.fields.get("event_type", ())).isdisjoint(names)
        if log_type is not None and not mapped and "event_type" not in derived:
            derived["event_type"] = pa.array([log_type] * table.num_rows, pa.string())
        locality = ("local_orig", "local_resp")
        if ("direction" not in names and "direction" not in derived
                and set(locality) <= set(zeek_booleans(names))):
            derived["direction"] = direction_from_locality(*(table[n] for n in locality))
        return derived

    def read(self, stream: str, start: dict) -> Iterator[RawBatch]:
        with self.open(stream) as source:
            names, data_start = self._header(source)
            names = unique_names(names)
            booleans = zeek_booleans(names)
            # Read as text by both parsing paths, then converted by one rule: declared bool,
            # pyarrow's fast path would take T/F as booleans in every other column too.
            types = {name: pa.string() for name in booleans}

            def parse(block, path, record):
                parsed = parse_block(block, names, types, self.dialect, path, record,
                                     _NO_CONVERTERS)
                return _as_booleans(parsed, booleans, path) if booleans else parsed

            data_line = 2 if self.options["has_header"] else 1
            # Records with no field of the field map are refused, as JSON's (`check_format`).
            # A quoted field may hold line breaks: blocks end between records.
            yield from self.check_format(read_lines(
                source, start, parse, self.options["block_size"], data_start, data_line,
                cut=functools.partial(_record_end, delimiter=self.dialect.delimiter),
                id_columns=row_id_columns(names)))

    def _header(self, source: ByteStream) -> tuple[list[str], int]:
        """Column names and the byte offset where data starts."""
        stream = source.name
        given = self.options["column_names"]
        if not self.options["has_header"]:
            return list(given), 0
        size = 1 << 16
        head = source.peek(size)
        while b"\n" not in head and len(head) == size:
            if size > (64 << 20):
                raise SourceError(f"{stream}: the header line is longer than 64 MiB")
            size *= 2
            head = source.peek(size)
        line = head.split(b"\n", 1)[0]
        text = decode(line.rstrip(b"\r")).lstrip("\ufeff")
        if not text.strip():
            if not head:
                return list(given or []), 0
            raise SourceError(f"{stream}: line 1 should be the CSV header but is blank")
        try:
            names = next(csv.reader([text], delimiter=self.dialect.delimiter))
        except csv.Error as exc:  # e.g. a carriage return inside the line (old Mac line ends)
            raise SourceError(f"{stream}: line 1 is not a valid CSV header: {exc}") from None
        if len(names) > MAX_COLUMNS:
            raise SourceError(f"{stream}: line 1 declares {len(names)} columns, more than "
                              f"the {MAX_COLUMNS} this reader accepts")
        if given is None:
            _refuse_data_as_header(names, stream)
        if given is not None:
            if len(given) != len(names):
                raise SourceError(f"{stream}: column_names lists {len(given)} columns but the "
                                  f"header has {len(names)}")
            names = list(given)
        return names, min(len(line) + 1, len(head))  # a header-only file may lack its "\n"

