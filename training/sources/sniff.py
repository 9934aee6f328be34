"""Which format a file's records look like: the error that refuses a file given the wrong type.

A typed source (Zeek, Suricata EVE, Windows events) names the fields that mark its format
(`Source.format_fields`, from `training.sources.config.FORMATS`); a file whose records carry
none of them is refused by `Source.check_format` with `wrong_type_message`, which names the
format whose fields the records do carry, and the --source prefix that reads it. A generic JSON
or CSV file none of whose records has a field of its field map is refused the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from training.sources.config import FORMATS, TYPE_ALIASES, DataSourceType, source_type

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


def wrong_type_message(source: Source, stream: str, columns: set[str]) -> str:
    """Why `stream`, whose records carry `columns`, is refused by `source` (which does not
    recognise them), and what to give instead."""
    given = type_prefix(source.config.source_type)
    kind = looks_like(columns)
    if source.format_name is None:
        return _unknown_fields_message(stream, given, columns, kind)
    text = (f"{stream}: given as {given}:PATH, but its records carry none of the fields of "
            f"{source.format_name} ({', '.join(source.format_fields)})")
    if kind is not None and kind is not source.config.source_type:
        return (f"{text}; this looks like {FORMATS[kind][0]}: use "
                f"{type_prefix(kind)}:PATH")
    return (f"{text}; give {given}: only {source.format_name} files, and read other JSON "
            "as json:PATH (with --field-map for its time and address fields)")


def _unknown_fields_message(stream: str, given: str, columns: set[str],
                            kind: DataSourceType | None) -> str:
    """Why a generic file (json:) none of whose records has a field of the field map is refused:
    what its records look like, and how to read them."""
    shown = ", ".join(sorted(columns)[:6]) + (", ..." if len(columns) > 6 else "")
    text = (f"{stream}: no record has a field of the {given}: field map (a time, address or "
            f"event type such as timestamp, @timestamp, source.ip), only {shown}")
    if kind is not None:
        return f"{text}; this looks like {FORMATS[kind][0]}: use {type_prefix(kind)}:PATH"
    if any(name == "hits.hits" or name.startswith("hits.hits.") for name in columns):
        return (f"{text}; this looks like several Elasticsearch _search responses: give one "
                "response per file, or their hits one per line (jq -c '.hits.hits[]')")
    return (f"{text}; name its fields with --field-map, e.g. "
            "--field-map timestamp=FIELD,source_ip=FIELD")
