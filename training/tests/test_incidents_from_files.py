"""A batch score's incidents and alerts page are built from its output file without reading it
whole (`training.scoring.unit_files`): the narrow columns of every unit, then whole rows of the
best incidents' alerts only. Built so, from Parquet or JSON Lines, they are byte for byte those
built from the same units held in memory: a layer-1 model of Stratosphere 008's benign flows
scoring 011 (2,239 incidents, more than `MAX_DETAILED`, so the detailed part is cut too).
And every kind of `ScoredUnits` (a table, a Parquet file of many row groups, a JSON Lines file
with blank lines) gives the same narrow columns, rows and explained layers."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from training.cli.main import main
from training.scoring.alerts_page import alerts_document
from training.scoring.incidents import MAX_DETAILED, build_incidents
from training.scoring.scored_units import NARROW, TableUnits
from training.scoring.tables import incidents_path, read_alerts, write_table
from training.scoring.unit_files import open_units

CONN_011 = "stratosphere/011-zeek-mixed/data/conn.log.labeled"


@pytest.fixture(scope="module")
def outputs(benign_008_run, datasets):
    """The 011 capture scored to Parquet and to JSON Lines (`score`, as a user runs it)."""
    paths = {}
    for suffix in ("parquet", "jsonl"):
        path = benign_008_run.parent / f"from_files.{suffix}"
        assert main(["score", "--workdir", str(benign_008_run), "--model", "layer1_vae",
                     "--input", f"zeek:{datasets / CONN_011}", "--output", str(path),
                     "--top", "0", "-q"]) == 0
        paths[suffix] = path
    return paths


@pytest.mark.parametrize("suffix", ["parquet", "jsonl"])
def test_incidents_and_page_from_the_file_are_those_from_memory(outputs, suffix, tmp_path):
    path = outputs[suffix]
    table = read_alerts(path)  # the whole file, as incidents were built before
    incidents = build_incidents(table)
    assert incidents.num_rows == 2239 > MAX_DETAILED
    top = incidents["top"]
    assert top[MAX_DETAILED - 1].is_valid and not top[MAX_DETAILED].is_valid
    mine = write_table(incidents, tmp_path / f"mine.incidents.{suffix}")
    assert mine.read_bytes() == incidents_path(path).read_bytes()
    document = orjson.dumps(alerts_document(incidents, table), option=orjson.OPT_INDENT_2)
    assert document == path.with_name(f"{path.stem}.alerts.json").read_bytes()
    assert orjson.loads(document)["explained_layers"] == ["layer1"]


def test_a_file_keeps_only_the_narrow_columns(outputs):
    for path in outputs.values():
        assert open_units(path).narrow.column_names == list(NARROW)


@pytest.fixture(scope="module")
def kinds(outputs, tmp_path_factory):
    """The Parquet output as a table, as Parquet of 500-row row groups, as JSON Lines with a
    blank line before every 100th row."""
    folder = tmp_path_factory.mktemp("kinds")
    table = read_alerts(outputs["parquet"])
    pq.write_table(table, folder / "small_groups.parquet", row_group_size=500)
    lines = outputs["jsonl"].read_bytes().splitlines(keepends=True)
    (folder / "blanks.jsonl").write_bytes(b"".join(
        (b"\n  \n" if i % 100 == 0 else b"") + line for i, line in enumerate(lines)))
    return table, [TableUnits(table), open_units(folder / "small_groups.parquet"),
                   open_units(folder / "blanks.jsonl")]


def test_every_kind_of_scored_units_gives_the_same_rows(kinds):
    table, units = kinds
    assert pq.ParquetFile(units[1].path).num_row_groups > 5
    at = np.r_[0, 499, 500, 1777, np.arange(2000, table.num_rows, 997), table.num_rows - 1]
    columns = ["unit", "time", "event_ids", "top_events", "reasons", "reference_scores"]
    expected = table.take(at)
    for kind in units:
        assert kind.narrow.to_pylist() == table.select(list(NARROW)).to_pylist()
        assert kind.take(at).to_pylist() == expected.to_pylist()
        assert kind.take(at, columns).to_pylist() == expected.select(columns).to_pylist()
        assert kind.take(np.zeros(0, np.int64)).num_rows == 0
        assert kind.explained_layers() == {"layer1"}
        assert build_incidents(kind).equals(build_incidents(table))


def test_a_table_without_reasons_explains_no_layer():
    table = pa.table({"unit": ["a"], "layer": ["layer1"], "score": [1.0], "is_alert": [True]})
    assert TableUnits(table).explained_layers() == set()


def test_a_window_starts_where_datetime_puts_it(outputs):
    """The incidents table is built column by column: a window of a fraction of a second
    starts at datetime.fromtimestamp(slot x window), to the microsecond."""
    window = 7.3
    incidents = build_incidents(open_units(outputs["parquet"]), window_seconds=window)
    starts = incidents["window_start"].to_pylist()
    assert len(starts) > MAX_DETAILED
    assert starts == [datetime.fromtimestamp(round(s.timestamp() / window) * window, timezone.utc)
                      for s in starts]
    assert any(s.microsecond for s in starts)
