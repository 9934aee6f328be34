"""The read loop shared by line-oriented formats (JSON Lines, CSV, Zeek TSV).

It takes the open file (gunzipped if needed), seeks to the resume position, cuts the stream
into blocks of whole lines, hands each block to the format's parser and wraps the result in a
`RawBatch` with exact start and end positions. The incomplete last line of a truncated gzip
stream becomes a reject rather than a parse error.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator

from training.sources.base import Parsed, RawBatch, Reject
from training.sources.delimited import decode
from training.sources.files import Block, ByteStream, iter_blocks

BlockParser = Callable[[Block, str, int], Parsed]

logger = logging.getLogger(__name__)

# A position records the digest of the file's first bytes (fewer while the file is shorter), so
# that a resume knows the file it took the position in: a rotated log's successor under the
# same name (Zeek's new conn.log) differs from it there (its #open line, its first records).
# They run HEAD_BYTES past the header: a CSV header of 5 KB held all of the first 4 KiB, so a
# successor with the same header read as the same file (review).
HEAD_BYTES = 4096


def _head(source: ByteStream, size: int) -> dict[str, object]:
    """The identity a position records: the digest of the file's first `size` bytes."""
    data = source.peek(size)
    return {"head": hashlib.sha256(data).hexdigest()[:32], "head_len": len(data)}


def read_lines(source: ByteStream, start: dict, parse: Callable[[Block, str, int], Parsed],
               block_size: int, data_start: int = 0, data_line: int = 1,
               cut: Callable[[bytes], int] | None = None,
               **batch_fields: object) -> Iterator[RawBatch]:
    """Yield a `RawBatch` per block of the file `source`, from position `start` on.

    Args:
        source: the file, open at its start (what was peeked at is still unread).
        start: resume position ({"offset", "line", "record"}, and the "head" and "head_len"
            of the file it was taken in: another file under the name now, such as a rotated
            log's successor, is read from its start, with a warning, rather than from an
            offset into it that would skip its first records).
        parse: the format's block parser.
        block_size: bytes per block.
        data_start, data_line: where data begins (after a header), used when `start` is
            the beginning of the file.
        cut: where the whole records of a buffer end, for formats whose records may span
            lines (`iter_blocks`); None: at the last line break.
        batch_fields: extra `RawBatch` fields (event_type, id_columns).
    """
    offset, line, record = start["offset"], start["line"], start["record"]
    stream = source.name
    if offset > data_start and "head" in start and _head(source, start["head_len"]) != {
            "head": start["head"], "head_len": start["head_len"]}:
        logger.warning("%s: not the file the last run read to byte %s (its first %s bytes "
                       "differ): rotated or replaced since; reading it from its start (events "
                       "collected before are dropped as duplicates)", stream, f"{offset:,}",
                       f"{start['head_len']:,}")
        offset, line, record = data_start, data_line, 0
    if offset < data_start:
        offset, line = data_start, data_line
    identity = _head(source, data_start + HEAD_BYTES)
    source.skip_to(offset)
    for block in iter_blocks(source, block_size, line, cut):
        end_offset = block.end
        tail: Reject | None = None
        if block.truncated:
            block, tail = _cut_incomplete_tail(block, stream)
        parsed = parse(block, stream, record)
        rejects = parsed.rejects
        n_records = parsed.n_records
        if tail is not None:
            rejects = [*rejects, Reject(tail.file, tail.line, record + n_records, None,
                                        tail.reason, tail.raw)]
            n_records += 1
        end = {"offset": end_offset, "line": block.next_line, "record": record + n_records,
               **identity}
        yield RawBatch(
            table=parsed.table,
            stream=stream,
            lines=parsed.lines,
            records=parsed.records,
            start={"offset": block.offset, "line": block.line, "record": record, **identity},
            end=end,
            rejects=rejects,
            spans=parsed.spans,
            **batch_fields,
        )
        record = end["record"]


def _cut_incomplete_tail(block: Block, stream: str) -> tuple[Block, Reject]:
    """Split off what follows the last line break of a truncated gzip stream."""
    cut = block.data.rfind(b"\n") + 1
    partial = block.data[cut:]
    whole = Block(block.data[:cut], block.offset, block.line)
    reason = ("gzip stream truncated: the last line is incomplete" if partial
              else "gzip stream truncated after the last complete line")
    return whole, Reject(stream, whole.next_line, -1, None, reason, decode(partial))
