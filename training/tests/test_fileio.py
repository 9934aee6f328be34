"""Tests for training.artifacts.atomic: byte streams (plain, gzip, damaged gzip), line blocks, line
bounds, path expansion and atomic writes, on small hand-made files."""

from __future__ import annotations

import gzip
import os
import resource
import signal
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

import training.sources.files as fileio
from training.artifacts.atomic import atomic_write
from training.errors import ConfigError, SourceError, WriteError
from training.sources.files import (
    Block, ByteStream, LineIndex, count_lines, has_line_starting, iter_blocks,
    line_bounds,
)
from training.sources.paths import Found, expand_paths
from training.tests.conftest import REPO

BODY = b"one\ntwo\nthree\n"


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def read_all(stream: ByteStream, size: int = 5) -> bytes:
    """Every byte of the stream, read `size` bytes at a time (each read is checked)."""
    out = []
    while True:
        piece = stream.read(size)
        if not piece:
            return b"".join(out)
        assert len(piece) <= size
        out.append(piece)


def gzip_cut_after(prefix: bytes, rest: bytes) -> tuple[bytes, bytes]:
    """A gzip stream of prefix + rest, and the same stream cut right after `prefix` was flushed,
    so that the cut stream inflates to exactly `prefix`."""
    co = zlib.compressobj(wbits=31)
    head = co.compress(prefix) + co.flush(zlib.Z_SYNC_FLUSH)
    return head + co.compress(rest) + co.flush(), head


def blocks(path: Path, block_size: int) -> list[Block]:
    with ByteStream(path) as stream:
        return list(iter_blocks(stream, block_size))


# --- ByteStream ------------------------------------------------------------------------------

def test_plain_file_is_read_as_is(tmp_path: Path) -> None:
    path = write(tmp_path / "a.log", BODY)
    with ByteStream(path) as stream:
        assert not stream.compressed
        assert stream.read(4) == b"one\n"
        assert stream.offset == 4
        assert read_all(stream) == b"two\nthree\n"
        assert stream.offset == len(BODY)
        assert not stream.truncated


def test_gzip_is_detected_by_magic_bytes_not_by_name(tmp_path: Path) -> None:
    hidden_gzip = write(tmp_path / "events.log", gzip.compress(BODY))
    fake_gzip = write(tmp_path / "events.log.gz", BODY)
    with ByteStream(hidden_gzip) as stream:
        assert stream.compressed
        assert read_all(stream) == BODY
        assert stream.offset == len(BODY)
        assert not stream.truncated
    with ByteStream(fake_gzip) as stream:
        assert not stream.compressed
        assert read_all(stream) == BODY


def test_empty_plain_file(tmp_path: Path) -> None:
    with ByteStream(write(tmp_path / "empty", b"")) as stream:
        assert not stream.compressed
        assert stream.read(10) == b""
        assert stream.offset == 0


@pytest.mark.parametrize("chunk", [1 << 20, 7])
def test_multi_member_gzip_is_read_as_one_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(fileio, "_CHUNK", chunk)  # 7: members cross raw reads
    data = gzip.compress(b"first\n") + gzip.compress(b"second\n") + gzip.compress(b"third\n")
    with ByteStream(write(tmp_path / "multi.gz", data)) as stream:
        assert read_all(stream, 4) == b"first\nsecond\nthird\n"
        assert not stream.truncated


@pytest.mark.parametrize("chunk", [1 << 20, 16])
def test_zero_padding_after_and_between_members_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    # 16: the padding runs across several raw reads (a member ending near a 1 MiB boundary).
    monkeypatch.setattr(fileio, "_CHUNK", chunk)
    data = gzip.compress(BODY) + bytes(100) + gzip.compress(b"four\n") + bytes(1000)
    with ByteStream(write(tmp_path / "padded.gz", data)) as stream:
        assert read_all(stream, 6) == BODY + b"four\n"
        assert not stream.truncated


def test_gzip_without_trailer_returns_all_data_and_is_truncated(tmp_path: Path) -> None:
    path = write(tmp_path / "cut.gz", gzip.compress(BODY)[:-8])  # CRC and size lost
    with ByteStream(path) as stream:
        assert read_all(stream) == BODY
        assert stream.truncated


