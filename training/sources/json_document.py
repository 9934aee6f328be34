"""JSON documents read as a stream: a top-level array of events, `{"metadata", "events": [...]}`,
or an Elasticsearch `_search` response, whose events are its hits (`{"hits": {"hits": [...]}}`).

The array is never held whole. Blocks of the file are cut at the commas between its elements
(found by a vectorized scan that tracks strings and nesting), and each run of whole elements is
parsed on its own, so memory stays a few blocks whatever the file's size (a 200 MB array took
2.3 GB when parsed whole). Each batch's position is the byte offset of an element boundary, so a
resumed read seeks there. What lies outside the array (the wrapper's other keys) is bounded by
`max_bytes` (`max_document_bytes`) and checked when the array ends: the document must be
valid JSON as a whole. A document that is not an array or a wrapper (found in the first
`max_bytes`) is parsed whole, as before, within the same limit.

A fault (invalid JSON, a file that ends inside the array) stops the read with its line and
column in the file; elements before it have been delivered. An element that is valid JSON but
not an event (not an object, nested too deep) is quarantined on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import orjson

from training.errors import SourceError
from training.sources.base import RawBatch, Reject
from training.sources.files import ByteStream
from training.sources.jsonparse import MAX_NESTING, nested_deeper, records_to_table

DOCUMENT_BATCH = 65_536  # elements per batch at most
MAX_ELEMENT_BYTES = 64 << 20  # one element longer than this is refused, bounding memory
_WHITESPACE = b" \t\r\n"
_EVENTS_KEY = b'"events"'
_HITS_KEY = b'"hits"'


@dataclass
class _Cursor:
    """Where the next unread byte of the array's body is in the file (1-based line/column)."""

    offset: int
    line: int
    column: int
    record: int

    def advance(self, consumed: bytes, elements: int) -> None:
        newline = consumed.rfind(b"\n")
        if newline >= 0:
            self.line += consumed.count(b"\n")
            self.column = 1 + _chars(consumed[newline + 1:])
        else:
            self.column += _chars(consumed)
        self.offset += len(consumed)
        self.record += elements

    def position(self) -> dict:
        return {"offset": self.offset, "line": self.line, "column": self.column,
                "record": self.record}


def read_document(source: ByteStream, start: dict, block_size: int, max_bytes: int,
                  **batch_fields: object) -> Iterator[RawBatch]:
    """Yield the events of a JSON array, wrapper or search response from position `start` on."""
    head, body_at = _find_array(source, max_bytes)
    if body_at is None:  # neither an array nor a wrapper: parse it whole
        yield from _read_whole(source, head, start, max_bytes, **batch_fields)
        return
    prefix = head[:body_at]
    if len(prefix) > max_bytes:
        raise SourceError(f"{source.name}: the JSON document's part before its events array is "
                          f"larger than max_document_bytes={max_bytes}; raise the limit or move "
                          "the events first")
    cursor = _Cursor(body_at, prefix.count(b"\n") + 1,
                     1 + _chars(prefix[prefix.rfind(b"\n") + 1:]), 0)
    unread, skip = head[body_at:], 0  # read while looking for the array: consumed first
    if start["offset"] > body_at:  # resumed inside the array, at an element boundary
        cursor = _Cursor(start["offset"], start["line"], start.get("column", 1), start["record"])
        unread = head[start["offset"]:]
        if start["offset"] > len(head):
            source.skip_to(start["offset"])
    else:
        skip = start["record"]  # a checkpoint that counted records only
    carry = b""
    while True:
        # An element longer than a block: read as much again, so it is scanned O(log) times.
        want = max(block_size, len(carry))
        if unread:
            data, unread = unread[:want], unread[want:]
        else:
            data = source.read(want)
        buffer = carry + data if carry else data
        close, commas = _scan(buffer)
        if close is None and not len(commas):
            if not data:
                _fail(source, b"[" + buffer, cursor, "")  # the file ends inside the array
            if len(buffer) > MAX_ELEMENT_BYTES:
                raise SourceError(f"{source.name}: element {cursor.record} of the JSON array is "
                                  f"longer than {MAX_ELEMENT_BYTES} bytes")
            carry = buffer
            continue
        end = close if close is not None else int(commas[-1])
        cuts = [int(c) for c in commas[DOCUMENT_BATCH - 1::DOCUMENT_BATCH] if c < end]
        begin = 0
        for cut in [*cuts, end]:
            segment = buffer[begin:cut]
            # Only an empty array has nothing between its brackets: "[1,]" and "[,1]" do not.
            empty_allowed = cursor.offset == body_at and cut == close
            items = _parse(source, segment, cursor, empty_allowed)
            before = cursor.position()
            cursor.advance(buffer[begin:cut + (cut != close)], len(items))
            drop = min(skip, len(items))
            skip -= drop
            if len(items) > drop:
                yield _batch(source.name, items[drop:], before["record"] + drop, before,
                             cursor.position(), batch_fields)
            begin = cut + 1
        if close is not None:
            _check_outside(source, prefix, buffer[close:] + unread, max_bytes, cursor)
            return
        carry = buffer[end + 1:]


