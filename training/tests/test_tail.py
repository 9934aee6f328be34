"""Tail across log rotation with a reader far behind: every line read once, or the loss
reported. The rotation falls between a poll's listing of the files and its read of the live
file: the poll is a generator, so the test renames the file between two of its steps."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from training.scoring.tail import MAX_READ, Read, Tail
from training.sources.config import DataSource
from training.tests.zeek_writer import header, line


def _uids(reads: Iterable[Read]) -> list[str]:
    return [u for r in reads for u in r.canonical.table["event_id"].to_pylist()]


def _expected(n: int) -> list[str]:
    return [f"conn:C{i:08d}" for i in range(n)]


def _sensor(live: Path) -> Callable[[int], None]:
    """Appends `count` numbered conn lines to `live` (uids go on across files)."""
    written = [0]

    def write(count: int) -> None:
        first = written[0]
        with open(live, "a") as out:
            out.write("".join(line(i, 1_765_000_000.0 + i) for i in range(first, first + count)))
        written[0] += count

    return write


def _rotate_during_a_poll(tmp_path: Path) -> tuple[Tail, list[str], list[DataSource]]:
    """conn.log rotated to conn.1.log (10 lines, unread); the new conn.log (12,000 lines, more
    than MAX_READ) listed by a poll, then rotated to conn.2.log while that poll reads
    conn.1.log; a third conn.log with 5 lines. Returns the tail and what that poll read."""
    live = tmp_path / "conn.log"
    sources = [DataSource("zeek", "zeek", {"path": str(live)})]
    write = _sensor(live)
    live.write_text(header(1.0))
    tail = Tail(sources)
    assert _uids(tail.poll()) == []
    write(10)
    live.rename(tmp_path / "conn.1.log")
    live.write_text(header(2.0))
    write(12_000)
    assert live.stat().st_size > MAX_READ  # one poll reads part of it
    polled = tail.poll()
    got = _uids([next(polled)])  # conn.log listed; conn.1.log (rotated away) read first
    assert got == _expected(10)
    live.rename(tmp_path / "conn.2.log")  # rotated between the listing and its read
    live.write_text(header(3.0))
    write(5)
    got += _uids(polled)
    assert len(got) < 10 + 12_000  # the poll read part of conn.2.log
    return tail, got, sources


@pytest.mark.parametrize("restart", [False, True], ids=["same run", "restarted from state"])
def test_a_file_rotated_between_the_listing_and_the_read_is_read_to_its_end_once(
        tmp_path, restart):
    tail, got, sources = _rotate_during_a_poll(tmp_path)
    if restart:  # the scorer stopped after committing that poll
        tail = Tail(sources, tail.state())
    for _ in range(3):
        got += _uids(tail.poll())
    assert got == _expected(10 + 12_000 + 5)  # each once, files in the order written
    assert [Path(p["path"]).name for p in tail.state()] == ["conn.log"]
    assert (tail.lost_files, tail.lost_bytes) == (0, 0)


def test_a_rotated_file_removed_before_it_was_read_to_its_end_is_warned_of_and_counted(
        tmp_path, caplog):
    tail, got, _ = _rotate_during_a_poll(tmp_path)
    rotated = tmp_path / "conn.2.log"
    data = rotated.read_bytes()
    cut = data.rfind(b"\n", 0, MAX_READ) + 1  # the poll read whole lines up to MAX_READ
    rotated.unlink()
    with caplog.at_level(logging.WARNING, logger="training.scoring.tail"):
        got += _uids(tail.poll())
    left = len(data) - cut
    assert (tail.lost_files, tail.lost_bytes) == (1, left) and left > 50_000
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        f"{rotated} was removed before it was read to its end"]
    assert f"{left} bytes left unread (from byte {cut}" in caplog.records[0].getMessage()
    read_of_rotated = data[:cut].count(b"\n") - 8  # its 8 header lines hold no events
    assert got == _expected(10 + read_of_rotated) + _expected(12_015)[-5:]


def test_positions_saved_before_size_and_rotated_were_stored_are_resumed(tmp_path):
    live = tmp_path / "conn.log"
    sources = [DataSource("zeek", "zeek", {"path": str(live)})]
    write = _sensor(live)
    live.write_text(header(1.0))
    write(3)
    tail = Tail(sources)
    assert _uids(tail.poll()) == _expected(3)
    saved = [{k: v for k, v in p.items() if k not in ("size", "rotated")} for p in tail.state()]
    write(2)
    assert _uids(Tail(sources, saved).poll()) == _expected(5)[3:]


def test_only_the_bytes_after_the_last_line_break_wait_for_their_line(tmp_path):
    """`unfinished` counts a line in progress, not whole lines a poll left for the next (a
    backlog past MAX_READ read as megabytes "ending no line": review R3)."""
    live = tmp_path / "conn.log"
    live.write_text(header(1.0))
    write = _sensor(live)
    write(12_000)
    partial = line(12_000, 1_765_012_000.0)[:40]
    with open(live, "a") as out:
        out.write(partial)
    assert live.stat().st_size > MAX_READ + len(partial)
    tail = Tail([DataSource("zeek", "zeek", {"path": str(live)})])
    got = _uids(tail.poll())
    assert tail.behind and len(got) < 12_000  # a backlog: whole lines left for the next poll
    assert tail.unfinished() == {str(live): len(partial)}
    while tail.behind:
        got += _uids(tail.poll())
    assert got == _expected(12_000) and tail.unfinished() == {str(live): len(partial)}


def test_a_file_rotated_before_the_first_poll_was_committed_is_found_again(tmp_path):
    """The checkpoint a scorer takes before reading names the files there: a run killed
    before its next checkpoint, the file rotated meanwhile, reads the rotated file first."""
    live = tmp_path / "conn.log"
    sources = [DataSource("zeek", "zeek", {"path": str(live)})]
    write = _sensor(live)
    live.write_text(header(1.0))
    write(4)
    before_reading = Tail(sources).state()
    assert [(Path(p["path"]).name, p["offset"]) for p in before_reading] == [("conn.log", 0)]
    live.rename(tmp_path / "conn.1.log")  # rotated while the killed scorer was down
    live.write_text(header(2.0))
    write(3)
    assert _uids(Tail(sources, before_reading).poll()) == _expected(7)


def test_a_csv_record_spanning_lines_waits_until_its_writer_finishes_it(tmp_path):
    live = tmp_path / "alerts.csv"
    live.write_text('ts,src_ip,dst_ip,message\n1765000000,10.0.0.1,10.0.0.2,"one"\n'
                    '1765000001,10.0.0.1,10.0.0.2,"two lines,\n')  # the writer is mid-record
    tail = Tail([DataSource("siem", "csv", {"path": str(live)})])
    first = list(tail.poll())
    with open(live, "a") as out:
        out.write('the second"\n1765000002,10.0.0.1,10.0.0.2,three\n')
    second = list(tail.poll())

    def messages(reads: list[Read]) -> list[str]:
        return [m for r in reads for m in r.canonical.table["message"].to_pylist()]

    assert messages(first) == ["one"] and messages(second) == ["two lines,\nthe second", "three"]
    assert not [x for r in first + second for x in r.canonical.rejects]
    assert [int(n) for r in second for n in r.lines] == [3, 5]


def test_a_file_removed_before_its_first_read_counts_its_bytes_as_lost(tmp_path, caplog):
    live = tmp_path / "conn.log"
    live.write_text(header(1.0))
    _sensor(live)(20)
    tail = Tail([DataSource("zeek", "zeek", {"path": str(live)})])  # named, not read yet
    live.rename(tmp_path / "conn.1.log")
    live.write_text(header(2.0))  # before the unlink: the new file cannot reuse its inode
    (tmp_path / "conn.1.log").unlink()
    with caplog.at_level(logging.WARNING, logger="training.scoring.tail"):
        assert _uids(tail.poll()) == []
    size = len(header(1.0)) + sum(len(line(i, 1_765_000_000.0 + i)) for i in range(20))
    assert (tail.lost_files, tail.lost_bytes) == (1, size)
    assert f"{size} bytes left unread" in caplog.records[0].getMessage()


def test_a_csv_record_longer_than_a_read_is_read_whole(tmp_path):
    live = tmp_path / "alerts.csv"
    message = "\n".join("x" * 2_999 for _ in range(MAX_READ // 3_000 + 50))  # past one read
    live.write_text(f'ts,src_ip,dst_ip,message\n1765000000,10.0.0.1,10.0.0.2,"{message}"\n'
                    '1765000001,10.0.0.1,10.0.0.2,after\n')
    tail = Tail([DataSource("siem", "csv", {"path": str(live)})])
    read = [r for _ in range(3) for r in tail.poll()]
    assert [m for r in read for m in r.canonical.table["message"].to_pylist()] == [
        message, "after"]
    assert not [x for r in read for x in r.canonical.rejects]