def test_gzip_cut_mid_stream_returns_every_byte_before_the_cut(tmp_path: Path) -> None:
    _, head = gzip_cut_after(b"one\ntwo\nthr", b"ee\nfour\n")
    with ByteStream(write(tmp_path / "cut.gz", head)) as stream:
        assert read_all(stream, 3) == b"one\ntwo\nthr"
        assert stream.truncated


def test_gzip_cut_in_second_member(tmp_path: Path) -> None:
    _, head = gzip_cut_after(b"b\n", b"c\n")
    with ByteStream(write(tmp_path / "cut.gz", gzip.compress(b"a\n") + head)) as stream:
        assert read_all(stream) == b"a\nb\n"
        assert stream.truncated


def test_gzip_cut_inside_header_is_truncated_and_empty(tmp_path: Path) -> None:
    with ByteStream(write(tmp_path / "cut.gz", gzip.compress(BODY)[:5])) as stream:
        assert stream.read(10) == b""
        assert stream.truncated


@pytest.mark.parametrize("damage", ["deflate", "crc", "after_member"])
def test_corrupt_gzip_raises_source_error_naming_the_file(tmp_path: Path, damage: str) -> None:
    good = gzip.compress(BODY)
    if damage == "deflate":
        data = good[:10] + b"\xff" * 20  # block type 3 is reserved: invalid
    elif damage == "crc":
        data = good[:-8] + bytes([good[-8] ^ 0xFF]) + good[-7:]
    else:
        data = good + b"garbage"  # not padding, not a gzip member
    path = write(tmp_path / "bad.gz", data)
    with ByteStream(path) as stream:
        with pytest.raises(SourceError, match="corrupt gzip data") as excinfo:
            read_all(stream)
    assert str(path) in str(excinfo.value)


def test_plain_file_starting_with_gzip_magic_is_corrupt_gzip(tmp_path: Path) -> None:
    path = write(tmp_path / "odd.bin", b"\x1f\x8bnot gzip at all\n")
    with ByteStream(path) as stream, pytest.raises(SourceError, match="corrupt gzip"):
        stream.read(10)


def _zero_bomb(path: Path, size: int) -> Path:
    co = zlib.compressobj(level=9, wbits=31)
    zeros = bytes(1 << 20)
    with open(path, "wb") as handle:
        for _ in range(size // len(zeros)):
            handle.write(co.compress(zeros))
        handle.write(co.flush())
    return path


def test_gzip_bomb_is_refused_without_inflating_it(tmp_path: Path) -> None:
    limit = 1 << 20
    path = _zero_bomb(tmp_path / "bomb.gz", 50 << 20)  # 50 MiB of zeros, ~50 KiB on disk
    assert path.stat().st_size < 100_000
    tracemalloc.start()
    try:
        with ByteStream(path, max_bytes=limit) as stream:
            with pytest.raises(SourceError, match=f"max_decompressed_bytes={limit}") as excinfo:
                read_all(stream, 64 << 10)
            assert stream.offset <= limit
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(path) in str(excinfo.value)
    assert peak < 8 << 20  # a few chunks, not the 50 MiB the file inflates to


def _zip(path: Path, members: dict[str, bytes], **options: object) -> Path:
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, **options) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_a_zip_of_one_file_is_read_as_that_file(tmp_path: Path) -> None:
    # Security datasets (OTRF, Mordor) ship one log per zip; a folder entry does not count.
    path = _zip(tmp_path / "capture.bin", {"logs/": b"", "logs/events.json": BODY * 1000})
    with ByteStream(path) as stream:
        assert stream.compressed  # so that --follow refuses it, as a gzip file
        assert stream.peek(4) == b"one\n"
        assert read_all(stream, 1000) == BODY * 1000
        assert stream.offset == len(BODY) * 1000
    with ByteStream(path) as stream:
        stream.skip_to(len(BODY) * 999)  # a collection resumed from a checkpoint
        assert read_all(stream) == BODY
    with ByteStream(path, max_bytes=len(BODY) * 10) as stream:  # bounded as gzip is
        with pytest.raises(SourceError, match=f"max_decompressed_bytes={len(BODY) * 10}"):
            read_all(stream, 64 << 10)


