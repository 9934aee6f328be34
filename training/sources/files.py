"""Input files as byte streams and line blocks (`paths` expands a source's path into files).

Inputs may be plain, gzip-compressed or a zip archive of one file (detected by magic bytes, not
by name; a zip of several files is refused with the way to unzip it). Decompression is bounded:
a file that inflates past `max_bytes` is refused, so a decompression bomb cannot exhaust memory
or disk. A gzip stream that ends early is not an error here: every complete
line before the cut is still delivered and the stream reports `truncated`, so the reader can
quarantine the incomplete tail and go on.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from training.artifacts.atomic import file_kind
from training.errors import ConfigError, SourceError

logger = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
Spans = tuple[bytes, "np.ndarray", "np.ndarray"]  # a buffer, and start/end of each record in it
DEFAULT_BLOCK_SIZE = 16 << 20
DEFAULT_MAX_DECOMPRESSED = 64 << 30
MAX_LINE_BYTES = 64 << 20  # a longer run without a line break is refused, bounding memory
_CHUNK = 1 << 20


class ByteStream:
    """A file's bytes, gunzipped on the fly when the file is gzip, or the one file of a zip.

    Args:
        path: the file.
        max_bytes: refuse to inflate a compressed file beyond this many bytes.

    Attributes:
        offset: bytes returned so far (in the decompressed stream).
        truncated: the gzip stream ended before its end-of-stream marker.
        growing: more bytes may follow its end (a live file read up to now): a record that
            spans lines and is unfinished there is left for the next read (`iter_blocks`).
    """

    def __init__(self, path: str | Path, max_bytes: int = DEFAULT_MAX_DECOMPRESSED) -> None:
        if max_bytes < 1:
            raise ConfigError(f"max_decompressed_bytes must be >= 1, got {max_bytes}")
        self.path = Path(path)
        self.name = str(path)  # as given: it keys checkpoints and names the file in errors
        self.max_bytes = max_bytes
        try:
            self._raw = open(self.path, "rb", opener=_regular_file)
        except FileNotFoundError:
            raise SourceError(f"{self.path}: " + (
                f"a symbolic link to {os.readlink(self.path)}, which does not exist; point it "
                "at the file or give the file itself" if self.path.is_symlink()
                else "no such file")) from None
        except _NotRegular as exc:  # a FIFO or device has no size or offsets to resume from
            raise SourceError(f"{self.path}: not a regular file (a {exc}); " + (
                "give a file, a folder or a glob of regular files" if str(exc) == "folder" else
                "readers take regular files: save its data to a file and give that")) from None
        except OSError as exc:
            raise SourceError(f"{self.path}: cannot open: {exc.strerror}") from exc
        magic = self._raw.read(4)
        self._raw.seek(0)
        try:
            self._member = _zip_member(self._raw, self.path) if magic == ZIP_MAGIC else None
        except SourceError:
            self._raw.close()
            raise
        self.compressed = magic[:2] == GZIP_MAGIC or self._member is not None
        self._inflater = zlib.decompressobj(wbits=31)  # used only when compressed
        self._pending = b""
        self.offset = 0
        self.truncated = self.growing = False

    def __enter__(self) -> ByteStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._member is not None:
            self._member.close()
        self._raw.close()

    def read(self, size: int) -> bytes:
        """Return up to `size` bytes; b"" only at the end of the stream."""
        if not self.compressed:
            data = self._raw.read(size)
        else:
            while len(self._pending) < size and self._inflate_more(size):
                pass
            data, self._pending = self._pending[:size], self._pending[size:]
        self.offset += len(data)
        return data

    def peek(self, size: int) -> bytes:
        """The next `size` bytes (fewer at the end), left unread: sniffing a format and
        reading its header cost no second open of the file."""
        if not self.compressed:
            data = self._raw.read(size)
            self._raw.seek(-len(data), os.SEEK_CUR)
            return data
        while len(self._pending) < size and self._inflate_more(size):
            pass
        return self._pending[:size]

    def skip_to(self, offset: int) -> None:
        """Advance to `offset` in the (decompressed) stream."""
        if offset < self.offset:
            raise ConfigError(f"cannot seek {self.path} backwards from {self.offset} to {offset}")
        if not self.compressed:
            # The open file's size, not the name's: a log rotated since the open (renamed, a new
            # one under the name) is still the file being read.
            size = os.fstat(self._raw.fileno()).st_size
            if offset > size:
                raise SourceError(
                    f"{self.path}: checkpoint points to byte {offset} but the file has {size} "
                    "bytes; it was truncated or replaced since the last run"
                )
            self._raw.seek(offset)
            self.offset = offset
            return
        while self.offset < offset:
            if not self.read(min(_CHUNK, offset - self.offset)):
                raise SourceError(
                    f"{self.path}: checkpoint points to byte {offset} but the decompressed "
                    f"file ends at {self.offset}; it was truncated or replaced since the last run"
                )

    def _inflate_more(self, want: int) -> bool:
        """Inflate another piece into `_pending`; False once the input is exhausted."""
        if self._member is not None:
            try:
                out = self._member.read(max(want, _CHUNK))
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:  # a bad CRC, a cut member
                raise SourceError(f"{self.path}: corrupt zip data: {exc}") from exc
            self._check_size(len(out))
            self._pending += out
            return bool(out)
        inflater = self._inflater
        if inflater.eof:
            rest = inflater.unused_data.lstrip(b"\x00")  # some writers pad after the last member
            while not rest:  # the padding may go on past this read
                more = self._raw.read(_CHUNK)
                if not more:
                    return False
                rest = more.lstrip(b"\x00")
            inflater = self._inflater = zlib.decompressobj(wbits=31)
            data = rest
        else:
            data = inflater.unconsumed_tail or self._raw.read(_CHUNK)
            if not data:
                if not self.truncated:
                    logger.warning("%s: gzip stream ends before its end marker (truncated file)",
                                   self.path)
                self.truncated = True
                return False
        try:
            out = inflater.decompress(data, max(want, _CHUNK))
        except zlib.error as exc:
            raise SourceError(
                f"{self.path}: corrupt gzip data near compressed byte {self._raw.tell()}: {exc}"
            ) from exc
        self._check_size(len(out))
        self._pending += out
        return True

    def _check_size(self, more: int) -> None:
        if self.offset + len(self._pending) + more > self.max_bytes:
            raise SourceError(f"{self.path}: decompresses to more than max_decompressed_bytes="
                              f"{self.max_bytes}; raise that limit in connection_params if the "
                              "file is genuine")


def _zip_member(raw: object, path: Path) -> zipfile.ZipExtFile:
    """The one file of a zip archive, opened for reading (security datasets ship one log per
    zip); a zip of several files, an encrypted or unreadable one is refused, saying why."""
    try:
        archive = zipfile.ZipFile(raw)  # type: ignore[arg-type]
        files = [i for i in archive.infolist()
                 if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
        if len(files) != 1:
            names = ", ".join(i.filename for i in files[:5]) + (", ..." if len(files) > 5 else "")
            raise SourceError(f"{path}: a zip archive of {len(files)} files ({names}); a source "
                              f"reads a zip of one file: unzip it (unzip -d DIR {path.name}) and "
                              "give the folder")
        if files[0].flag_bits & 0x1:
            raise SourceError(f"{path}: its zipped file {files[0].filename} is encrypted; unzip "
                              "it with its password and give the file")
        return archive.open(files[0])
    except SourceError:
        raise
    except (zipfile.BadZipFile, NotImplementedError, OSError) as exc:
        raise SourceError(f"{path}: a zip archive that cannot be read ({exc}); unzip it and "
                          "give the file") from None


class _NotRegular(OSError):
    pass


def _regular_file(path: str, flags: int) -> int:
    """`open` opener for reading: a regular file only. O_NONBLOCK, so that a FIFO (swapped in
    after the path was listed) is refused instead of blocking until someone writes to it."""
    fd = os.open(path, flags | os.O_NONBLOCK)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _NotRegular(file_kind(mode))
    os.set_blocking(fd, True)
    return fd


# Byte order marks of encodings no reader takes (longest first: UTF-32 LE starts like UTF-16 LE).
_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
         (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))
SNIFF_BYTES = 1 << 16
# What text_problem counts as not text: U+FFFD (bytes that are not UTF-8) and the control
# characters below " " other than tab, line feed, vertical tab, form feed and carriage return
# (0x09-0x0d). One regex pass, not a Python loop over the 64 KiB sniffed (~8x faster on text).
_NON_TEXT = re.compile("[\x00-\x08\x0e-\x1f\ufffd]")
# Binary: more than this share of the sniffed characters, and at least MIN_NON_TEXT of them,
# are not text. A few bad lines (a stray byte, a Latin-1 name) are quarantined one by one.
MAX_NON_TEXT = 0.1
MIN_NON_TEXT = 32


def check_text(stream: ByteStream) -> None:
    """Refuse a file whose first bytes show it is not UTF-8 text: UTF-16 or UTF-32 (with a byte
    order mark, or ASCII with every other byte zero), or binary data. Read as UTF-8, such a
    file would become records whose every field is null, or rejects of every line.

    Raises:
        SourceError: naming the file, the encoding found and how to convert it.
    """
    problem = text_problem(stream.peek(SNIFF_BYTES), stream.path.name)
    if problem is not None:
        raise SourceError(f"{stream.path}: {problem}")


def text_problem(head: bytes, name: str = "FILE") -> str | None:
    """Why `head` (the first bytes of the file `name`) is not UTF-8 text, in words with the
    fix; None if it is."""
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return (f"{encoding} text (it starts with a {encoding} byte order mark); readers take "
                    f"UTF-8: convert it first, e.g. iconv -f {encoding} -t UTF-8 {name} > "
                    f"{name}.utf8")
    if not head:
        return None
    zeros = head.count(0)
    if zeros * 3 > len(head):  # ASCII in UTF-16 is half zeros, in UTF-32 three quarters
        encoding = "UTF-32" if zeros * 3 > len(head) * 2 else "UTF-16"
        return (f"{encoding} text without a byte order mark (most characters are followed or "
                f"preceded by zero bytes); readers take UTF-8: convert it first, e.g. iconv -f "
                f"{encoding}LE -t UTF-8 {name} > {name}.utf8")
    text = head.decode("utf-8", errors="replace")
    odd = len(_NON_TEXT.findall(text))
    if odd >= MIN_NON_TEXT and odd > MAX_NON_TEXT * len(text):
        return (f"not text: {odd:,} of the first {len(text):,} characters are neither UTF-8 text "
                "nor line breaks or tabs (binary data, or another encoding); give the reader a "
                "UTF-8 text export")
    return None


@dataclass
class Block:
    """Whole lines of a file, as they appear in it.

    Attributes:
        data: the bytes; every line ends with b"\\n" except possibly the last one of the file.
        offset: position of data[0] in the (decompressed) file.
        line: 1-based number of the first line.
        truncated: the file is a gzip stream cut short; the last line may be incomplete.
    """

    data: bytes
    offset: int
    line: int
    truncated: bool = False

    @property
    def end(self) -> int:
        return self.offset + len(self.data)

    @cached_property
    def n_lines(self) -> int:
        return count_lines(self.data)

    @property
    def next_line(self) -> int:
        """Number of the line that follows the block's last line break."""
        return self.line + self.n_lines - (bool(self.data) and not self.data.endswith(b"\n"))


