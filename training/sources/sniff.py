"""Which format a file's records look like: the error that refuses a file given the wrong type.

A typed source (Zeek, Suricata EVE, Windows events) names the fields that mark its format
(`Source.format_fields`, from `training.sources.config.FORMATS`); a file whose records carry
none of them is refused by `Source.check_format` with `wrong_type_message`, which names the
format whose fields the records do carry, and the --source prefix that reads it. A generic JSON
or CSV file none of whose records has a field of its field map is refused the same way. A file
is pointed to a typed source only where that source reads its syntax (`config.FORMAT_SYNTAX`):
a CSV whose columns are Windows events' is told to name them with --field-map, or to export
the events as JSON for windows:, never to read it as windows:, which reads JSON only.
"""

from __future__ import annotations

import os
from contextlib import closing
from contextvars import ContextVar
from typing import TYPE_CHECKING

from training.errors import PipelineError
from training.sources.config import (
    FORMAT_SYNTAX, FORMATS, TYPE_ALIASES, DataSourceType, source_type,
)
from training.sources.paths import expand_paths

if TYPE_CHECKING:
    from training.sources.base import Source


def looks_like(columns: set[str]) -> DataSourceType | None:
    """The typed format whose fields (`FORMATS`) the records carry most of; None when they
    carry none of any format's (generic JSON)."""
    best, most = None, 0
    for kind, (_, fields) in FORMATS.items():
        found = len(columns.intersection(fields))
        if found > most:
            best, most = kind, found
    return best


def type_prefix(kind: DataSourceType | str) -> str:
    """The shortest --source prefix of `kind` (a type or its name): zeek for zeek_logs."""
    kind = source_type(kind)
    return min((alias for alias, value in TYPE_ALIASES.items() if value is kind), key=len)


def reads(kind: DataSourceType, source: Source) -> bool:
    """Whether the typed source `kind` reads the syntax `source` read its records from (a
    Windows events' JSON file: yes; a CSV of the same events: no)."""
    return source.syntax in FORMAT_SYNTAX.get(kind, ())


def wrong_type_message(source: Source, stream: str, columns: set[str]) -> str:
    """Why `stream`, whose records carry `columns`, is refused by `source` (which does not
    recognise them), and what to give instead."""
    given = type_prefix(source.config.source_type)
    kind = looks_like(columns)
    if source.format_name is None:
        return _unknown_fields_message(source, stream, given, columns, kind)
    text = (f"{stream}: given as {given}:PATH, but its records carry none of the fields of "
            f"{source.format_name} ({', '.join(source.format_fields)})")
    if kind is not None and kind is not source.config.source_type and reads(kind, source):
        return (f"{text}; this looks like {FORMATS[kind][0]}: use "
                f"{type_prefix(kind)}:PATH{_in_folder(source, stream, type_prefix(kind))}")
    return (f"{text}; give {given}: only {source.format_name} files, and read other JSON "
            "as json:PATH (with --field-map for its time and address fields)"
            f"{_in_folder(source, stream, 'json')}")


def _in_folder(source: Source, stream: str, use: str) -> str:
    """For a file found in a folder the source reads whole (every file its patterns take, as
    one type) that also holds files of that type: how to read both, each file with its own
    source ("zeek:logs/conn.log suricata:logs/eve.json"). Empty for a file given by name or
    glob, and for a folder none of whose other files is of the type given (the whole folder
    is of another type: the message's "use X:PATH" says it all)."""
    folder = getattr(source, "options", {}).get("path")
    if (_SNIFFING.get() or not isinstance(folder, (str, os.PathLike))
            or not os.path.isdir(folder)):
        return ""
    given = type_prefix(source.config.source_type)
    found = expand_paths(folder, source.patterns, source.options["follow_symlinks"]).files
    others = [str(path) for path in found if str(path) != stream][:_SNIFFED]
    sniffing = _SNIFFING.set(True)  # the other files' own refusals need no hint
    try:
        ours = [path for path in others if _reads_as(source, path)]
    finally:
        _SNIFFING.reset(sniffing)
    if not ours:
        return ""
    more = f" (and {len(ours) - 3} more)" if len(ours) > 3 else ""
    return (f"; {given}:{folder} reads the folder's files as {source.format_name or given} "
            "files: to read both, give each its own source (one --input or --source each): "
            f"{' '.join(f'{given}:{path}' for path in ours[:3])}{more} {use}:{stream}")