def test_a_zip_of_several_files_or_a_damaged_one_is_refused_saying_what_to_do(
        tmp_path: Path) -> None:
    several = _zip(tmp_path / "two.zip", {"a.log": BODY, "b.log": BODY})
    with pytest.raises(SourceError, match=r"two.zip: a zip archive of 2 files \(a.log, b.log\); "
                                          r"a source reads a zip of one file: unzip it "
                                          r"\(unzip -d DIR two.zip\) and give the folder"):
        ByteStream(several)
    whole = _zip(tmp_path / "one.zip", {"a.log": BODY * 1000}).read_bytes()
    cut = write(tmp_path / "cut.zip", whole[:len(whole) // 2])  # no central directory
    with pytest.raises(SourceError, match=r"cut.zip: a zip archive that cannot be read"):
        ByteStream(cut)
    flipped = bytearray(whole)
    flipped[60] ^= 0xFF  # inside the deflated data: a bad CRC or bad deflate data
    with ByteStream(write(tmp_path / "flipped.zip", bytes(flipped))) as stream:
        with pytest.raises(SourceError, match=r"flipped.zip: corrupt zip data"):
            read_all(stream, 64 << 10)


def test_max_bytes_edges(tmp_path: Path) -> None:
    body = b"x" * 999 + b"\n"
    path = write(tmp_path / "k.gz", gzip.compress(body))
    with ByteStream(path, max_bytes=len(body)) as stream:
        assert read_all(stream, 64) == body
    with ByteStream(path, max_bytes=len(body) - 1) as stream:
        with pytest.raises(SourceError, match=f"max_decompressed_bytes={len(body) - 1}"):
            read_all(stream, 64)


def test_max_bytes_does_not_limit_plain_files(tmp_path: Path) -> None:
    with ByteStream(write(tmp_path / "p.log", BODY), max_bytes=1) as stream:
        assert read_all(stream) == BODY


def test_max_bytes_must_be_positive(tmp_path: Path) -> None:
    path = write(tmp_path / "p.log", BODY)
    with pytest.raises(ConfigError, match="max_decompressed_bytes must be >= 1, got 0"):
        ByteStream(path, max_bytes=0)
    ByteStream(path, max_bytes=1).close()


def test_missing_file_raises_source_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.log"
    with pytest.raises(SourceError, match="no such file") as excinfo:
        ByteStream(path)
    assert str(path) in str(excinfo.value)


def test_directory_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"not a regular file \(a folder\)") as excinfo:
        ByteStream(tmp_path)
    assert str(tmp_path) in str(excinfo.value)


def test_a_dangling_link_is_named_as_one_with_its_missing_target(tmp_path: Path) -> None:
    link = tmp_path / "x.log"
    link.symlink_to(tmp_path / "rotated" / "x.log.1")
    with pytest.raises(SourceError) as excinfo:
        ByteStream(link)
    assert str(excinfo.value) == (
        f"{link}: a symbolic link to {tmp_path}/rotated/x.log.1, which does not exist; point "
        "it at the file or give the file itself")


def test_a_fifo_is_refused_saying_what_it_is_and_what_to_do(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.log"
    os.mkfifo(fifo)  # opened without blocking: no writer is needed to be refused
    with pytest.raises(SourceError) as excinfo:
        ByteStream(fifo)
    assert str(excinfo.value) == (
        f"{fifo}: not a regular file (a FIFO); readers take regular files: save its data to a "
        "file and give that")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_a_device_is_refused_saying_what_it_is_and_what_to_do() -> None:
    with pytest.raises(SourceError) as excinfo:
        ByteStream("/dev/zero")
    assert str(excinfo.value) == (
        "/dev/zero: not a regular file (a character device); readers take regular files: save "
        "its data to a file and give that")


@pytest.mark.parametrize("compress", [False, True])
def test_skip_to_forward(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compress: bool) -> None:
    monkeypatch.setattr(fileio, "_CHUNK", 3)  # gzip: skipping takes several reads
    path = write(tmp_path / "s", gzip.compress(BODY) if compress else BODY)
    with ByteStream(path) as stream:
        stream.skip_to(4)
        assert stream.offset == 4
        stream.skip_to(4)  # staying put is not going backwards
        assert stream.read(4) == b"two\n"
        stream.skip_to(10)
        assert stream.offset == 10
        assert read_all(stream) == b"ree\n"
    with ByteStream(path) as stream:
        stream.skip_to(len(BODY))  # exactly the end is fine
        assert stream.read(5) == b""



@pytest.mark.parametrize("compress", [False, True])
def test_peek_leaves_the_bytes_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      compress: bool) -> None:
    monkeypatch.setattr(fileio, "_CHUNK", 3)  # gzip: peeking takes several inflations
    path = write(tmp_path / "s", gzip.compress(BODY) if compress else BODY)
    with ByteStream(path) as stream:
        assert stream.peek(6) == b"one\ntw"
        assert stream.peek(100) == BODY  # past the end: what there is
        assert stream.offset == 0
        assert stream.read(4) == b"one\n"
        assert stream.peek(3) == b"two"
        assert read_all(stream) == BODY[4:]

@pytest.mark.parametrize("compress", [False, True])
def test_skip_to_backwards_is_a_config_error(tmp_path: Path, compress: bool) -> None:
    path = write(tmp_path / "s", gzip.compress(BODY) if compress else BODY)
    with ByteStream(path) as stream:
        stream.read(6)
        with pytest.raises(ConfigError, match="backwards from 6 to 5"):
            stream.skip_to(5)


@pytest.mark.parametrize("compress", [False, True])
def test_skip_to_past_the_end_is_a_source_error(tmp_path: Path, compress: bool) -> None:
    path = write(tmp_path / "s", gzip.compress(BODY) if compress else BODY)
    with ByteStream(path) as stream:
        with pytest.raises(SourceError, match="checkpoint points to byte 15") as excinfo:
            stream.skip_to(len(BODY) + 1)
    assert str(path) in str(excinfo.value)


def test_skip_to_measures_the_open_file_when_the_name_was_rotated_since(tmp_path: Path) -> None:
    """A log rotated between the open and the seek (renamed, a short new file under its name),
    as the live scorer met at 10k events/s: the open file is still the one being read."""
    path = write(tmp_path / "conn.log", BODY)
    with ByteStream(path) as stream:
        path.rename(tmp_path / "conn.1.log")
        path.write_bytes(b"x\n")
        stream.skip_to(8)
        assert stream.read(100) == b"three\n"


# --- iter_blocks -----------------------------------------------------------------------------

LINES = b"a\nbb\nccc\ndddd\n"
LINES_BLOCKS = [Block(b"a\n", 0, 1), Block(b"bb\n", 2, 2), Block(b"ccc\n", 5, 3),
                Block(b"dddd\n", 9, 4)]


@pytest.mark.parametrize("compress", [False, True])
def test_blocks_end_at_line_breaks_with_exact_positions(tmp_path: Path, compress: bool) -> None:
    path = write(tmp_path / "l", gzip.compress(LINES) if compress else LINES)
    got = blocks(path, 4)
    assert got == LINES_BLOCKS
    assert [(b.end, b.next_line) for b in got] == [(2, 2), (5, 3), (9, 4), (14, 5)]


def test_final_line_without_line_break(tmp_path: Path) -> None:
    path = write(tmp_path / "l", b"a\nbb")
    assert blocks(path, 100) == [Block(b"a\n", 0, 1), Block(b"bb", 2, 2)]


def test_empty_file_has_no_blocks(tmp_path: Path) -> None:
    assert blocks(write(tmp_path / "e", b""), 10) == []
    assert blocks(write(tmp_path / "e.gz", gzip.compress(b"")), 10) == []


@pytest.mark.parametrize("block_size", [1, 2, 3, 7, 16, 1000])
def test_blocks_concatenate_to_the_file(tmp_path: Path, block_size: int) -> None:
    rng = np.random.default_rng(block_size)
    lines = [b"x" * int(n) for n in rng.integers(0, 12, size=60)]  # empty lines included
    data = b"\n".join(lines) + b"\nlast line, no break"
    got = blocks(write(tmp_path / "r", data), block_size)
    assert b"".join(b.data for b in got) == data
    assert got[0].offset == 0 and got[0].line == 1
    for before, after in zip(got, got[1:]):
        assert after.offset == before.end
        assert after.line == before.next_line
        assert before.data.endswith(b"\n")
    assert got[-1].next_line == data.count(b"\n") + 1
    assert not got[-1].truncated


def test_blocks_start_where_the_stream_was_skipped_to(tmp_path: Path) -> None:
    with ByteStream(write(tmp_path / "l", LINES)) as stream:
        stream.skip_to(5)
        assert list(iter_blocks(stream, 100, line=3)) == [Block(b"ccc\ndddd\n", 5, 3)]


def test_block_size_must_be_positive(tmp_path: Path) -> None:
    with ByteStream(write(tmp_path / "l", LINES)) as stream:
        with pytest.raises(ConfigError, match="block_size must be >= 1, got 0"):
            next(iter_blocks(stream, 0))


def test_truncated_gzip_ends_with_a_truncated_block(tmp_path: Path) -> None:
    _, head = gzip_cut_after(b"one\ntwo\nthr", b"ee\n")
    assert blocks(write(tmp_path / "cut.gz", head), 100) == [
        Block(b"one\ntwo\n", 0, 1),
        Block(b"thr", 8, 3, truncated=True),
    ]


def test_truncated_gzip_cut_after_a_line_break_ends_with_an_empty_truncated_block(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "cut.gz", gzip.compress(BODY)[:-8])
    assert blocks(path, 100) == [
        Block(BODY, 0, 1),
        Block(b"", len(BODY), 4, truncated=True),
    ]


def test_over_long_line_is_a_source_error_naming_the_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fileio, "MAX_LINE_BYTES", 10)
    path = write(tmp_path / "long.log", b"ok\nfine\n" + b"x" * 30 + b"\nafter\n")
    got = []
    with ByteStream(path) as stream:
        with pytest.raises(SourceError, match="line 3 is longer than 10 bytes") as excinfo:
            for block in iter_blocks(stream, 4):
                got.append(block.data)
    assert str(path) in str(excinfo.value)
    assert b"".join(got) == b"ok\nfine\n"


