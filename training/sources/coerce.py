"""Vectorized conversion of source values into canonical types, reporting the rows that fail.

Every converter takes an Arrow array of whatever type a reader produced and returns a
`Converted`: the values in the target type (null where missing or bad) and a mask of the rows
whose value could not be converted, with the rule they broke. Clean data takes one Arrow cast;
only a batch that fails it pays for a per-value look at its distinct values.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from training.kernels.netaddr import pack_ips
from training.sources.time_text import parse_time_text

TIMESTAMP = pa.timestamp("us", tz="UTC")
# Years outside this range are almost always a wrong unit or a corrupt value.
_MIN_US = 0
_MAX_US = int(datetime(2200, 1, 1, tzinfo=timezone.utc).timestamp()) * 1_000_000
NULL_TEXT = ("", "-")

PROTOCOL_NAMES = {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 47: "gre", 50: "esp", 51: "ah",
                  58: "icmpv6", 132: "sctp"}
_PROTOCOL_ALIASES = {"ipv6-icmp": "icmpv6", "icmp6": "icmpv6"}
_DIRECTIONS = {
    "inbound": "inbound", "ingress": "inbound", "to_server": "inbound", "%%14592": "inbound",
    "outbound": "outbound", "egress": "outbound", "to_client": "outbound", "%%14593": "outbound",
    "internal": "internal", "external": "external",
}
_SEVERITY_WORDS = {"informational": 0.0, "info": 0.0, "low": 0.25, "medium": 0.5,
                   "moderate": 0.5, "high": 0.75, "critical": 1.0}


@dataclass(frozen=True)
class Converted:
    """Values in the target type, and the rows that broke `reason` (None when all are fine)."""

    values: pa.Array
    bad: np.ndarray | None = None
    reason: str = ""


def plain(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous array with dictionaries decoded, lists reduced to their first item and
    objects to their JSON text."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        array = pc.list_element(pc.if_else(pc.greater(pc.list_value_length(array), 0), array, None), 0)
    if pa.types.is_nested(array.type):  # an object (or a list of lists) where a value belongs:
        # its JSON text, which text fields keep and other fields reject with the value shown
        array = pa.array([None if v is None else orjson.dumps(v, default=str).decode()
                          for v in array.to_pylist()], type=pa.string())
    return array


def null_where(array: pa.Array, mask: pa.Array) -> pa.Array:
    """`array` with nulls where `mask` is true; the array itself when nothing matches, since
    rebuilding a string column is what costs."""
    if not pc.any(mask).as_py():
        return array
    return pc.if_else(mask, None, array)


def _blank_to_null(strings: pa.Array) -> pa.Array:
    return null_where(strings, pc.is_in(strings, pa.array(NULL_TEXT)))


def map_distinct(array: pa.Array, fn: Callable[[object], object], out_type: pa.DataType) -> pa.Array:
    """Apply a Python function to each distinct value once, then gather (nulls stay null)."""
    encoded = pc.dictionary_encode(array)
    distinct = encoded.dictionary.to_pylist()
    mapped = [fn(v) for v in distinct]
    if mapped == distinct and array.type == out_type:
        return array  # already in canonical form (the usual case for a given sensor)
    return pa.array(mapped, type=out_type).take(encoded.indices)


def _per_value(array: pa.Array, parse: Callable[[object], object], out_type: pa.DataType,
               reason: str) -> Converted:
    """Slow path: parse each distinct value; values that raise ValueError are bad."""
    failed = object()

    def attempt(value: object) -> object:
        try:
            return parse(value)
        except (ValueError, OverflowError, TypeError):
            return failed

    encoded = pc.dictionary_encode(array)
    parsed = [attempt(v) for v in encoded.dictionary.to_pylist()]
    bad_codes = np.array([p is failed for p in parsed] + [False], dtype=bool)
    values = pa.array([None if p is failed else p for p in parsed], type=out_type)
    codes = encoded.indices.fill_null(len(parsed)).to_numpy(zero_copy_only=False)
    return Converted(values.take(encoded.indices), bad_codes[codes], reason)


def to_string(array: pa.Array | pa.ChunkedArray) -> Converted:
    """Text; binary input must be valid UTF-8."""
    array = plain(array)
    if pa.types.is_string(array.type):
        return Converted(array)
    if pa.types.is_large_string(array.type):
        return Converted(array.cast(pa.string()))
    if pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type):
        try:
            return Converted(array.cast(pa.string()))
        except pa.ArrowInvalid:
            return _per_value(array, lambda b: b.decode("utf-8"), pa.string(), "is not valid UTF-8")
    if pa.types.is_null(array.type):
        return Converted(pa.nulls(len(array), pa.string()))
    if pa.types.is_boolean(array.type):
        return Converted(pc.if_else(array, "true", "false"))
    try:
        return Converted(array.cast(pa.string()))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return Converted(map_distinct(array, str, pa.string()))


def _parse_integer(value: object) -> int:
    number = float(value) if not isinstance(value, int) else value
    if isinstance(number, float) and not number.is_integer():
        raise ValueError(value)
    if not -2**63 <= number < 2**63:  # e.g. 1e30: whole, but no int64 holds it
        raise OverflowError(value)
    return int(number)


def _cast_or_parse(array: pa.Array, type_: pa.DataType, parse: Callable[[object], object],
                   reason: str) -> tuple[pa.Array, np.ndarray | None]:
    """One Arrow cast; only when it fails, each distinct value is parsed on its own."""
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        array = _blank_to_null(array)
    try:
        return array.cast(type_), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        parsed = _per_value(array, parse, type_, reason)
        return parsed.values, parsed.bad


def _reject(values: pa.Array, bad: np.ndarray | None,
            invalid: np.ndarray) -> tuple[pa.Array, np.ndarray | None]:
    """Null out and flag the `invalid` rows."""
    if not invalid.any():
        return values, bad
    return pc.if_else(pa.array(invalid), None, values), invalid if bad is None else bad | invalid


def to_int(array: pa.Array | pa.ChunkedArray, low: int, high: int, out_type: pa.DataType,
           what: str) -> Converted:
    """Whole numbers in [low, high]; text such as "80" or "80.0" is accepted."""
    array = plain(array)
    if pa.types.is_null(array.type):
        return Converted(pa.nulls(len(array), out_type))
    reason = f"is not {what} in {low}..{high}"
    values, bad = _cast_or_parse(array, pa.int64(), _parse_integer, reason)
    bounds = pc.min_max(values)
    smallest, largest = bounds["min"].as_py(), bounds["max"].as_py()
    if smallest is not None and not low <= smallest <= largest <= high:
        numbers = values.fill_null(low).to_numpy()
        values, bad = _reject(values, bad, (numbers < low) | (numbers > high))
    return Converted(values.cast(out_type), bad, reason)


def to_float(array: pa.Array | pa.ChunkedArray, low: float, what: str) -> Converted:
    """Finite numbers >= low."""
    array = plain(array)
    if pa.types.is_null(array.type):
        return Converted(pa.nulls(len(array), pa.float64()))
    reason = f"is not {what} (a finite number >= {low})"
    values, bad = _cast_or_parse(array, pa.float64(), float, reason)
    numbers = values.fill_null(0.0).to_numpy()
    missing = values.is_null().to_numpy(zero_copy_only=False)
    values, bad = _reject(values, bad, (~np.isfinite(numbers) | (numbers < low)) & ~missing)
    return Converted(values, bad, reason)


def _epoch_to_us(seconds: np.ndarray) -> np.ndarray:
    """Unix epoch numbers to microseconds; larger magnitudes are read as ms, us or ns."""
    magnitude = np.abs(seconds)
    scale = np.select([magnitude >= 1e17, magnitude >= 1e14, magnitude >= 1e11],
                      [1e-3, 1.0, 1e3], default=1e6)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.round(seconds * scale)


def _parse_timestamp(value: object) -> int:
    """One timestamp (ISO 8601 text, epoch number or epoch text) to epoch microseconds in
    the accepted range (1970..2199); ValueError otherwise.

    The range is checked here, not after: "1e30" or a 23-digit number is a whole number of
    microseconds that no int64 holds, and one such value must reject its record only.
    """
    if isinstance(value, (int, float)) or (isinstance(value, str) and _is_number(value)):
        us = float(_epoch_to_us(np.array([float(value)]))[0])
        if not math.isfinite(us):
            raise ValueError(value)
        us = int(us)
    elif isinstance(value, str):
        delta = parse_time_text(value) - datetime(1970, 1, 1, tzinfo=timezone.utc)
        us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    else:
        raise ValueError(value)
    if not _MIN_US <= us <= _MAX_US:
        raise ValueError(value)
    return us


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def to_timestamp(array: pa.Array | pa.ChunkedArray) -> Converted:
    """UTC microsecond timestamps from timestamps, epoch numbers, ISO 8601 text or Kibana's
    default date text ("Feb 22, 2023 @ 01:00:03.714", see `time_text`).

    Text without a zone offset is taken as UTC. Numbers are Unix epoch seconds, except values
    too large to be seconds, which are read as milliseconds (>= 1e11), microseconds (>= 1e14)
    or nanoseconds (>= 1e17). Instants before 1970 or after 2199 are rejected.
    """
    array = plain(array)
    reason = "is not a timestamp (ISO 8601 or Unix epoch) between 1970 and 2199"
    bad = None
    if pa.types.is_null(array.type):
        return Converted(pa.nulls(len(array), TIMESTAMP))
    if pa.types.is_timestamp(array.type):
        # Nanoseconds (pandas, Parquet) are truncated to microseconds rather than refused.
        to_us = pc.CastOptions(pa.timestamp("us", tz=array.type.tz), allow_time_truncate=True)
        values = pc.cast(array, options=to_us).cast(TIMESTAMP)
    elif pa.types.is_date(array.type):
        values = array.cast(pa.timestamp("us")).cast(TIMESTAMP)
    elif pa.types.is_integer(array.type) or pa.types.is_floating(array.type):
        # safe=False: int64 epoch nanoseconds exceed 2**53; the float keeps them to ~1 us.
        us = _epoch_to_us(array.cast(pa.float64(), safe=False).fill_null(0).to_numpy())
        bad = ~np.isfinite(us) | (np.abs(us) > 2.0**62)
        us[bad] = 0
        missing = array.is_null().to_numpy(zero_copy_only=False)
        values = pa.array(us.astype(np.int64), mask=bad | missing).cast(TIMESTAMP)
    else:
        text = _blank_to_null(to_string(array).values)
        try:
            values = text.cast(TIMESTAMP)
        except pa.ArrowInvalid:
            try:
                values = text.cast(pa.timestamp("us")).cast(TIMESTAMP)
            except pa.ArrowInvalid:
                parsed = _per_value(text, _parse_timestamp, pa.int64(), reason)
                values, bad = parsed.values.cast(TIMESTAMP), parsed.bad
    us = values.cast(pa.int64()).fill_null(_MIN_US).to_numpy()
    values, bad = _reject(values, bad, (us < _MIN_US) | (us > _MAX_US))
    if bad is not None and not bad.any():
        bad = None
    return Converted(values, bad, reason)


@dataclass(frozen=True)
class ConvertedIps(Converted):
    """IP text plus its packed form, kept for the Community ID."""

    packed: np.ndarray | None = None
    version: np.ndarray | None = None


def ipv6_text(text: str) -> str:
    """IPv6 text in its canonical form (RFC 5952, a zone kept): "fe80:0:0:0:90E:17af:263c:5209"
    -> "fe80::90e:17af:263c:5209"; other text, or no address (`to_ip` calls it bad), as is."""
    try:
        return str(ipaddress.ip_address(text)) if ":" in text else text
    except ValueError:
        return text


def to_ip(array: pa.Array | pa.ChunkedArray) -> ConvertedIps:
    """IPv4/IPv6 address text (IPv6 as `ipv6_text`: one address, one spelling); "" and "-" are
    missing, anything else unparseable is bad."""
    text = _blank_to_null(to_string(array).values)
    packed, version = pack_ips(text)
    text = map_distinct(text, ipv6_text, pa.string()) if (version == 6).any() else text
    bad = version < 0
    if bad.any():
        text = pc.if_else(pa.array(bad), None, text)
    return ConvertedIps(text, bad if bad.any() else None, "is not an IP address", packed, version)


def _protocol_name(value: object) -> str | None:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a float column (pandas with NaN) holds 6.0 for tcp
    text = str(value).strip().lower()
    if text in NULL_TEXT:
        return None
    if text.isascii() and text.isdigit():  # not "²": isdigit accepts it, int refuses it
        return PROTOCOL_NAMES.get(int(text), text)
    return _PROTOCOL_ALIASES.get(text, text)


def to_protocol(array: pa.Array | pa.ChunkedArray) -> Converted:
    """Lower-case transport names; IANA numbers become names (6 -> tcp)."""
    array = plain(array)
    if pa.types.is_null(array.type):
        return Converted(pa.nulls(len(array), pa.string()))
    return Converted(map_distinct(array, _protocol_name, pa.string()))


def _direction(value: object) -> str | None:
    return _DIRECTIONS.get(str(value).strip().lower())


def to_direction(array: pa.Array | pa.ChunkedArray) -> Converted:
    """inbound / outbound / internal / external; unrecognised words become null."""
    array = plain(array)
    if pa.types.is_null(array.type):
        return Converted(pa.nulls(len(array), pa.string()))
    return Converted(map_distinct(array, _direction, pa.string()))


_LOCALITY = pa.array(["external", "inbound", "outbound", "internal", None])


def direction_from_locality(local_orig: pa.Array, local_resp: pa.Array) -> pa.Array:
    """Zeek's local_orig/local_resp pair as a direction (null when either is unknown)."""
    orig, resp = (to_bool(a).values for a in (local_orig, local_resp))
    known = pc.and_(pc.is_valid(orig), pc.is_valid(resp)).to_numpy(zero_copy_only=False)
    code = (2 * orig.fill_null(False).to_numpy(zero_copy_only=False).astype(np.int8)
            + resp.fill_null(False).to_numpy(zero_copy_only=False))
    return _LOCALITY.take(pa.array(np.where(known, code, 4)))


