"""Where the records of a quoted CSV dialect begin and end, when a field may hold line breaks.

RFC 4180 lets a quoted field hold line breaks (a SIEM's export of a Windows event Message): its
lines are one record, numbered by its first line. A quote opens a quoted field only at a
field's start (the line's start, or right after the delimiter), as Python's csv module and
pyarrow read it; anywhere else (`he said 5" tall`) it is text. So only a line with an odd
number of quotes, one of them at a field start, may open a record that goes on; a line whose
quotes are all inside unquoted fields, or whose last quoted field closes on it
(`"Smith, John",27" screen`), is a record on its own at once, never waiting for more data.

A record that goes on is read field by field (`_record`): a quoted field runs, line breaks
and all, to a quote that is not doubled and must be followed by the delimiter or the line's
end; an unquoted field runs to the delimiter, quotes and all. The record ends at the first
line break outside a quoted field, within `MAX_RECORD_LINES` lines and `MAX_LINE_BYTES` bytes.
A quote that does not close so is a stray one: its line is a record on its own (a `malformed
CSV` reject) and the lines after it are records again. At the end of the data that is not
final (a live file), a quote still open there waits for the data to come.

A line with an even number of quotes is taken as a record on its own, so one holding both a
stray quote and a quote that opens a field (`a,5" x,"open`) is read alone and its quote is
rejected as unclosed: telling it apart would cost a look at every quote of every block.

Cost: a block whose lines all have an even number of quotes (every field quoted, or none)
costs one pass over its bytes; lines whose odd quote is text cost no regex.
"""

from __future__ import annotations

import csv
import functools
import re

import numpy as np

from training.sources.files import MAX_LINE_BYTES, LineIndex, line_bounds

MAX_RECORD_LINES = 1_000  # a quoted field open longer than this is a stray quote, not a record

# Every byte but the quote and the line break: deleting them leaves the quotes of each line
# between its line breaks, about a tenth of the bytes (a 16 MiB block: ~12 ms, against ~22 ms
# for numpy's compare, nonzero and reduceat over the block).
_OTHER_BYTES = bytes(b for b in range(256) if b not in b'"\n')