@pytest.mark.parametrize(("length", "accepted"), [(10, True), (11, False)])
def test_max_line_bytes_edges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, length: int, accepted: bool
) -> None:
    monkeypatch.setattr(fileio, "MAX_LINE_BYTES", 10)
    data = b"y" * length + b"\nz\n"
    path = write(tmp_path / "l", data)
    if accepted:
        assert b"".join(b.data for b in blocks(path, length)) == data
    else:
        with pytest.raises(SourceError, match="line 1 is longer than 10 bytes"):
            blocks(path, length)


# --- line helpers ----------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "starts", "ends"), [
    (b"ab\r\ncd\r\n", [0, 4], [2, 6]),
    (b"a\n\nb\n", [0, 2, 3], [1, 2, 4]),
    (b"a\nbc", [0, 2], [1, 4]),
    (b"\r\n\r\nx", [0, 2, 4], [0, 2, 5]),
    (b"a\rb\n", [0], [3]),  # a lone \r inside a line is data
    (b"\n", [0], [0]),
    (b"", [], []),
])
def test_line_bounds(data: bytes, starts: list[int], ends: list[int]) -> None:
    got_starts, got_ends = line_bounds(data)
    assert got_starts.tolist() == starts
    assert got_ends.tolist() == ends
    assert len(got_starts) == count_lines(data)