def _parse(source: ByteStream, segment: bytes, cursor: _Cursor, empty_allowed: bool) -> list:
    """The elements of a run of whole array elements starting at `cursor`."""
    if not segment.strip(_WHITESPACE):
        if empty_allowed:
            return []
        _fail(source, b"[" + segment + b"]", cursor, "")
    try:
        return orjson.loads(b"[" + segment + b"]")
    except orjson.JSONDecodeError:
        _fail(source, b"[" + segment + b"]", cursor, "")
    raise AssertionError("unreachable")


def _fail(source: ByteStream, text: bytes, cursor: _Cursor, note: str) -> None:
    """Raise the parse error of `text` ("[" + bytes starting at `cursor`) at its place in the
    file; text that parses (a value missing between two commas) is reported where it ends."""
    try:
        orjson.loads(text)
        message = "unexpected character, expected a JSON value"
        probe = _Cursor(cursor.offset, cursor.line, cursor.column, 0)
        probe.advance(text[1:-1], 0)
        line, column = probe.line, probe.column
    except orjson.JSONDecodeError as exc:
        message = exc.msg
        if exc.lineno == 1:  # the "[" added in front takes column 1
            line, column = cursor.line, cursor.column + exc.colno - 2
        else:
            line, column = cursor.line + exc.lineno - 1, exc.colno
    cut = " (the gzip stream is truncated)" if source.truncated else note
    raise SourceError(f"{source.name}: invalid JSON document at line {line}, column {column}: "
                      f"{message}{cut}")


def _chars(data: bytes) -> int:
    """Characters in UTF-8 bytes (every byte but continuation bytes starts one)."""
    return len(data) - int(np.count_nonzero((np.frombuffer(data, np.uint8) & 0xC0) == 0x80))


def _real_quotes(a: np.ndarray) -> np.ndarray:
    """Positions of the double quotes that delimit strings (not escaped by a backslash run of
    odd length)."""
    quotes = np.flatnonzero(a == 34)
    slashes = np.flatnonzero(a == 92)
    if not len(slashes) or not len(quotes):
        return quotes
    starts = np.ones(len(slashes), dtype=bool)
    starts[1:] = slashes[1:] != slashes[:-1] + 1
    run_start = slashes[np.maximum.accumulate(np.where(starts, np.arange(len(slashes)), 0))]
    at = np.minimum(np.searchsorted(slashes, quotes - 1), len(slashes) - 1)
    escaped = (slashes[at] == quotes - 1) & ((quotes - run_start[at]) % 2 == 1)
    return quotes[~escaped]