_SNIFFED = 50  # other files of a folder looked at for the hint (one block each)
_SNIFFING: ContextVar[bool] = ContextVar("sniffing", default=False)


def _reads_as(source: Source, stream: str) -> bool:
    """Whether `source` takes the first records of `stream` (one block read, on the path of an
    error: the file is not kept open)."""
    try:  # from the start of the file (`base.START`; base imports this module)
        with closing(source.read(stream, {"offset": 0, "line": 1, "record": 0})) as batches:
            next(batches, None)
    except PipelineError:  # not of this type (check_format), or not readable as it
        return False
    return True


def _unknown_fields_message(source: Source, stream: str, given: str, columns: set[str],
                            kind: DataSourceType | None) -> str:
    """Why a generic file (json:, csv:) none of whose records has a field of the field map is
    refused: what its records look like, and how to read them."""
    shown = ", ".join(sorted(columns)[:6]) + (", ..." if len(columns) > 6 else "")
    text = (f"{stream}: no record has a field of the {given}: field map (a time, address or "
            f"event type such as timestamp, @timestamp, source.ip), only {shown}")
    if kind is not None and reads(kind, source):
        return f"{text}; this looks like {FORMATS[kind][0]}: use {type_prefix(kind)}:PATH"
    if kind is not None:  # of a typed format, in a syntax its reader does not read
        typed, read = type_prefix(kind), _syntax_names(FORMAT_SYNTAX[kind])
        ours = _syntax_names({source.syntax or "its syntax"})
        return (f"{text}; this looks like {FORMATS[kind][0]}, but {typed}: reads {read} only, "
                f"not {ours}: name its columns with --field-map, "
                f"e.g. --field-map {_field_map_example(columns)}, or export the records as "
                f"{read} and read that as {typed}:PATH")
    if any(name == "hits.hits" or name.startswith("hits.hits.") for name in columns):
        return (f"{text}; this looks like several Elasticsearch _search responses: give one "
                "response per file, or their hits one per line (jq -c '.hits.hits[]')")
    return (f"{text}; name its fields with --field-map, e.g. "
            "--field-map timestamp=FIELD,source_ip=FIELD")


_SYNTAX_NAMES = {"json": "JSON", "csv": "CSV", "zeek_tsv": "Zeek TSV"}
# Column names that say which canonical field they hold, for the --field-map example: Windows
# events' own names (the generic map already reads Zeek's and Suricata's, so no CSV of those
# is refused).
_EXAMPLE_COLUMNS = {
    "timestamp": ("UtcTime", "TimeCreated", "EventTime", "TimeGenerated"),
    "event_type": ("EventID", "EventId"),
    "host": ("Computer", "Hostname"),
    "user": ("TargetUserName", "SubjectUserName"),
}


def _syntax_names(syntaxes) -> str:
    """`{"json", "zeek_tsv"}` as "JSON or Zeek TSV"."""
    return " or ".join(sorted(_SYNTAX_NAMES.get(s, str(s)) for s in syntaxes))


def _field_map_example(columns: set[str]) -> str:
    """A --field-map value naming the file's own columns ("event_type=EventID,host=Computer");
    "timestamp=COLUMN,source_ip=COLUMN" where none of them says what it holds."""
    pairs = [f"{field}={next(n for n in names if n in columns)}"
             for field, names in _EXAMPLE_COLUMNS.items() if not columns.isdisjoint(names)]
    return ",".join(pairs) or "timestamp=COLUMN,source_ip=COLUMN"