@pytest.mark.parametrize(("data", "n"), [
    (b"", 0), (b"a", 1), (b"a\n", 1), (b"a\nb", 2), (b"\n\n", 2), (b"a\r\nb\r\n", 2),
])
def test_count_lines(data: bytes, n: int) -> None:
    assert count_lines(data) == n


@pytest.mark.parametrize(("data", "expected"), [
    (b"#x\nb\n", True), (b"a\n#b", True), (b"a#b\n", False), (b"", False), (b"a\r#b\n", False),
])
def test_has_line_starting(data: bytes, expected: bool) -> None:
    assert has_line_starting(data, b"#") is expected


def test_line_index() -> None:
    index = LineIndex(b"ab\r\n\r\ncd\nlast")
    assert [index.line(i) for i in range(4)] == [b"ab", b"", b"cd", b"last"]
    assert index.bounds is index.bounds  # computed once


# --- expand_paths ----------------------------------------------------------------------------

@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    for name in ("a.log", "b.csv", "sub/c.log", ".hidden.log", "sub/.x.log", "sub/d.txt"):
        write(tmp_path / "d" / name, b"x\n")
    return tmp_path / "d"


def test_expand_a_single_file(tree: Path) -> None:
    assert expand_paths(tree / "b.csv", ["*.log"])[:2] == ([tree / "b.csv"], [])
    assert expand_paths(str(tree / "a.log"))[:2] == ([tree / "a.log"], [])


def test_expand_a_directory_with_patterns(tree: Path) -> None:
    assert expand_paths(tree, ["*.log"])[:2] == (
        [tree / "a.log", tree / "sub" / "c.log"], [tree / "b.csv", tree / "sub" / "d.txt"])
    assert expand_paths(str(tree), ["*.log", "*.txt"])[:2] == (
        [tree / "a.log", tree / "sub" / "c.log", tree / "sub" / "d.txt"], [tree / "b.csv"])