def quoted_records(data: bytes, delimiter: str, final: bool) -> tuple[np.ndarray, int, int]:
    """The records of a quoted dialect that span lines, in `data` (which starts a record).

    Args:
        data: the bytes.
        delimiter: the field separator (one character).
        final: no more data follows (a block, or the end of the file); else a record still
            open at the end waits for more data, and a last line without its line break is
            not looked at.

    Returns:
        (first, last) 0-based lines of each record that spans lines (an (n, 2) array); the
        byte offset where the whole records end (where a block can be cut); and how many
        lines are read on their own though a quote that opens a field is open at their end.
    """
    none = np.empty((0, 2), dtype=np.int64)
    end = len(data) if final else data.rfind(b"\n") + 1
    marks = np.frombuffer(data.translate(None, _OTHER_BYTES), dtype=np.uint8)  # '"' and '\n'
    is_break = marks == 10
    at_break = np.flatnonzero(is_break)
    # Quotes in each line: between its line break and the one before (the last line of
    # final data may have none).
    counts = np.diff(at_break, prepend=-1) - 1
    if final and not data.endswith(b"\n") and data:
        counts = np.append(counts, len(marks) - 1 - (at_break[-1] if len(at_break) else -1))
    odd = counts & 1 == 1
    if not odd.any():
        return none, end, 0
    # Lines that may open a record: an odd number of quotes, one of them at a field start.
    buf = np.frombuffer(data, dtype=np.uint8)
    quotes = np.flatnonzero(buf == 34)
    # The line of each quote (those of a last line not looked at: one past the lines).
    line_of = np.repeat(np.arange(len(counts) + 1), np.append(counts, len(quotes) - counts.sum()))
    mine = np.zeros(len(counts) + 1, dtype=bool)
    mine[:len(counts)] = odd
    sep = delimiter.encode()
    firsts = np.flatnonzero(mine[line_of])
    at = quotes[firsts]
    firsts = firsts[_is_in(buf[at - 1], sep[-1], 10) | (at == 0)]  # at a field start
    if not len(firsts):
        return none, end, 0
    # A line is a record on its own if the last quote at a field start has text after it and
    # the next quote ends that field (`"Smith, John",27" screen`): no regex for it below.
    last = firsts[np.append(line_of[firsts][1:] != line_of[firsts][:-1], True)]
    after = np.minimum(last + 1, len(quotes) - 1)
    ends = quotes[after] + 1
    alone = ((line_of[after] == line_of[last]) & (ends > quotes[last] + 2)
             & (_is_in(buf[np.minimum(ends, len(buf) - 1)], sep[0], 10, 13) | (ends == len(buf))))
    openers = line_of[last[~alone]]
    if not len(openers):
        return none, end, 0
    starts, line_ends = _lines(buf, final)
    n = len(line_ends)
    odd_lines = np.flatnonzero(odd)
    found = []
    pos = 0  # lines before this one are in the records found
    if len(odd_lines) > 1 and _quotes_well_placed(buf, quotes, delimiter):
        # Every quote where RFC 4180 puts one (the usual export): each pair of lines with an
        # odd number of quotes is a record, checked all at once instead of one by one below.
        pairs = odd_lines[:len(odd_lines) // 2 * 2].reshape(-1, 2)
        if ((pairs[:, 1] - pairs[:, 0] < MAX_RECORD_LINES).all()
                and (line_ends[pairs[:, 1]] - starts[pairs[:, 0]] <= MAX_LINE_BYTES).all()):
            found, pos = [pairs], int(pairs[-1, 1]) + 1 if len(pairs) else 0
    # Python ints from here: the loop runs once per record that spans lines (or stray quote).
    record = _record(delimiter)
    loose = 0
    for opened in openers[openers >= pos].tolist():
        if opened < pos:
            continue  # inside the record read last
        start = int(starts[opened])
        stop = min(int(line_ends[min(opened + MAX_RECORD_LINES, n) - 1]), start + MAX_LINE_BYTES)
        stop_at = record.match(data, start, stop).end()
        if stop_at == len(data) or buf[stop_at] == 10:  # the record ends at that line's end
            closed = int(np.searchsorted(line_ends, stop_at))
            if closed > opened:
                found.append(np.array([[opened, closed]], dtype=np.int64))
            pos = closed + 1
            continue
        # A quote open up to `stop` (the end of the data, or of what a record may span) may
        # close in the data to come; one that closes before it, text following, never will.
        if (not final and n - opened < MAX_RECORD_LINES and len(data) - start <= MAX_LINE_BYTES
                and not (buf[stop_at] == 34 and _QUOTED.match(data, stop_at, stop))):
            end = start  # the record may close in the data to come
            break
        loose += 1  # the line is a record on its own; the lines after it are records again
        pos = opened + 1
    return (np.concatenate(found) if found else none), end, loose


def _byte(buf: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The bytes at `at` (sorted); a line break before and after `buf`, as if padded."""
    out = buf.take(at, mode="clip")
    if len(at) and at[0] < 0:
        out[at < 0] = 10
    if len(at) and at[-1] >= len(buf):
        out[at >= len(buf)] = 10
    return out


def _is_in(values: np.ndarray, *choices: int) -> np.ndarray:
    hit = values == choices[0]
    for choice in choices[1:]:
        hit |= values == choice
    return hit


def _lines(buf: np.ndarray, final: bool) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (the line break's offset, or the data's end) of every line looked at."""
    breaks = np.flatnonzero(buf == 10)
    ends = breaks if not final or not len(buf) or buf[-1] == 10 else np.append(breaks, len(buf))
    return np.concatenate([[0], breaks + 1])[:len(ends)], ends


def _quotes_well_placed(buf: np.ndarray, quotes: np.ndarray, delimiter: str) -> bool:
    """Whether every quote of `buf` (at `quotes`) is where RFC 4180 puts one, counting from its
    start: around a whole field, or doubled inside it."""
    sep = delimiter.encode()
    doubled = np.zeros(len(quotes) + 1, dtype=bool)  # quote k is right after quote k - 1
    doubled[1:-1] = quotes[1:] == quotes[:-1] + 1
    before, after = _byte(buf, quotes - 1), _byte(buf, quotes + 1)
    field_start = (before == sep[-1]) | (before == 10) | doubled[:-1]
    field_end = ((after == sep[0]) | (after == 10) | doubled[1:]
                 | ((after == 13) & (_byte(buf, quotes + 2) == 10)))
    return bool(field_start[0::2].all() and field_end[1::2].all())


_QUOTED = re.compile(b'"[^"]*+(?:""[^"]*+)*+"')  # a quoted field, line breaks and all


@functools.lru_cache(maxsize=8)
def _record(delimiter: str) -> re.Pattern[bytes]:
    """One record: `match` ends at the line break that ends it, or at the quote of a field
    that does not close as RFC 4180 closes one (before the end of the text searched, or before
    a delimiter or line break). A field starting with a quote is quoted up to a quote that is
    not doubled, line breaks and all; any other field is text up to the delimiter, quotes and
    all, as Python's csv module reads it. Atomic and possessive: a quoted field that does not
    close is never read again as a shorter one."""
    d = re.escape(delimiter.encode())
    quoted = _QUOTED.pattern + rb"(?:\r?(?=\n|\Z)|(?=" + d + b"))"
    text = rb'[^"\n' + d + rb'][^\n' + d + rb']*+'
    field = b"(?>" + quoted + b"|" + text + b"|)"
    return re.compile(field + b"(?:" + d + field + b")*+")


def open_at_end(data: bytes, delimiter: str) -> bool:
    """Whether the last line of `data` leaves a quoted field open (pyarrow takes the line
    break that ends the file as part of it)."""
    line = data[data.rfind(b"\n", 0, len(data) - 1) + 1:]
    if b'"' not in line:
        return False
    try:
        list(csv.reader([line.decode("utf-8", errors="surrogateescape").rstrip("\r\n")],
                        delimiter=delimiter, strict=True))
    except csv.Error as exc:
        return str(exc) == "unexpected end of data"
    return False


def record_index(data: bytes, spanning: np.ndarray) -> tuple[LineIndex, np.ndarray]:
    """Bounds of every record of `data` (a line, or the lines of a record that spans lines,
    `spanning` holding the first and last line of those) and the line each starts on."""
    starts, ends = line_bounds(data)
    last = np.arange(len(starts))
    last[spanning[:, 0]] = spanning[:, 1]
    # Lines inside a record: after its first line, through its last (records do not overlap).
    depth = np.zeros(len(starts) + 1, dtype=np.int64)
    np.add.at(depth, spanning[:, 0] + 1, 1)
    np.add.at(depth, spanning[:, 1] + 1, -1)
    first = np.flatnonzero(np.cumsum(depth[:-1]) == 0)
    return LineIndex(data, (starts[first], ends[last[first]])), first
