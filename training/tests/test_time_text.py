"""Timestamp text: ISO 8601 and Kibana's default Discover date format."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone

import pytest

from training.sources.time_text import parse_time_text
from training.tests.conftest import collect

UTC = timezone.utc
CONN = "slips_ctu_sme_11_labeled_zeek/zeek-labeled/conn.log.labeled"


@pytest.mark.parametrize(("text", "expected"), [
    ("Feb 22, 2023 @ 01:00:03.714", datetime(2023, 2, 22, 1, 0, 3, 714000, UTC)),
    ("Feb 2, 2023 @ 01:00:03.714", datetime(2023, 2, 2, 1, 0, 3, 714000, UTC)),
    ("sep 30, 2024 @ 23:59:59", datetime(2024, 9, 30, 23, 59, 59, tzinfo=UTC)),
    ("Dec 31, 1999 @ 23:59", datetime(1999, 12, 31, 23, 59, tzinfo=UTC)),
    ("Feb 22, 2023 @ 01:00:03.714 +01:00", datetime(2023, 2, 22, 0, 0, 3, 714000, UTC)),
    ("Feb 22, 2023 @ 01:00:03.714-0530", datetime(2023, 2, 22, 6, 30, 3, 714000, UTC)),
    ("Feb 22, 2023 @ 01:00:03.714Z", datetime(2023, 2, 22, 1, 0, 3, 714000, UTC)),
    (" 2023-02-22T01:00:03.714 ", datetime(2023, 2, 22, 1, 0, 3, 714000, UTC)),
    ("2023-02-22T01:00:03+01:00", datetime(2023, 2, 22, 0, 0, 3, tzinfo=UTC)),
])
def test_kibana_and_iso_text_are_read_in_utc_unless_a_zone_is_written(text, expected):
    assert parse_time_text(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "Foo 22, 2023 @ 01:00:03", "Feb 30, 2023 @ 01:00",
                                  "Feb 22 2023 @ 01:00", "Feb 22, 2023 @ 25:00", "22/02/2023 01:00"])
def test_other_text_is_refused(text):
    with pytest.raises(ValueError):
        parse_time_text(text)


def test_a_kibana_discover_csv_of_real_zeek_flows_keeps_every_time_to_the_ms(datasets, tmp_path):
    rows = [line.split("\t") for line in (datasets / CONN).read_text().splitlines()
            if not line.startswith("#")][:50]
    path = tmp_path / "discover.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["@timestamp", "source.ip", "destination.ip", "destination.port"])
        for row in rows:
            when = datetime.fromtimestamp(float(row[0]), UTC)
            writer.writerow([f"{when:%b} {when.day}, {when:%Y @ %H:%M:%S}."
                             f"{when.microsecond // 1000:03d}", row[2], row[4], row[5]])
    events, collector = collect("csv_file", path)
    assert (events.num_rows, len(collector.quarantined)) == (50, 0)
    expected = [datetime.fromtimestamp(float(row[0]), UTC) for row in rows]
    expected = [t - timedelta(microseconds=t.microsecond % 1000) for t in expected]
    assert events["timestamp"].to_pylist() == expected
