"""Relative event times (a Zeek log whose `ts` counts from the capture's start) are warned about
once per file, naming it, on the collection path every command shares: the collector (collect,
preprocess, pipeline, score) and the tail of `score --follow`."""

from __future__ import annotations

import logging
import re
import shutil
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from training.cli.main import main
from training.collection.relative_time import RELATIVE_BEFORE, RelativeTimes
from training.scoring.tail import Tail
from training.sources.coerce import TIMESTAMP
from training.sources.config import DataSource
from training.tests.conftest import collect

PORTSCAN = "slips_portscan_zeek"
# horizontal_conn.log's ts count seconds from the capture's start (the first is 928.943457).
# The warning names a time of the first batch checked: batches of one file map in threads.
SUCH_AS = r"1970-01-01T00:\d\d:\d\d\.\d{6}Z"


def _warning(path: object) -> str:
    """The warning about `path`, as a regular expression (any relative time it may name)."""
    return (re.escape(f"{path}: event times before 1990 (such as ") + SUCH_AS + re.escape(
        ") look relative (counted from the capture's start), not dates: hourly incidents and "
        "time splits stay consistent within this file, but its dates are meaningless and do "
        "not line up with other captures' (any other file of this source whose times look "
        "relative is named with -v)"))


def _matches(lines: list[str], patterns: list[str]) -> bool:
    return len(lines) == len(patterns) and all(
        re.fullmatch(p, line) for p, line in zip(patterns, lines))


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "training.collection.relative_time" and r.levelno == logging.WARNING]


def test_the_rule_s_edges():
    """1990-01-01T00:00Z itself is a date; a microsecond before it is not; nulls are ignored."""
    check = RelativeTimes()
    assert not check.check(pa.array([RELATIVE_BEFORE, None], TIMESTAMP), "a.log")
    assert not check.check(pa.array([], TIMESTAMP), "a.log")
    assert check.check(pa.array([RELATIVE_BEFORE - timedelta(microseconds=1)], TIMESTAMP),
                       "a.log")
    assert check.files == {"a.log"}


def test_a_relative_zeek_log_is_warned_about_once_and_a_dated_one_not(datasets, caplog):
    """Read in small blocks (several batches of the relative file): one warning, naming it."""
    folder = datasets / PORTSCAN
    paths = [folder / "vertical_conn.log", folder / "horizontal_conn.log"]
    with caplog.at_level(logging.WARNING):
        events, collector = collect("zeek", "", connection_params={
            "path": [str(p) for p in paths], "block_size": 1024})
    assert collector.get_stats()["batches"] > 2
    assert _matches(_warnings(caplog), [_warning(paths[1])])
    # Collected all the same: the warning drops nothing.
    relative = pc.less(events["timestamp"], pa.scalar(RELATIVE_BEFORE, TIMESTAMP))
    times = events.filter(relative)["timestamp"].to_pylist()
    assert len(times) == 41 and min(times) == datetime(1970, 1, 1, 0, 15, 28, 943457,
                                                       tzinfo=timezone.utc)


def test_follow_warns_once_per_file_across_polls(datasets, tmp_path, caplog):
    """`score --follow` reads the file as it grows: the warning comes with the first poll that
    holds its events, not again with the lines appended later."""
    lines = (datasets / PORTSCAN / "horizontal_conn.log").read_bytes().splitlines(keepends=True)
    body = next(i for i, line in enumerate(lines) if not line.startswith(b"#"))
    log = tmp_path / "conn.log"
    log.write_bytes(b"".join(lines[:body + 10]))
    tail = Tail([DataSource("h", "zeek_logs", {"path": str(log)})])
    with caplog.at_level(logging.WARNING):
        first = sum(read.canonical.table.num_rows for read in tail.poll())
        with open(log, "ab") as handle:
            handle.write(b"".join(lines[body + 10:body + 30]))
        second = sum(read.canonical.table.num_rows for read in tail.poll())
    assert (first, second) == (10, 20)
    assert _matches(_warnings(caplog), [_warning(log)])


def test_collect_prints_the_warning_once_on_stderr(datasets, tmp_path, capsys):
    log = tmp_path / "horizontal_conn.log"
    shutil.copy(datasets / PORTSCAN / "horizontal_conn.log", log)
    assert main(["collect", "--source", f"zeek:{log}", "--output", str(tmp_path / "out"),
                 "--block-size", "1024"]) == 0
    err = capsys.readouterr().err
    assert _matches([line for line in err.splitlines() if "relative" in line],
                    ["warning: " + _warning(log)])


def test_a_folder_of_one_capture_s_logs_is_warned_about_once(datasets, caplog):
    """Slips' test9 folder: 8 Zeek JSON logs of one capture, all counted from its start. One
    warning names the first file found; the others are named at INFO (each had its own
    warning: trial H, D13)."""
    with caplog.at_level(logging.INFO, logger="training.collection.relative_time"):
        collect("zeek", datasets / "slips_zeek_json_test9")
    (warned,) = _warnings(caplog)
    first = re.match(r"(.+): event times before 1990", warned).group(1)
    assert re.fullmatch(_warning(first), warned)
    also = [r.getMessage().split(": ")[0] for r in caplog.records
            if r.name == "training.collection.relative_time" and r.levelno == logging.INFO]
    assert len(also) == 7 and first not in also