def _marks(buffer: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Brackets, braces and commas outside strings: positions, bytes, and the nesting depth
    after each (relative to the start of `buffer`, which must be outside any string)."""
    a = np.frombuffer(buffer, np.uint8)
    marks = np.flatnonzero((a == 44) | (a == 91) | (a == 93) | (a == 123) | (a == 125))
    marks = marks[np.searchsorted(_real_quotes(a), marks, side="right") % 2 == 0]
    kind = a[marks]
    step = np.where((kind == 91) | (kind == 123), 1, np.where(kind == 44, 0, -1))
    return marks, kind, np.cumsum(step)


def _scan(buffer: bytes) -> tuple[int | None, np.ndarray]:
    """In a buffer starting at an element boundary of the array: the position of the bracket
    that closes the array (None if not in the buffer), and of the commas between elements."""
    marks, kind, depth = _marks(buffer)
    below = np.flatnonzero(depth < 0)
    close = int(marks[below[0]]) if len(below) else None
    commas = marks[(kind == 44) & (depth == 0)]
    return close, commas if close is None else commas[commas < close]


def _find_array(source: ByteStream, max_bytes: int) -> tuple[bytes, int | None]:
    """Read the document's start: (bytes read, where the events array's body begins in them),
    or (bytes read, None) when the document is neither an array nor a wrapper."""
    head, size = b"", 1 << 16
    while True:
        more = source.read(size - len(head))
        head += more
        found = _array_body(head)
        if found != -1:
            return head, found
        if not more:
            return head, None
        if len(head) > max_bytes:
            raise SourceError(f"{source.name}: the JSON document's part before its events array "
                              f"is larger than max_document_bytes={max_bytes}; raise the limit "
                              "or move the events first")
        size *= 2


def _array_body(head: bytes) -> int | None:
    """Where the events array's body begins in `head`; None if the document has none (not an
    array, an object with an "events" array or a `_search` response's {"hits": {"hits": [...]}});
    -1 if `head` is too short to tell."""
    text = head.lstrip(_WHITESPACE)
    if not text:
        return -1
    first = len(head) - len(text)
    if text[:1] == b"[":
        return first + 1
    if text[:1] != b"{":
        return None
    marks, _, depth = _marks(text)
    quotes = _real_quotes(np.frombuffer(text, np.uint8))
    found = _key_value(text, _EVENTS_KEY, 1, marks, depth, quotes, 0, len(text))
    if found is None:
        found = _key_value(text, _HITS_KEY, 1, marks, depth, quotes, 0, len(text))
        if found is not None and found != -1:
            if text[found:found + 1] != b"{":
                return None
            # The array is the hits object's own "hits" key, before that object closes.
            opened = int(np.searchsorted(marks, found))
            closing = np.flatnonzero(depth[opened:] < 2)
            end = int(marks[opened + closing[0]]) if len(closing) else len(text)
            found = _key_value(text, _HITS_KEY, 2, marks, depth, quotes, found + 1, end)
            if found is None and not len(closing):
                found = -1
    if found == -1:
        return -1
    if found is not None:
        return first + found + 1 if text[found:found + 1] == b"[" else None
    closed = np.flatnonzero(depth == 0)
    return None if len(closed) else -1


def _key_value(text: bytes, key: bytes, level: int, marks: np.ndarray, depth: np.ndarray,
               quotes: np.ndarray, begin: int, end: int) -> int | None:
    """Where the value of `key` (a quoted key of an object at nesting `level`, found in
    text[begin:end]) starts in `text`; None if it is not there, -1 if `text` ends before it."""
    at = text.find(key, begin, end)
    while at >= 0:
        k = np.searchsorted(quotes, at)
        is_key = k < len(quotes) and quotes[k] == at and k % 2 == 0
        m = np.searchsorted(marks, at)
        if is_key and (depth[m - 1] if m else 0) == level:
            rest = text[at + len(key):].lstrip(_WHITESPACE)
            if rest[:1] == b":":
                value = rest[1:].lstrip(_WHITESPACE)
                return len(text) - len(value) if value else -1
            if not rest:
                return -1
        at = text.find(key, at + 1, end)
    return None


def document_events(document: object) -> list | None:
    """The events list of a parsed document: the array itself, the wrapper's "events", or a
    `_search` response's hits (`training.sources.es_hits` makes them events); None if none."""
    if isinstance(document, list):
        return document
    if not isinstance(document, dict):
        return None
    if isinstance(document.get("events"), list):
        return document["events"]
    hits = document.get("hits")
    if isinstance(hits, dict) and isinstance(hits.get("hits"), list):
        return hits["hits"]
    return None