_BOOL_WORDS = {"t": True, "true": True, "1": True, "yes": True,
               "f": False, "false": False, "0": False, "no": False}


def _parse_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return _BOOL_WORDS[str(value).strip().lower()]


def to_bool(array: pa.Array | pa.ChunkedArray) -> Converted:
    """Booleans from bool, 0/1 or T/F/true/false/yes/no text."""
    array = plain(array)
    if pa.types.is_boolean(array.type):
        return Converted(array)
    if pa.types.is_null(array.type):
        return Converted(pa.nulls(len(array), pa.bool_()))
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        array = _blank_to_null(array)

    def parse(value: object) -> bool:
        try:
            return _parse_bool(value)
        except KeyError:
            raise ValueError(value) from None

    converted = _per_value(array, parse, pa.bool_(), "is not a boolean (T/F, true/false, 0/1)")
    return Converted(converted.values, converted.bad if converted.bad.any() else None,
                     converted.reason)


def _severity(value: object) -> float:
    text = str(value).strip().lower()
    if text in _SEVERITY_WORDS:
        return _SEVERITY_WORDS[text]
    return _scale_severity(float(text))


def _scale_severity(number: float) -> float:
    if not math.isfinite(number) or number < 0:
        raise ValueError(number)
    for ceiling in (1.0, 10.0, 100.0):
        if number <= ceiling:
            return number / ceiling
    raise ValueError(number)


def to_severity(array: pa.Array | pa.ChunkedArray) -> Converted:
    """Severity in [0, 1]: numbers up to 1 as they are, up to 10 or 100 scaled down; words
    informational/low/medium/high/critical map to 0/.25/.5/.75/1."""
    array = plain(array)
    if pa.types.is_null(array.type):
        return Converted(pa.nulls(len(array), pa.float32()))
    text = _blank_to_null(to_string(array).values)
    parsed = _per_value(text, _severity, pa.float64(), "is not a severity (0-1, 0-10, 0-100 or a word)")
    return Converted(parsed.values.cast(pa.float32()), parsed.bad if parsed.bad.any() else None,
                     parsed.reason)