def iter_blocks(
    stream: ByteStream, block_size: int = DEFAULT_BLOCK_SIZE, line: int = 1,
    cut: Callable[[bytes], int] | None = None,
) -> Iterator[Block]:
    """Split a stream into blocks of whole lines of about `block_size` bytes.

    `cut(data)`, for formats whose records may span lines (quoted CSV), says where the last
    whole record of `data` (which starts at a record start) ends; by default a line break. At
    the end of a `growing` stream, an unfinished record waits for the next read.
    """
    if block_size < 1:
        raise ConfigError(f"block_size must be >= 1, got {block_size}")
    carry = b""
    offset = stream.offset
    while True:
        chunk = stream.read(block_size)
        if not chunk:
            if carry and cut is not None and stream.growing:
                carry = carry[:cut(carry)]
            if carry:
                yield Block(carry, offset, line, truncated=stream.truncated)
            elif stream.truncated:
                yield Block(b"", offset, line, truncated=True)
            return
        data = carry + chunk
        end = data.rfind(b"\n") + 1 if cut is None else cut(data)
        if end == 0:
            if len(data) > MAX_LINE_BYTES:
                raise SourceError(f"{stream.path}: line {line} is longer than "
                                  f"{MAX_LINE_BYTES} bytes; this is not a line-oriented log")
            carry = data
            continue
        block = Block(data[:end], offset, line)
        yield block
        carry = data[end:]
        offset, line = block.end, block.next_line


