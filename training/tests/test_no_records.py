"""Inputs that give no record (`training.collection.no_records`): the header line of a real
IoT-23 capture alone, and an empty file. `collect` and the pipeline name each such input (the
pipeline's error too, when no input gave any); `score` is tested with the guard
(`test_scoring_guard.py`)."""

from __future__ import annotations

import json

import pytest

from training.cli.main import main
from training.errors import SchemaError
from training.pipeline.inputs import collect_events
from training.sources.config import DataSource

IOT23 = "iot23/CTU-Honeypot-Capture-7-1-labeled.csv"


@pytest.fixture
def header_only(datasets, tmp_path):
    """The first line (the header) of a real IoT-23 CSV, alone."""
    path = tmp_path / "hdr.csv"
    path.write_text((datasets / IOT23).read_text().splitlines()[0] + "\n")
    return path


def _source(name: str, path) -> DataSource:
    return DataSource(name, "csv", {"path": str(path)})


def test_collect_warns_of_an_input_that_gave_no_record(header_only, tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    code = main(["-q", "collect", "--source", f"csv:{header_only}", "--source", f"csv:{empty}",
                 "--output", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 0 and json.loads(out)["events"] == 0
    assert err.splitlines() == [
        f"warning: {header_only}: no records (an empty file or folder, or a header alone)",
        f"warning: {empty}: no records (an empty file or folder, or a header alone)"]


def test_the_pipeline_notes_an_empty_input_and_names_it_when_none_gave_an_event(
        header_only, datasets, tmp_path):
    notes: list[str] = []
    events, _ = collect_events((_source("hdr", header_only), _source("iot", datasets / IOT23)),
                               tmp_path / "events.parquet", None, notes)
    assert events.num_rows == 130
    assert f"{header_only}: no records (an empty file or folder, or a header alone)" in notes
    with pytest.raises(SchemaError) as error:
        collect_events((_source("hdr", header_only),), tmp_path / "none.parquet", None, [])
    assert str(error.value) == (f"the sources gave no event (no record was read from "
                                f"{header_only}); check the paths and the source types")