def test_expand_a_directory_without_patterns_ignores_hidden_files(tree: Path) -> None:
    assert expand_paths(tree)[:2] == (
        [tree / "a.log", tree / "b.csv", tree / "sub" / "c.log", tree / "sub" / "d.txt"], [])


def test_expand_globs(tree: Path) -> None:
    assert expand_paths(str(tree / "*.log"))[:2] == ([tree / "a.log"], [])
    assert expand_paths(str(tree / "**" / "*.log"))[:2] == (
        [tree / "a.log", tree / "sub" / "c.log"], [])
    # A file a glob names is taken whatever the patterns say.
    assert expand_paths(str(tree / "*.csv"), ["*.log"])[:2] == ([tree / "b.csv"], [])


def test_expand_a_list_of_paths(tree: Path) -> None:
    # b.csv is named explicitly, so it is taken, not reported as skipped by the directory.
    files, skipped, _ = expand_paths([tree / "b.csv", tree, str(tree / "a.log")], ["*.log"])
    assert files == [tree / "a.log", tree / "b.csv", tree / "sub" / "c.log"]
    assert skipped == [tree / "sub" / "d.txt"]


def test_links_leaving_the_folder_are_reported_not_taken(tree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside / "e.log", b"x\n")
    (tree / "out.log").symlink_to(outside / "e.log")
    (tree / "outdir").symlink_to(outside, target_is_directory=True)
    (tree / "in.log").symlink_to(tree / "a.log")  # stays inside: taken
    (tree / "sub" / "up").symlink_to(tree, target_is_directory=True)  # a loop, inside
    assert expand_paths(tree, ["*.log"]) == Found(
        [tree / "a.log", tree / "in.log", tree / "sub" / "c.log"],
        [tree / "b.csv", tree / "sub" / "d.txt"], [tree / "out.log", tree / "outdir"])
    assert expand_paths(tree, ["*.log"], follow_symlinks=True).files == [
        tree / "a.log", tree / "in.log", tree / "out.log", tree / "outdir" / "e.log",
        tree / "sub" / "c.log"]
    # A glob's folder is its fixed leading part; a file named explicitly is read, link or not.
    assert expand_paths(str(tree / "*.log")) == Found(
        [tree / "a.log", tree / "in.log"], [], [tree / "out.log"])
    assert expand_paths(tree / "out.log") == Found([tree / "out.log"], [], [])


def test_special_files_are_not_regular_files(tree: Path) -> None:
    os.mkfifo(tree / "pipe.log")
    assert expand_paths(tree, ["*.log"]).skipped == [
        tree / "b.csv", tree / "pipe.log", tree / "sub" / "d.txt"]
    with pytest.raises(SourceError, match=r"pipe\.log: not a regular file \(a FIFO\); .* "
                       "save its data to a file and give that"):
        expand_paths(tree / "pipe.log")
    with pytest.raises(SourceError, match=r"pipe\.log: not a regular file \(a FIFO\)"):
        ByteStream(tree / "pipe.log")  # never blocks waiting for a writer
    (tree / "broken.log").symlink_to(tree / "nothing")
    with pytest.raises(SourceError, match=f"broken.log: a symbolic link to {tree / 'nothing'}, "
                       "which does not exist; point it at the file"):
        expand_paths(tree / "broken.log")


def test_a_loop_of_links_is_not_called_a_missing_target(tmp_path: Path) -> None:
    (tmp_path / "a.csv").symlink_to("b.csv")
    (tmp_path / "b.csv").symlink_to("a.csv")
    with pytest.raises(SourceError) as excinfo:
        expand_paths(tmp_path / "a.csv")
    assert str(excinfo.value) == (
        f"{tmp_path / 'a.csv'}: a symbolic link to b.csv, which cannot be followed: Too many "
        "levels of symbolic links; point it at the file or give the file itself")


def test_expand_errors(tree: Path) -> None:
    with pytest.raises(SourceError, match="the pattern matches no files"):
        expand_paths(str(tree / "*.parquet"))
    with pytest.raises(SourceError, match="no such file or directory") as excinfo:
        expand_paths([tree / "a.log", tree / "missing.log"])
    assert str(tree / "missing.log") in str(excinfo.value)
    with pytest.raises(ConfigError, match=r"got \[\]"):
        expand_paths([])