def count_lines(data: bytes) -> int:
    """Lines in a block (the last one may lack its line break)."""
    return data.count(b"\n") + (bool(data) and not data.endswith(b"\n"))


def has_line_starting(data: bytes, prefix: bytes) -> bool:
    """Whether any line of `data` starts with `prefix`."""
    # memchr on the first byte, then a look at each hit: far faster than a 2-byte substring
    # search when, as in logs, the byte is rare.
    at = data.find(prefix[:1])
    while at >= 0:
        if (at == 0 or data[at - 1] == 10) and data.startswith(prefix, at):
            return True
        at = data.find(prefix[:1], at + 1)
    return False


class LineIndex:
    """Start and end of every line of a block, computed on first use; or of every record,
    where `bounds` gives those of records that span lines (quoted CSV)."""

    def __init__(self, data: bytes, bounds: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self.data = data
        self._bounds = bounds

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        if self._bounds is None:
            self._bounds = line_bounds(self.data)
        return self._bounds

    def line(self, i: int) -> bytes:
        """Line (or record) i, 0-based, without its line break."""
        starts, ends = self.bounds
        return self.data[starts[i]:ends[i]]

    def spans(self, rows: np.ndarray) -> Callable[[], Spans]:
        """The byte ranges of some lines, computed when first asked for."""
        return lambda: (self.data, *(bound[rows] for bound in self.bounds))


def line_bounds(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive, without the line break) of every line in `data`."""
    buf = np.frombuffer(data, dtype=np.uint8)
    breaks = np.flatnonzero(buf == 10)
    if not data:  # no line at all, as count_lines says (an empty truncated final block)
        return breaks, breaks.copy()
    ends = breaks if data.endswith(b"\n") else np.append(breaks, len(data))
    starts = np.empty_like(ends)
    if len(ends):
        starts[0] = 0
        starts[1:] = breaks[: len(ends) - 1] + 1
    # CRLF files (Windows exports): the \r belongs to the line break, not to the last field.
    crlf = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == 13)
    return starts, ends - crlf
