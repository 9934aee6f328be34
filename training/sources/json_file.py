"""JSON files: JSON Lines, a top-level array of objects, or the `{"metadata", "events"}` wrapper.

JSON Lines are streamed block by block (any size, bad lines quarantined). A document (array or
wrapper) has to be parsed whole, so it is bounded by `max_document_bytes` (default 1 GiB):
past that, convert it to JSON Lines (`jq -c '.[]' big.json > big.jsonl`). A document that is not
valid JSON is refused with the line and column of the fault.

Format detection: .jsonl/.ndjson files are JSON Lines. Otherwise a file whose first non-blank
byte is "[" is an array; a single-line file holding an object with an "events" list is the
wrapper; a file whose first line is not JSON by itself is a multi-line document unless its second
line is a complete record (JSON Lines with a damaged first line); anything else is JSON Lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import orjson

from training.errors import SourceError
from training.sources.base import FileSource, RawBatch, Reject
from training.sources.files import ByteStream
from training.sources.jsonparse import (
    MAX_NESTING, nested_deeper, parse_jsonl_block, records_to_table,
)
from training.sources.lines import read_lines

DOCUMENT_BATCH = 65_536
_SNIFF = 1 << 16
_MAX_SNIFF = 1 << 26


def _parses(line: bytes) -> object:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return _INVALID


_INVALID = object()


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


def is_json_document(source: ByteStream) -> bool:
    """True for an array or wrapper document, False for JSON Lines (see module docstring)."""
    if source.name.lower().endswith((".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")):
        return False
    size = _SNIFF
    head = source.peek(size)
    while head.lstrip().count(b"\n") < 2 and len(head) == size and size < _MAX_SNIFF:
        size *= 2
        head = source.peek(size)
    text = head.lstrip()
    if text.startswith(b"["):
        return True
    lines = [line for line in text.split(b"\n", 2)[:2] if line.strip()]
    if not lines:
        return False
    first = _parses(lines[0])
    if first is not _INVALID:
        # One object on one line: a wrapper if it holds the events and nothing follows it.
        return (len(lines) == 1 and isinstance(first, dict)
                and isinstance(first.get("events"), list))
    # A first line that is not JSON by itself: a multi-line document, unless the next line is
    # a complete record (then it is JSON Lines whose first line is damaged).
    return len(lines) < 2 or _parses(lines[1]) is _INVALID


def read_document(source: ByteStream, start: dict, max_bytes: int,
                  **batch_fields: object) -> Iterator[RawBatch]:
    """Yield the records of a JSON array or wrapper document, from record `start["record"]` on."""
    path = source.name
    data = source.read(max_bytes + 1)
    truncated = source.truncated
    if len(data) > max_bytes:
        raise SourceError(
            f"{path}: JSON document larger than max_document_bytes={max_bytes}; convert it to "
            "JSON Lines (jq -c '.[]') to stream it, or raise the limit"
        )
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        cut = " (the gzip stream is truncated)" if truncated else ""
        raise SourceError(f"{path}: invalid JSON document at line {exc.lineno}, column "
                          f"{exc.colno}: {exc.msg}{cut}") from None
    if isinstance(document, dict) and isinstance(document.get("events"), list):
        items = document["events"]
    elif isinstance(document, list):
        items = document
    else:
        raise SourceError(f"{path}: expected a JSON array of events or an object with an "
                          f"'events' list, found {type(document).__name__}")
    total = len(items)
    for first in range(start["record"], total, DOCUMENT_BATCH):
        chunk = items[first:first + DOCUMENT_BATCH]
        faults = [_fault(item) for item in chunk]
        good = [i for i, fault in enumerate(faults) if fault is None]
        rejects = [Reject(path, None, first + i, None, f"event {first + i} {fault}", _shown(item))
                   for i, (item, fault) in enumerate(zip(chunk, faults)) if fault is not None]
        records = first + np.array(good, dtype=np.int64)
        objects = [chunk[i] for i in good]
        # Each event's canonical JSON (sorted keys) stands in for its raw bytes.
        texts = [orjson.dumps(o, option=orjson.OPT_SORT_KEYS) for o in objects]
        ends = np.cumsum([len(t) for t in texts], dtype=np.int64)
        spans = (b"".join(texts), ends - np.array([len(t) for t in texts], dtype=np.int64), ends)
        end = first + len(chunk)
        yield RawBatch(
            table=records_to_table(objects),
            stream=path,
            lines=np.full(len(good), -1, dtype=np.int64),  # a document has no line per event
            records=records,
            start={"offset": 0, "line": 1, "record": first},
            end={"offset": 0, "line": 1, "record": end},
            rejects=rejects,
            spans=lambda spans=spans: spans,
            **batch_fields,
        )


class JsonFileSource(FileSource):
    """JSON Lines, JSON arrays and the demo's {"metadata", "events"} wrapper; plain or gzip."""

    params: ClassVar[dict[str, object]] = {**FileSource.params, "max_document_bytes": 1 << 30}
    patterns: ClassVar[tuple[str, ...]] = ("*.json", "*.json.gz", "*.jsonl", "*.jsonl.gz",
                                            "*.ndjson", "*.ndjson.gz")

    def read(self, stream: str, start: dict) -> Iterator[RawBatch]:
        with self.open(stream) as source:
            yield from self.read_json(source, start)

    def read_json(self, source: ByteStream, start: dict, lines_only: bool = False,
                  **batch_fields: object) -> Iterator[RawBatch]:
        """Read either flavour of JSON; subclasses (Zeek, Suricata, Windows) reuse it.

        `lines_only` skips format detection for formats that are always JSON Lines (Zeek,
        Suricata EVE), so damaged first lines are quarantined instead of making the file look
        like one broken document.
        """
        if not lines_only and is_json_document(source):
            limit = min(self.options["max_decompressed_bytes"], self.options["max_document_bytes"])
            yield from read_document(source, start, limit, **batch_fields)
        else:
            yield from read_lines(source, start, parse_jsonl_block, self.options["block_size"],
                                  **batch_fields)