# --- atomic_write ----------------------------------------------------------------------------

def test_atomic_write_replaces_the_old_content(tmp_path: Path) -> None:
    path = write(tmp_path / "out.json", b"old")
    with atomic_write(path) as handle:
        handle.write(b"new content")
        assert path.read_bytes() == b"old"  # nothing visible before the block ends
    assert path.read_bytes() == b"new content"
    assert os.listdir(tmp_path) == ["out.json"]


def test_atomic_write_text_mode_creates_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "out.txt"
    with atomic_write(path, "w") as handle:
        handle.write("héllo\n")
    assert path.read_text(encoding="utf-8") == "héllo\n"
    assert os.listdir(path.parent) == ["out.txt"]


def test_atomic_write_failure_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    path = write(tmp_path / "out.json", b"old")
    with pytest.raises(RuntimeError, match="writer failed"):
        with atomic_write(path) as handle:
            handle.write(b"half of the new")
            raise RuntimeError("writer failed")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.json"]


def test_atomic_write_failure_on_a_new_file_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        with atomic_write(tmp_path / "new.bin") as handle:
            handle.write(b"x")
            raise KeyError("boom")
    assert os.listdir(tmp_path) == []


def test_atomic_write_over_a_folder_names_the_file_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.mkdir()
    with pytest.raises(WriteError) as excinfo:
        with atomic_write(path) as handle:
            handle.write(b"x")
    assert str(excinfo.value) == f"{path}: cannot be written (Is a directory)"
    assert excinfo.value.filename == str(path) and isinstance(excinfo.value, OSError)
    assert os.listdir(tmp_path) == ["out.jsonl"] and path.is_dir()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_atomic_write_into_a_folder_that_takes_no_files_names_the_file_asked_for() -> None:
    with pytest.raises(WriteError, match=r"^/proc/x\.jsonl: cannot be written \(No such file or "
                                         r"directory\)$"):
        with atomic_write("/proc/x.jsonl") as handle:
            handle.write(b"x")


def test_a_file_system_refusing_bytes_names_the_file_asked_for(tmp_path: Path) -> None:
    # A real refusal with no file name in it (as a full disk gives): the file size limit of a
    # child process (SIGXFSZ ignored, so the write fails with EFBIG instead of killing it).
    path = write(tmp_path / "out.bin", b"old")
    code = ("import sys\nfrom training.artifacts.atomic import atomic_write\ntry:\n"
            "    with atomic_write(sys.argv[1]) as f:\n        f.write(b'x' * 100_000)\n"
            "except OSError as exc:\n    print(type(exc).__name__, exc)\n")

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))

    child = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                           text=True, preexec_fn=limit, timeout=60,
                           env={**os.environ, "PYTHONPATH": str(REPO),
                                "PYTHONDONTWRITEBYTECODE": "1"})
    assert child.stdout == f"WriteError {path}: cannot be written (File too large)\n", child.stderr
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]


# --- text sniffing ---------------------------------------------------------------------------

@pytest.mark.parametrize("head, found", [
    ("a,b\n1,2\n".encode("utf-16"), "UTF-16 text (it starts with a UTF-16 byte order mark)"),
    ("a,b\n1,2\n".encode("utf-32"), "UTF-32 text (it starts with a UTF-32 byte order mark)"),
    ("a,b\n1,2\n".encode("utf-16-le"), "UTF-16 text without a byte order mark"),
    ("a,b\n1,2\n".encode("utf-32-be"), "UTF-32 text without a byte order mark"),
    (bytes(range(256)) * 4, "not text: 620 of the first 1,024 characters"),
])
def test_text_problem_names_the_encoding(head: bytes, found: str) -> None:
    assert fileio.text_problem(head, "x.csv").startswith(found)


@pytest.mark.parametrize("head", [
    b"", "\ufeffa,b\nx,\u00e9\u4e2d\n".encode(), b'{"a":"\xff\xfe"}\n{"a":"ok"}\n',
    b"ts,msg\n" + b"1,ok\n" * 50 + b"2,caf\xe9\n" * 20,  # Latin-1 lines: quarantined one by one
])
def test_text_with_a_few_bad_bytes_is_text(head: bytes) -> None:
    assert fileio.text_problem(head) is None
