"""One event dict onto the canonical schema without Arrow: the per-event form of `canonicalize`.

`events_table([event])` costs some 30 Arrow kernel calls whatever the row count, ~4 ms for
one event. `canonical_record(event)` gives the same canonical values for that one event in
plain Python, for the per-event API (`DataPreprocessor.preprocess_event`). It is the batch
mapping's rules applied to one row (the generic JSON source's field map, first non-null
candidate wins, the same converters' accept rules, labels, event ids, extra fields with the
type Arrow would give them), and `training/tests/test_event_fast_path.py` pins its result to
the batch path's, vector for vector.

It answers None, and the caller takes the batch path, for whatever it does not reproduce
exactly: any value the batch path would reject (so the batch path raises its error), values
whose Arrow conversion differs from Python's (floats and timestamps in text fields, text
forms of numbers beyond plain digits, big integers, bytes, mixed lists), ECS documents whose
fields are derived from several others (`training.sources.ecs`), and `raw_data` text.
Community IDs are not computed: no per-event feature uses them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pyarrow as pa

from training.collection.canonical import DEFAULT_EVENT_TYPE, RAW_PREFIX
from training.collection.record_ids import content_id, epoch_micros
from training.collection.schema import CANONICAL_SCHEMA, NO_SERVICE, NO_SERVICE_FIELDS
from training.collection.value_shapes import empty_held, held_objects
from training.kernels.netaddr import _parse_one
from training.sources.coerce import (
    _MAX_US, _MIN_US, NULL_TEXT, _direction, _parse_timestamp, _protocol_name,
    _severity, ipv6_text,
)
from training.sources.jsonparse import _column, flatten_record, nested_deeper

_CANONICAL = frozenset(CANONICAL_SCHEMA.names)
_FIELDS = tuple(name for name in CANONICAL_SCHEMA.names if name != "community_id")
_INT64 = (-2**63, 2**63)
# Fields that `normalize_ecs`, `derive_ecs` or `expand_raw_data` turn into other columns (or
# that mark a record they rename): batch path.
_DERIVED = frozenset({"event.duration", "suricata.eve.event_type", "event.module", "event.kind",
                      "event.category", "event.dataset", "raw_data"})
_DIGITS = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")
# ISO 8601 as Arrow's cast and `datetime.fromisoformat` both read it (they agree on these).
_ISO = re.compile(r"[0-9]{4}-[01][0-9]-[0-3][0-9][T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
                  r"(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:?[0-9]{2})?")


class NotExact(Exception):
    """A value this module does not map exactly as the batch path does (take that path)."""


@dataclass
class CanonicalRecord:
    """One event on the canonical schema.

    Attributes:
        values: canonical field -> Python value (text, int, float, None; `timestamp` in
            epoch microseconds, `severity` as float32), for every canonical column but
            `community_id`.
        extras: the event's other fields as (name, kind, value) in table order; kind is
            "number" (int, float, bool), "text", or "other" (null, list, timestamp), as the
            Arrow type of a one-row table would say.
    """

    values: dict[str, object]
    extras: list[tuple[str, str, object]] = field(default_factory=list)


_PLAIN_KINDS = {type(None): "null", bool: "bool", float: "float"}  # exact types, no check


def _kind(value: object) -> str:
    """The Arrow type family `pa.array([value])` gives, or NotExact."""
    plain = _PLAIN_KINDS.get(type(value))
    if plain is not None:
        return plain
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        if not _INT64[0] <= value < _INT64[1]:
            raise NotExact
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        value.encode("utf-8")  # a lone surrogate: the batch path names the event
        return "text"
    if type(value) is datetime:  # not pandas' Timestamp: Arrow reads it in nanoseconds
        return "time"
    if isinstance(value, list):
        if any(isinstance(v, (dict, list)) for v in value):
            # Objects in a list (Suricata's dns.answers): Arrow's own inference says whether it
            # stays a list or, refused, becomes JSON text.
            if not pa.types.is_list(_column([value]).type):
                raise NotExact
            return "list"
        kinds = {_kind(v) for v in value} - {"null"}
        if len(kinds) > 1 or "time" in kinds:
            raise NotExact  # Arrow may refuse the mix (then the batch keeps it as text)
        return "list"
    raise NotExact


def _in_range(low: int, high: int):
    def convert(kind: str, value: object) -> int | None:
        if kind == "null" or (kind == "text" and value in NULL_TEXT):
            return None
        if kind == "int":
            number = value
        elif kind == "float" and value.is_integer() and _INT64[0] <= value < _INT64[1]:
            number = int(value)
        elif kind == "text" and _DIGITS.fullmatch(value) and _INT64[0] <= int(value) < _INT64[1]:
            number = int(value)
        else:
            raise NotExact
        if not low <= number <= high:
            raise NotExact  # rejected by the batch path
        return number
    return convert


def _duration(kind: str, value: object) -> float | None:
    if kind == "null" or (kind == "text" and value in NULL_TEXT):
        return None
    if kind in ("int", "float") or (kind == "text" and _DECIMAL.fullmatch(value)):
        number = float(value)
        if np.isfinite(number) and number >= 0.0:
            return number
    raise NotExact


def _epoch_us(seconds: float) -> int:
    """`coerce._epoch_to_us` of one number (the unit by magnitude; IEEE products and
    round-half-even as there), refusing what that path rejects."""
    if not math.isfinite(seconds):
        raise NotExact
    magnitude = abs(seconds)
    scale = (1e-3 if magnitude >= 1e17 else 1.0 if magnitude >= 1e14
             else 1e3 if magnitude >= 1e11 else 1e6)
    us = seconds * scale
    if not math.isfinite(us) or abs(us) > 2.0**62:
        raise NotExact
    return round(us)


def _timestamp(kind: str, value: object) -> int | None:
    if kind == "null" or (kind == "text" and value in NULL_TEXT):
        return None
    if kind == "time":
        us = epoch_micros(value)
    elif kind in ("int", "float"):
        us = _epoch_us(float(value))
    elif kind == "text" and _ISO.fullmatch(value):
        try:
            us = _parse_timestamp(value)
        except (ValueError, OverflowError):
            raise NotExact from None
    else:
        raise NotExact
    if not _MIN_US <= us <= _MAX_US:
        raise NotExact
    return us


def _text(kind: str, value: object) -> str | None:
    if kind == "null":
        return None
    if kind == "text":
        return value
    if kind == "int":
        return str(value)
    if kind == "bool":
        return "true" if value else "false"
    raise NotExact  # Arrow writes floats and times its own way


def _ip(kind: str, value: object) -> str | None:
    if kind == "null" or (kind == "text" and value in NULL_TEXT):
        return None
    version = _parse_one(value)[1] if kind == "text" else -1
    if version < 0:
        raise NotExact
    return ipv6_text(value) if version == 6 else value


def _word(parse):
    def convert(kind: str, value: object) -> str | None:
        if kind == "null":
            return None
        if kind not in ("text", "int", "float", "bool"):
            raise NotExact
        return parse(value)
    return convert


def _severity_value(kind: str, value: object) -> float | None:
    text = value if kind == "float" else _text(kind, value)  # float: Arrow's text reads back
    if text is None or text in NULL_TEXT:
        return None
    try:
        return float(np.float32(_severity(text)))
    except (ValueError, OverflowError):
        raise NotExact from None


_port, _count = _in_range(0, 65535), _in_range(0, 2**63 - 1)
CONVERTERS = {
    "timestamp": _timestamp, "source_ip": _ip, "dest_ip": _ip, "source_port": _port,
    "dest_port": _port, "protocol": _word(_protocol_name), "bytes_sent": _count,
    "bytes_received": _count, "packets_sent": _count, "packets_received": _count,
    "duration": _duration, "direction": _word(_direction), "severity": _severity_value,
    "is_threat": _in_range(-1, 1),
}


def _no_service(field_name: str, name: str, value: object) -> object:
    """None where source field `name` of `service` names no service (`schema.NO_SERVICE`), as
    `canonical._no_service`."""
    if field_name == "service" and name in NO_SERVICE_FIELDS and value in NO_SERVICE:
        return None
    return value


def canonical_record(event: Mapping, source) -> CanonicalRecord | None:
    """`event` on the canonical schema as `events_table([event])` maps it (its first row), or
    None where this module does not reproduce that exactly (see the module docstring).

    Args:
        event: one event dict.
        source: the `Source` whose field map and labels apply (`events_table`'s).
    """
    if not isinstance(event, Mapping) or not event:
        return None
    try:
        event = dict(event)
        nested = any(isinstance(v, (dict, list, tuple)) for v in event.values())
        if nested and (nested_deeper(event) or _holds_object(event, source)):
            return None
        return _map(event, source, nested)
    except (NotExact, UnicodeEncodeError):
        return None


def _holds_object(event: dict, source) -> bool:
    """Whether a mapped name holds an object (the batch path quarantines that record, or,
    where the record also spells a dotted name out, keeps it: `value_shapes`)."""
    return (any(isinstance(v, dict) for v in event.values())
            and (bool(held_objects(flatten_record(event), source))
                 or empty_held(event, source) is not None))


def _flat(event: dict, nested: bool) -> tuple[dict[str, object], list[str] | None]:
    """The flat row as read (what the content id hashes), and its names with `raw_data.`
    prefixes dropped, as `expand_raw_data` does (None: the same names). An event without
    objects is its own row."""
    flat = flatten_record(event) if nested else event
    names = None  # unchanged
    prefix = "raw_data."
    if any(name.startswith(prefix) for name in flat):
        names = [name[len(prefix):] if name.startswith(prefix) and name[len(prefix):] not in flat
                 else name for name in flat]
    if not flat or _DERIVED.intersection(flat if names is None else names):
        raise NotExact
    return flat, names


def _candidates(source) -> dict[str, tuple[str, int] | None]:
    """Source field name -> (canonical field, its rank among that field's candidates)."""
    fields = source.fields
    cached = _CANDIDATES.get(id(fields))
    if cached is None or cached[0] is not fields:
        ranks = {}
        for field_name, candidates in fields.items():
            for rank, candidate in enumerate(candidates):
                # A name two fields share: not mapped here (`_map` takes the batch path).
                ranks[candidate] = (field_name, rank) if candidate not in ranks else None
        cached = _CANDIDATES[id(fields)] = (fields, ranks)
    return cached[1]


_CANDIDATES: dict[int, tuple[dict, dict[str, tuple[str, int] | None]]] = {}
_EXTRA_KIND = {"int": "number", "float": "number", "bool": "number", "text": "text"}


def _map(event: dict, source, nested: bool) -> CanonicalRecord:
    read, names = _flat(event, nested)
    flat = read if names is None else dict(zip(names, read.values()))
    ranks = _candidates(source)
    kinds: dict[str, str] = {}
    present: dict[str, list[tuple[int, str]]] = {}
    for name, value in flat.items():
        kinds[name] = _PLAIN_KINDS.get(type(value)) or _kind(value)
        name.encode("utf-8")  # a lone surrogate in a name: the batch path names the event
        found = ranks.get(name, False)
        if found is None:
            raise NotExact
        if found:
            present.setdefault(found[0], []).append((found[1], name))
    columns: dict[str, object] = {}  # the fields with a present candidate (value may be None)
    consumed: set[str] = set()
    for field_name, named in present.items():
        convert = CONVERTERS.get(field_name, _text)
        if len(named) == 1:  # the common case: one candidate, nothing to lose to
            name = named[0][1]
            if kinds[name] == "list":
                raise NotExact  # the batch path takes a list's first item
            columns[field_name] = _no_service(field_name, name, convert(kinds[name], flat[name]))
            consumed.add(name)
            continue
        taken, first = False, None
        for _, name in sorted(named):
            if kinds[name] == "list":
                raise NotExact
            value = _no_service(field_name, name, convert(kinds[name], flat[name]))
            if not (value is not None and taken):
                consumed.add(name)  # no earlier candidate had a value: nothing lost
            if value is not None and not taken:
                first, taken = value, True
        columns[field_name] = first
    values = _labels(columns, source)
    event_type = columns.get("event_type")
    values["event_type"] = event_type if event_type is not None else DEFAULT_EVENT_TYPE
    values["event_id"] = columns.get("event_id")
    if values["event_id"] is None:
        values["event_id"] = content_id(read, list(kinds.values()))
    extras = []
    own_source = None
    for name, value in flat.items():
        if name in consumed:
            continue
        if name == "source":  # a record's own source is its source (`events_table`)
            own_source = _text(kinds[name], value)
            continue
        extras.append((RAW_PREFIX + name if name in _CANONICAL else name,
                       _EXTRA_KIND.get(kinds[name], "other"), value))
    values["source"] = own_source if own_source is not None else source.config.name
    for name in _FIELDS:
        if name not in values:
            values[name] = columns.get(name)
    return CanonicalRecord(values, extras)


def _labels(columns: dict[str, object], source) -> dict[str, object]:
    """label, is_threat and attack_type as `canonical._fill_labels` makes them."""
    config = source.config
    has_label = "label" in columns or config.default_label is not None
    label = columns.get("label")
    if label is None:
        label = config.default_label
    classified = config.label_map.classify_one(label) if has_label else -1
    given = columns.get("is_threat")
    is_threat = given if given is not None else classified
    detail = columns.get("attack_type")
    if detail in ("", "-", "(empty)"):
        detail = None
    threat_label = label if is_threat == 1 else None
    if not has_label:
        attack = detail
    elif "attack_type" not in columns:
        attack = threat_label
    else:
        attack = detail if detail is not None else threat_label
    return {"label": label, "is_threat": is_threat, "attack_type": attack}
