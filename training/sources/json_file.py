"""JSON files: JSON Lines, a top-level array of objects, the `{"metadata", "events"}` wrapper, or
an Elasticsearch `_search` response.

Elasticsearch hits (elasticdump's `{"_index", "_id", "_source"}` lines, a response's
`hits.hits`) are read as their documents, with `_id` as the event id, the way the Elasticsearch
source reads the index (`training.sources.es_hits`). A file none of whose records (in its first
batch) has a field of the field map is refused, naming what it looks like (`sniff`).

JSON Lines are streamed block by block (any size, bad lines quarantined). A document's events
array is streamed too, a run of whole elements at a time (`training.sources.json_document`);
what lies outside it (the wrapper's metadata), and a document that is neither form, is bounded
by `max_document_bytes` (default 64 MiB). A document that is not valid JSON is refused with the
line and column of the fault in the file.

Format detection: .jsonl/.ndjson files are JSON Lines. Otherwise a file whose first non-blank
byte is "[" is an array; a single-line file holding an object with an "events" list (or
"hits": {"hits": [...]}) is the wrapper (or a search response); a file whose first line is not
JSON by itself is a multi-line document unless its second line is a complete record (JSON Lines
with a damaged first line); anything else is JSON Lines.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import ClassVar

import orjson

from training.errors import ConfigError
from training.sources.base import FileSource, RawBatch
from training.sources.es_hits import unwrap_hits
from training.sources.files import ByteStream
from training.sources.json_document import document_events, read_document
from training.sources.jsonparse import parse_jsonl_block
from training.sources.lines import read_lines
from training.sources.sniff import type_prefix

_SNIFF = 1 << 16
_MAX_SNIFF = 1 << 26


def _parses(line: bytes) -> object:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return _INVALID


_INVALID = object()


def is_json_document(source: ByteStream) -> bool:
    """True for an array or wrapper document, False for JSON Lines (see module docstring)."""
    if source.name.lower().endswith((".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")):
        return False
    size = _SNIFF
    head = source.peek(size)
    while head.lstrip().count(b"\n") < 2 and len(head) == size and size < _MAX_SNIFF:
        if head.lstrip().startswith(b"["):
            return True  # an array, however long its first line
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
        # One object on one line: a wrapper (or a search response) if it holds the events and
        # nothing follows it.
        return len(lines) == 1 and isinstance(first, dict) and document_events(first) is not None
    # A first line that is not JSON by itself: a multi-line document, unless the next line is
    # a complete record (then it is JSON Lines whose first line is damaged).
    return len(lines) < 2 or _parses(lines[1]) is _INVALID


class JsonFileSource(FileSource):
    """JSON Lines, JSON arrays, the demo's {"metadata", "events"} wrapper and Elasticsearch
    exports (elasticdump, a search response); plain or gzip."""

    params: ClassVar[dict[str, object]] = {**FileSource.params, "max_document_bytes": 64 << 20}
    patterns: ClassVar[tuple[str, ...]] = ("*.json", "*.json.gz", "*.jsonl", "*.jsonl.gz",
                                            "*.ndjson", "*.ndjson.gz")
    syntax: ClassVar[str | None] = "json"

    def read(self, stream: str, start: dict) -> Iterator[RawBatch]:
        with self.open(stream) as source:
            yield from self.read_json(source, start)

    def read_json(self, source: ByteStream, start: dict, lines_only: bool = False,
                  **batch_fields: object) -> Iterator[RawBatch]:
        """Read either flavour of JSON; subclasses (Zeek, Suricata, Windows) reuse it.

        `lines_only` skips format detection for formats that are always JSON Lines (Zeek,
        Suricata EVE), so damaged first lines are quarantined instead of making the file look
        like one broken document. A typed format refuses a file whose records carry none of
        its fields (`Source.check_format`).
        """
        _refuse_zeek_tsv(self, source)
        if not lines_only and is_json_document(source):
            limit = min(self.options["max_decompressed_bytes"], self.options["max_document_bytes"])
            batches = read_document(source, start, self.options["block_size"], limit,
                                    **batch_fields)
        else:
            batches = read_lines(source, start, parse_jsonl_block, self.options["block_size"],
                                 **batch_fields)
        yield from self.check_format(_documents(batches))


def _refuse_zeek_tsv(reader: JsonFileSource, source: ByteStream) -> None:
    """Refuse a Zeek TSV log (its `#separator` or `#fields` header first) given to a JSON
    reader, naming zeek: as its type: otherwise every line of it would be quarantined as
    malformed JSON (suricata:) or the file refused as an invalid JSON document (json:,
    windows:), without saying that it is a Zeek log."""
    first = source.peek(64).removeprefix(_UTF8_BOM).lstrip()
    if first.startswith((b"#separator", b"#fields")):
        given = type_prefix(reader.config.source_type)
        raise ConfigError(f"{source.name}: given as {given}:PATH, but it is a Zeek TSV log "
                          "(it starts with a #separator or #fields header line); this looks "
                          "like Zeek: use zeek:PATH")


_UTF8_BOM = b"\xef\xbb\xbf"


def _documents(batches: Iterator[RawBatch]) -> Iterator[RawBatch]:
    """`batches` with Elasticsearch hits (an elasticdump export, a search response's hits)
    turned into their documents, as the Elasticsearch source reads them (`es_hits`)."""
    for batch in batches:
        table = unwrap_hits(batch.table)
        yield batch if table is batch.table else dataclasses.replace(batch, table=table)