def _check_outside(source: ByteStream, prefix: bytes, tail: bytes, max_bytes: int,
                   at_close: _Cursor) -> None:
    """The document around the array (its start, and from the closing bracket, at `at_close`,
    on) must be valid JSON; it is read within `max_bytes`."""
    rest = tail + source.read(max(0, max_bytes + 1 - len(prefix) - len(tail)))
    if len(prefix) + len(rest) > max_bytes:
        raise SourceError(f"{source.name}: the JSON document's part after its events array is "
                          f"larger than max_document_bytes={max_bytes}")
    try:
        orjson.loads(prefix + rest)  # rest starts with the array's closing bracket
    except orjson.JSONDecodeError as exc:
        line, column = exc.lineno, exc.colno
        into_rest = exc.pos - _chars(prefix)
        if into_rest >= 0:  # after the array: counted from its closing bracket
            where = _Cursor(at_close.offset, at_close.line, at_close.column, 0)
            where.advance(rest.decode("utf-8", "replace")[:into_rest].encode(), 0)
            line, column = where.line, where.column
        cut = " (the gzip stream is truncated)" if source.truncated else ""
        raise SourceError(f"{source.name}: invalid JSON document at line {line}, column "
                          f"{column}: {exc.msg}{cut}") from None


def _fault(item: object) -> str | None:
    """Why a document element is not an event, or None."""
    if not (isinstance(item, dict) and item):
        return "is not a non-empty JSON object"
    if nested_deeper(item):
        return f"is nested deeper than {MAX_NESTING} levels"
    return None


def _shown(item: object) -> str:
    """A rejected element as JSON text (orjson stops at 255 levels; those show as a stub)."""
    try:
        return orjson.dumps(item).decode()
    except TypeError:
        return f"<{type(item).__name__} nested deeper than {MAX_NESTING} levels>"


def _batch(path: str, items: list, first: int, start: dict, end: dict,
           batch_fields: dict) -> RawBatch:
    """A batch of elements `first`, `first + 1`, ..., read between positions `start` and `end`."""
    faults = [_fault(item) for item in items]
    good = [i for i, fault in enumerate(faults) if fault is None]
    rejects = [Reject(path, None, first + i, None, f"event {first + i} {fault}", _shown(item))
               for i, (item, fault) in enumerate(zip(items, faults)) if fault is not None]
    objects = [items[i] for i in good]
    # Each event's canonical JSON (sorted keys) stands in for its raw bytes.
    texts = [orjson.dumps(o, option=orjson.OPT_SORT_KEYS) for o in objects]
    ends = np.cumsum([len(t) for t in texts], dtype=np.int64)
    spans = (b"".join(texts), ends - np.array([len(t) for t in texts], dtype=np.int64), ends)
    return RawBatch(
        table=records_to_table(objects),
        stream=path,
        lines=np.full(len(good), -1, dtype=np.int64),  # a document has no line per event
        records=first + np.array(good, dtype=np.int64),
        start=start,
        end=end,
        rejects=rejects,
        spans=lambda spans=spans: spans,
        **batch_fields,
    )


def _read_whole(source: ByteStream, head: bytes, start: dict, max_bytes: int,
                **batch_fields: object) -> Iterator[RawBatch]:
    """A document whose events array the scan did not find (not an array or a wrapper, or a
    wrapper whose key is written with escapes): parsed whole, within `max_bytes`."""
    data = head + source.read(max(0, max_bytes + 1 - len(head)))
    if len(data) > max_bytes:
        raise SourceError(f"{source.name}: JSON document larger than max_document_bytes="
                          f"{max_bytes}; convert it to JSON Lines (jq -c '.[]') or raise the limit")
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        cut = " (the gzip stream is truncated)" if source.truncated else ""
        raise SourceError(f"{source.name}: invalid JSON document at line {exc.lineno}, column "
                          f"{exc.colno}: {exc.msg}{cut}") from None
    items = document_events(document)
    if items is None:
        raise SourceError(f"{source.name}: expected a JSON array of events, an object with an "
                          "'events' list or an Elasticsearch _search response (hits.hits), "
                          f"found {type(document).__name__}")
    for first in range(start["record"], len(items), DOCUMENT_BATCH):
        chunk = items[first:first + DOCUMENT_BATCH]
        yield _batch(source.name, chunk, first, {"offset": 0, "line": 1, "record": first},
                     {"offset": 0, "line": 1, "record": first + len(chunk)}, batch_fields)
