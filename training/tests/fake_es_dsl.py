"""The query DSL subset, sort keys and error bodies of `fake_elasticsearch` (a stand-in for a
real cluster in tests): documents are plain dicts, fields may be dotted or nested."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import orjson

LONG_MAX = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class EsError(Exception):
    """An error answered with an ES-shaped body."""

    def __init__(self, status: int, kind: str, reason: str, root: str | None = None) -> None:
        super().__init__(reason)
        self.status, self.kind, self.reason, self.root = status, kind, reason, root

    def body(self) -> dict:
        root = {"type": self.root or self.kind, "reason": self.reason}
        return {"error": {"root_cause": [root], "type": self.kind, "reason": self.reason},
                "status": self.status}


def field_value(source: dict, name: str) -> object:
    """A (possibly dotted) field of a document, nested or flat."""
    if name in source:
        return source[name]
    value: object = source
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def epoch_millis(value: object) -> int | None:
    """A date as Elasticsearch sorts it: epoch milliseconds (a number is taken as millis)."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    try:
        parsed = datetime.fromisoformat(str(value).strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    delta = parsed - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def sort_key(spec: object) -> str | None:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict) and len(spec) == 1:
        key, options = next(iter(spec.items()))
        order = options.get("order", "asc") if isinstance(options, dict) else options
        if order != "asc":
            raise EsError(400, "illegal_argument_exception", "this server sorts ascending only")
        return key
    raise EsError(400, "parsing_exception", f"malformed sort {spec!r}")


def mix(value: object) -> int:
    """A well-spread hash of a slice token (ES mixes the doc values the same way)."""
    number = value if isinstance(value, int) else int.from_bytes(
        orjson.dumps(value)[:8].ljust(8, b"\0"), "little")
    number = (number * 0x9E3779B97F4A7C15) & (2**64 - 1)
    return number ^ (number >> 29)


def _text(value: object) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def compile_query(query: dict, time_field: str) -> Callable[[dict], bool]:
    """A predicate over documents for the query DSL subset in the module docstring."""
    if not isinstance(query, dict) or len(query) != 1:
        raise EsError(400, "parsing_exception", f"malformed query {query!r}")
    kind, spec = next(iter(query.items()))
    if kind == "match_all":
        return lambda source: True
    if kind == "bool":
        must = [compile_query(q, time_field) for key in ("filter", "must")
                for q in _as_list(spec.get(key))]
        must_not = [compile_query(q, time_field) for q in _as_list(spec.get("must_not"))]
        return lambda s: all(m(s) for m in must) and not any(m(s) for m in must_not)
    if kind == "range":
        (field, bounds), = spec.items()
        convert = epoch_millis if field == time_field else (lambda v: v)
        tests = []
        for op, check in (("gte", lambda a, b: a >= b), ("gt", lambda a, b: a > b),
                          ("lte", lambda a, b: a <= b), ("lt", lambda a, b: a < b)):
            if op in bounds:
                tests.append((check, convert(bounds[op])))

        def in_range(source: dict) -> bool:
            value = convert(field_value(source, field))
            return value is not None and all(check(value, bound) for check, bound in tests)
        return in_range
    if kind in ("term", "match"):
        (field, value), = spec.items()
        if isinstance(value, dict):
            value = value.get("value", value.get("query"))
        return lambda s: field_value(s, field) == value
    if kind == "query_string":
        terms = []
        for part in str(spec.get("query", "")).split(" AND "):
            field, sep, value = part.strip().partition(":")
            if not sep or not field:
                raise EsError(400, "query_shard_exception",
                              f"this server understands field:value terms joined by AND, got {part!r}")
            terms.append((field, value.strip().strip('"')))
        return lambda s: all(_text(field_value(s, f)) == v for f, v in terms)
    raise EsError(400, "parsing_exception", f"unknown query [{kind}]")


def _as_list(value: object) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
