"""training.sources.quoted_csv: where a quoted CSV's records begin and end. A quote opens a
quoted field only at a field's start; one inside an unquoted field (`5" tall`) is text and
never holds back the lines after it, in a block or at the end of a live file."""

from __future__ import annotations

import numpy as np
import pytest

from training.sources import quoted_csv
from training.sources.quoted_csv import MAX_RECORD_LINES, quoted_records


def _records(data: bytes, final: bool = False) -> tuple[list[list[int]], int, int]:
    spanning, end, loose = quoted_records(data, ",", final=final)
    return spanning.tolist(), end, loose


@pytest.mark.parametrize("line", [b'1,he said 5" tall', b'1,"Smith, John",27" screen',
                                  b'1,a"b"c,x"', b'"1",2,q"', b'1,x""",y'])
def test_a_line_whose_odd_quote_is_inside_an_unquoted_field_is_a_record_at_once(line):
    # Read as text by Python's csv module: the data after it is never waited for.
    data = line + b"\n2,x,y\n"
    assert _records(data) == ([], len(data), 0)
    assert _records(data + b"3,z", final=False) == ([], len(data), 0)
    assert _records(data, final=True) == ([], len(data), 0)


def test_a_quote_that_opens_a_field_still_waits_for_the_data_to_come():
    assert _records(b'1,x,y\n2,"two lines,\n') == ([], 6, 0)
    assert _records(b'1,x,y\n2,"t","a\n""b""\n') == ([], 6, 0)  # doubled quotes stay open
    data = b'1,x,y\n2,"t","a\n""b""\nc",5" tall\n3,z\n'
    assert _records(data) == ([[1, 3]], len(data), 0)


def test_text_after_a_field_spanning_lines_may_hold_a_stray_quote():
    data = b'1,"a\r\nb",5" tall\r\n2,x,y\r\n'
    assert _records(data) == ([[0, 1]], len(data), 0)
    assert _records(data, final=True) == ([[0, 1]], len(data), 0)


def test_a_quote_closed_with_text_after_it_is_read_alone_and_not_waited_for():
    # Line 0's quote is closed by line 2's, then 'a' follows: not RFC 4180, never a record;
    # line 2 opens a field that may still close.
    data = b'1,"open\n2,x\n3,"a\n'
    assert _records(data) == ([], len(b'1,"open\n2,x\n'), 1)
    assert _records(data + b'b"\n', final=True) == ([[2, 3]], len(data) + 3, 1)


def test_a_quote_open_longer_than_max_record_lines_is_not_waited_for():
    data = b'1,"open\n' + b"2,x\n" * (MAX_RECORD_LINES - 2)
    assert _records(data) == ([], 0, 0)  # may close on the next line, its MAX_RECORD_LINES-th
    data += b"2,x\n"
    assert _records(data) == ([], len(data), 1)


def test_lines_whose_quotes_are_text_cost_no_regex(monkeypatch):
    # The review's stray-quote file took 400,000 regex matches (1.98 s for 0.125 s before).
    def no_regex(delimiter: str) -> None:
        raise AssertionError("regex used")

    monkeypatch.setattr(quoted_csv, "_record", no_regex)
    lines = [b'%d,display 27" model %d' % (i, i) for i in range(1000)]
    lines += [b'%d,"Smith, John",27" screen' % i for i in range(1000)]
    data = b"\n".join(lines) + b"\n"
    assert _records(data) == ([], len(data), 0)
    assert _records(data, final=True) == ([], len(data), 0)


def test_every_field_quoted_and_records_spanning_lines_are_paired_at_once():
    row = b'"1","a ""b""","c\r\nd"\r\n"2","x",""\r\n'
    data = row * 500
    spanning, end, loose = quoted_records(data, ",", final=True)
    assert end == len(data) and loose == 0
    np.testing.assert_array_equal(spanning, np.arange(500)[:, None] * 3 + [0, 1])
