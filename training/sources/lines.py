"""The read loop shared by line-oriented formats (JSON Lines, CSV, Zeek TSV).

It takes the open file (gunzipped if needed), seeks to the resume position, cuts the stream
into blocks of whole lines, hands each block to the format's parser and wraps the result in a
`RawBatch` with exact start and end positions. The incomplete last line of a truncated gzip
stream becomes a reject rather than a parse error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from training.sources.base import Parsed, RawBatch, Reject
from training.sources.delimited import decode
from training.sources.files import Block, ByteStream, iter_blocks

BlockParser = Callable[[Block, str, int], Parsed]


def read_lines(source: ByteStream, start: dict, parse: Callable[[Block, str, int], Parsed],
               block_size: int, data_start: int = 0, data_line: int = 1,
               cut: Callable[[bytes], int] | None = None,
               **batch_fields: object) -> Iterator[RawBatch]:
    """Yield a `RawBatch` per block of the file `source`, from position `start` on.

    Args:
        source: the file, open at its start (what was peeked at is still unread).
        start: resume position ({"offset", "line", "record"}).
        parse: the format's block parser.
        block_size: bytes per block.
        data_start, data_line: where data begins (after a header), used when `start` is
            the beginning of the file.
        cut: where the whole records of a buffer end, for formats whose records may span
            lines (`iter_blocks`); None: at the last line break.
        batch_fields: extra `RawBatch` fields (event_type, id_columns).
    """
    offset, line, record = start["offset"], start["line"], start["record"]
    if offset < data_start:
        offset, line = data_start, data_line
    stream = source.name
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
        end = {"offset": end_offset, "line": block.next_line, "record": record + n_records}
        yield RawBatch(
            table=parsed.table,
            stream=stream,
            lines=parsed.lines,
            records=parsed.records,
            start={"offset": block.offset, "line": block.line, "record": record},
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
