"""training.sources.csv_file and delimited: a quoted CSV field may hold line breaks (RFC 4180,
as SIEMs export a Windows event's Message); its lines are one record, numbered by its first
line, blocks never cut inside it, and a quote that does not close is bounded and reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.scoring.tail import Tail
from training.sources import DataSource, create_source
from training.sources.base import START
from training.sources.delimited import MAX_RECORD_LINES
from training.tests.conftest import collect

MESSAGE = 'An account failed to log on.{nl}{nl}Subject: ""bob""'


def _events(path: Path, nl: str) -> None:
    lines = ["host,event_id,message", "h1,4624,ok",
             "h2,4625," + '"' + MESSAGE.format(nl=nl) + '"', "h3,4634,done"]
    path.write_bytes((nl.join(lines) + nl).encode())


def _read(path: Path, start: dict = START, **params) -> tuple[list[dict], list[int], list,
                                                              list[dict]]:
    source = create_source(DataSource("t", "csv_file", {"path": str(path), **params}))
    rows, lines, rejects, ends = [], [], [], []
    for batch in source.read(str(path), start):
        rows += batch.table.to_pylist()
        lines += batch.lines.tolist()
        rejects += batch.rejects
        ends.append(batch.end)
    return rows, lines, rejects, ends


@pytest.mark.parametrize("nl", ["\n", "\r\n"], ids=["LF", "CRLF"])
@pytest.mark.parametrize("block_size", [1 << 20, 7, 30], ids=["one block", "7 B", "30 B"])
def test_a_quoted_field_with_line_breaks_is_one_record(tmp_path, nl, block_size):
    # 7 and 30 bytes: the record is longer than a block, and a block ends inside it.
    path = tmp_path / "events.csv"
    _events(path, nl)
    rows, lines, rejects, ends = _read(path, block_size=block_size)
    assert rows == [
        {"host": "h1", "event_id": 4624, "message": "ok"},
        {"host": "h2", "event_id": 4625,
         "message": f'An account failed to log on.{nl}{nl}Subject: "bob"'},
        {"host": "h3", "event_id": 4634, "message": "done"},
    ]
    assert lines == [2, 3, 6]  # the record's first line; the one after it is line 6
    assert rejects == []
    assert ends[-1] | {"head": None} == {"offset": path.stat().st_size, "line": 7, "record": 3,
                                         "head": None, "head_len": path.stat().st_size}
    # Every batch ends between records: on a line after the header, never inside the message.
    assert {end["line"] for end in ends} <= {3, 6, 7}


@pytest.mark.parametrize("nl", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_reading_resumes_after_the_first_record(tmp_path, nl):
    path = tmp_path / "events.csv"
    _events(path, nl)
    *_, ends = _read(path, block_size=7)
    after_first = ends[0]
    assert after_first | {"head": None, "head_len": None} == {
        "offset": len(f"host,event_id,message{nl}h1,4624,ok{nl}"), "line": 3, "record": 1,
        "head": None, "head_len": None}  # and the identity of the file (test_collect_rotated_log)
    rows, lines, rejects, _ = _read(path, start=after_first)
    assert [row["host"] for row in rows] == ["h2", "h3"]
    assert rows[0]["message"] == f'An account failed to log on.{nl}{nl}Subject: "bob"'
    assert lines == [3, 6] and rejects == []


def test_collected_events_keep_the_record_whole_and_its_id_whatever_the_blocks(tmp_path):
    path = tmp_path / "events.csv"
    _events(path, "\r\n")
    table, collector = collect("csv_file", path)
    small, _ = collect("csv_file", path, connection_params={"block_size": 7})
    assert table.num_rows == small.num_rows == 3
    assert collector.get_stats()["quarantined"] == 0
    # The id hashes the whole record's bytes, not its first line: the same however it is cut.
    assert table["event_id"].to_pylist() == small["event_id"].to_pylist()
    assert len(set(table["event_id"].to_pylist())) == 3


@pytest.mark.parametrize("block_size", [1 << 20, 16])
def test_a_quote_that_does_not_close_rejects_its_line_and_the_rest_is_read(tmp_path, block_size):
    path = tmp_path / "flows.csv"
    path.write_text('host,port,note\nh1,1,"open\nh2,2,x\nh3,3,"a\nb"\nh4,4,"end')
    rows, lines, rejects, _ = _read(path, block_size=block_size)
    assert [(row["host"], row["note"]) for row in rows] == [("h2", "x"), ("h3", "a\nb")]
    assert lines == [3, 4]
    reason = ("malformed CSV: the quoted field opened on line {0} does not close (within "
              "1,000 lines, its quotes paired); line {0} is read on its own")
    assert [(r.line, r.record, r.reason, r.raw) for r in rejects] == [
        (2, 0, reason.format(2), 'h1,1,"open'), (6, 3, reason.format(6), 'h4,4,"end')]


def test_a_stray_quote_in_an_unquoted_field_is_text(tmp_path):
    # Python's csv module reads a,b"c,d literally; it must not swallow the lines after it.
    path = tmp_path / "flows.csv"
    path.write_text('host,port,note\nh1,1,say"hi\nh2,2,x\nh3,3,"a\nb"\nh4,4,y\n')
    rows, lines, rejects, _ = _read(path)
    assert [(row["host"], row["note"]) for row in rows] == [
        ("h1", 'say"hi'), ("h2", "x"), ("h3", "a\nb"), ("h4", "y")]
    assert lines == [2, 3, 4, 6] and rejects == []


@pytest.mark.parametrize("block_size", [1 << 20, 4096])
def test_a_quote_open_for_more_than_max_record_lines_is_a_stray_one(tmp_path, block_size):
    # The quote of line 2 closes only MAX_RECORD_LINES lines later: not one record (memory is
    # bounded), so line 2 is rejected and every line after it is a record of its own.
    path = tmp_path / "flows.csv"
    body = [f"h{i},{i},x" for i in range(MAX_RECORD_LINES)]
    path.write_text("host,port,note\nh,0,\"open\n" + "\n".join(body) + '\nz",9,end\n')
    rows, lines, rejects, _ = _read(path, block_size=block_size)
    assert [r.line for r in rejects] == [2]
    assert rejects[0].reason.startswith("malformed CSV: the quoted field opened on line 2 ")
    assert len(rows) == MAX_RECORD_LINES + 1
    assert lines == list(range(3, MAX_RECORD_LINES + 4))
    assert rows[-1] == {"host": 'z"', "port": 9, "note": "end"}


@pytest.mark.parametrize("block_size", [1 << 20, 16])
def test_a_field_spanning_lines_may_be_followed_by_a_stray_quote(tmp_path, block_size):
    path = tmp_path / "flows.csv"
    path.write_text('host,port,note,size\nh1,1,"a\nb",5" tall\nh2,2,"Smith, J",27" screen\n')
    rows, lines, rejects, _ = _read(path, block_size=block_size)
    assert [(row["host"], row["note"], row["size"]) for row in rows] == [
        ("h1", "a\nb", '5" tall'), ("h2", "Smith, J", '27" screen')]
    assert lines == [2, 4] and rejects == []


def test_a_stray_quote_in_a_live_file_holds_back_none_of_the_lines_after_it(tmp_path):
    # Waiting for its quote to close held every later line back until 1,000 had come.
    live = tmp_path / "alerts.csv"
    live.write_text('ts,src_ip,dst_ip,message\n1765000000,10.0.0.1,10.0.0.2,he said 5" tall\n')
    tail = Tail([DataSource("siem", "csv", {"path": str(live)})])
    scored = [sum(r.canonical.table.num_rows for r in tail.poll())]
    with open(live, "a") as out:
        out.write("".join(f"{1765000001 + i},10.0.0.1,10.0.0.2,later\n" for i in range(10)))
    scored.append(sum(r.canonical.table.num_rows for r in tail.poll()))
    assert scored == [1, 10]
