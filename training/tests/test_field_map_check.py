"""A user field map naming a field no record has is warned about once per source, with the
closest field name, on the collection path every command shares (collect, pipeline, score via
the collector; `score --follow` via its tail): `training.collection.field_map_check`."""

from __future__ import annotations

import csv
import logging
from datetime import datetime, timedelta, timezone

import pytest

from training.cli.main import main
from training.collection.field_map_check import MissingFields
from training.scoring.tail import Tail
from training.sources.config import DataSource
from training.tests.conftest import collect

CONN = "slips_ctu_sme_11_labeled_zeek/zeek-labeled/conn.log.labeled"
CET = timezone(timedelta(hours=1))


def _splunk_csv(datasets, path, rows: int = 30) -> None:
    """A Splunk-style CSV export (`_time` with an offset) of a real Zeek conn log's records."""
    records, fields = [], []
    with open(datasets / CONN) as handle:
        for line in handle:
            if line.startswith("#fields"):
                fields = line.rstrip("\n").split("\t")[1:]
            elif not line.startswith("#"):
                records.append(dict(zip(fields, line.rstrip("\n").split("\t"))))
                if len(records) == rows:
                    break
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["_time", "src_ip", "src_port", "dest_ip", "dest_port", "transport"])
        for r in records:
            out.writerow([datetime.fromtimestamp(float(r["ts"]), CET).isoformat(), r["id.orig_h"],
                          r["id.orig_p"], r["id.resp_h"], r["id.resp_p"], r["proto"]])


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "training.collection.field_map_check" and r.levelno == logging.WARNING]


def test_the_rule_s_edges():
    """Once per source, only for entries none of whose names is present, only from a batch
    with records; no close name: the fields are listed."""
    check = MissingFields("s", {"timestamp": ["_time", "when"], "protocol": "proto",
                                "host": "computer"})
    assert check.check({"when", "transport"}, 0, "a.csv") == []  # no records yet
    assert check.check({"when", "transport"}, 2, "a.csv") == [
        "source s (a.csv): field map protocol=proto: no record has field proto (its fields are "
        "transport, when)",
        "source s (a.csv): field map host=computer: no record has field computer (its fields "
        "are transport, when)"]
    assert check.check({"when"}, 2, "b.csv") == []  # once per source
    assert MissingFields("s", None).check({"a"}, 1, "a.csv") == []


def test_a_misspelt_field_is_warned_about_once_with_the_closest_name(datasets, tmp_path,
                                                                     caplog):
    path = tmp_path / "splunk.csv"
    _splunk_csv(datasets, path)
    with caplog.at_level(logging.WARNING):
        events, collector = collect("csv", path, field_map={"timestamp": "_tme"},
                                    connection_params={"block_size": 256})
    assert collector.get_stats()["batches"] > 1
    assert _warnings(caplog) == [f"source test ({path}): field map timestamp=_tme: no record "
                                 "has field _tme (did you mean _time?)"]
    assert events.num_rows == 30  # a warning: nothing is dropped
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        events, _ = collect("csv", path, field_map={"timestamp": "_time"})
    assert _warnings(caplog) == []
    assert events["timestamp"].null_count == 0


def test_collect_prints_it_on_stderr(datasets, tmp_path, capsys):
    path = tmp_path / "splunk.csv"
    _splunk_csv(datasets, path)
    assert main(["collect", "--source", f"csv:{path}", "--field-map", "protocol=transprt",
                 "--output", str(tmp_path / "out")]) == 0
    assert [line for line in capsys.readouterr().err.splitlines() if "field map" in line] == [
        f"warning: source csv0 ({path}): field map protocol=transprt: no record has field "
        "transprt (did you mean transport?)"]


def test_follow_warns_once_across_polls(datasets, tmp_path, caplog):
    path = tmp_path / "splunk.csv"
    _splunk_csv(datasets, path)
    tail = Tail([DataSource("live", "csv", {"path": str(path)},
                            field_map={"timestamp": "_tme", "protocol": "transport"})])
    with caplog.at_level(logging.WARNING):
        assert sum(read.canonical.table.num_rows for read in tail.poll()) == 30
        assert sum(read.canonical.table.num_rows for read in tail.poll()) == 0
    assert _warnings(caplog) == [f"source live ({path}): field map timestamp=_tme: no record "
                                 "has field _tme (did you mean _time?)"]
