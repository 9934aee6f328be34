"""How a model's training sources were read, recorded with the model and reused to score.

A source read with a field map, column names or a label map (`--field-map`, `--column-names`,
`--label-map`; a TOML [[sources]] entry's `field_map`, `column_names`, `has_header`,
`label_map`) gives canonical fields the same file read without them lacks: a renamed CSV
scored without its field map gives every row null addresses. So the pipeline records these
settings of its training sources in each registered version's details (`SETTINGS_KEY`: per
source type, when every source of that type was read alike), and `score`, `score --follow` and
`evaluate` read inputs of the same type with them unless the command sets its own.

    recorded = reading_settings(config.sources)
    # {"csv_file": {"field_map": {"source_ip": "src", ...}}}
    sources, used = read_as_recorded(sources, recorded, given=set())
    # used: {"field_map": 5}, the settings applied with their sizes

`default_label` is not recorded: it says what the training records were, not how a file is
laid out, and would label new records by a claim about other ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from training.collection.schema import LabelMap
from training.sources.config import DataSource, DataSourceType

__all__ = ["SETTINGS", "SETTINGS_KEY", "read_as_recorded", "reading_settings", "recorded_line",
           "settings_text"]

SETTINGS_KEY = "source_settings"  # the key of a registered version's details
# Each recorded setting, with the flag that sets it and how its size is counted in words.
SETTINGS = {"field_map": ("--field-map", "field"), "column_names": ("--column-names", "column"),
            "label_map": ("--label-map", "label")}


def _settings(source: DataSource) -> dict[str, Any]:
    """What was given to `source` beyond its type's own reading (JSON-able)."""
    found: dict[str, Any] = {}
    if source.field_map:
        found["field_map"] = dict(source.field_map)
    params = source.connection_params
    if params.get("column_names") is not None:
        found["column_names"] = list(params["column_names"])
    if "has_header" in params:
        found["has_header"] = bool(params["has_header"])
    overrides = getattr(source.label_map, "overrides", None)
    if overrides:
        found["label_map"] = dict(overrides)
    return found


def reading_settings(sources: Iterable[DataSource]) -> dict[str, dict[str, Any]]:
    """{source type: settings} of the sources read otherwise than their type reads by
    itself; a type whose sources were read in different ways is left out (no one way to
    reuse)."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for source in sources:
        kind = DataSourceType(source.source_type).value
        by_type.setdefault(kind, []).append(_settings(source))
    return {kind: found[0] for kind, found in by_type.items()
            if found[0] and all(other == found[0] for other in found)}


def read_as_recorded(sources: Sequence[DataSource], recorded: Mapping[str, Any] | None,
                     given: set[str]) -> tuple[list[DataSource], dict[str, int]]:
    """The sources, each of a recorded type with the recorded settings the command did not
    set (the sources given are not changed).

    Args:
        sources: the command's sources.
        recorded: a version's `details[SETTINGS_KEY]`, or None.
        given: the settings the command set itself (names of `SETTINGS`): they win.

    Returns:
        (the sources, {setting: its size} of the settings applied: fields, columns, labels).
    """
    used: dict[str, int] = {}
    read = []
    for source in sources:
        found = (recorded or {}).get(DataSourceType(source.source_type).value)
        if not isinstance(found, Mapping):
            read.append(source)
            continue
        changes: dict[str, Any] = {}
        if found.get("field_map") and "field_map" not in given:
            # under the column names' preset map, when the command gave column names
            changes["field_map"] = {**found["field_map"], **(source.field_map or {})}
            used["field_map"] = len(found["field_map"])
        if "column_names" not in given:
            params = dict(source.connection_params)
            if found.get("column_names"):
                params["column_names"] = list(found["column_names"])
                used["column_names"] = len(found["column_names"])
            if "has_header" in found and "has_header" not in params:
                params["has_header"] = found["has_header"]
            changes["connection_params"] = params
        if found.get("label_map") and "label_map" not in given:
            changes["label_map"] = LabelMap({**found["label_map"],
                                             **source.label_map.overrides})
            used["label_map"] = len(found["label_map"])
        read.append(replace(source, **changes))
    return read, used


def settings_text(recorded: Mapping[str, Any]) -> str:
    """Recorded settings in words: "csv_file: field map (5 fields), column names (43 columns)"."""
    parts = []
    for kind, found in sorted(recorded.items()):
        sizes = [f"{name.replace('_', ' ')} ({len(found[name])} {SETTINGS[name][1]}"
                 f"{'' if len(found[name]) == 1 else 's'})" for name in SETTINGS
                 if found.get(name)]
        if "has_header" in found:
            sizes.append("a header line" if found["has_header"] else "no header line")
        parts.append(f"{kind}: {', '.join(sizes)}")
    return "; ".join(parts)


def recorded_line(used: Mapping[str, int], model: str) -> str | None:
    """The line saying which recorded settings are read with, e.g. "reading with the field
    map layer1_vae 1.0.0 was trained with (3 fields); --field-map overrides"; None if none."""
    if not used:
        return None
    parts = [(name.replace("_", " "), f"{n} {SETTINGS[name][1]}{'' if n == 1 else 's'}")
             for name, n in used.items()]
    flags = [SETTINGS[name][0] for name in used]
    if len(parts) == 1:
        (what, size), = parts
        return (f"reading with the {what} {model} was trained with ({size}); {flags[0]} "
                "overrides")
    listed = " and ".join(f"the {what} ({size})" for what, size in parts)
    return f"reading with {listed} {model} was trained with; {', '.join(flags)} override"
