"""A model records how its training sources were read (`training.sources.recorded`), and
`score`, `score --once` and `evaluate` read inputs of the same type that way unless told
otherwise: a renamed IoT-23 CSV trained with --field-map scores with its addresses."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest

from training.cli.main import main
from training.registry.registry import ModelRegistry
from training.sources.config import DataSource
from training.sources.recorded import (
    SETTINGS_KEY, read_as_recorded, reading_settings, recorded_line, settings_text,
)

IOT23 = "iot23/CTU-Malware-Capture-44-1-labeled.csv"
RENAMED = {"id.orig_h": "src", "id.resp_h": "dst", "id.orig_p": "sport", "id.resp_p": "dport",
           "orig_bytes": "out_bytes"}
FIELD_MAP = "source_ip=src,dest_ip=dst,source_port=sport,dest_port=dport,bytes_sent=out_bytes"
LINE = ("reading with the field map layer1_vae 1.0.0 was trained with (5 fields); --field-map "
        "overrides")


def test_settings_are_recorded_per_type_when_its_sources_agree():
    mapped = DataSource("a", "csv", {"path": "a.csv", "column_names": ["x", "y"],
                                     "has_header": False},
                        field_map={"source_ip": "x"}, label_map={"Background": 0})
    alike = DataSource("b", "csv", dict(mapped.connection_params, path="b.csv"),
                       field_map={"source_ip": "x"}, label_map={"Background": 0})
    plain = DataSource("z", "zeek", {"path": "conn.log"})
    expected = {"field_map": {"source_ip": "x"}, "column_names": ["x", "y"],
                "has_header": False, "label_map": {"Background": 0}}
    assert reading_settings([mapped, alike, plain]) == {"csv_file": expected}
    other = DataSource("c", "csv", {"path": "c.csv"}, field_map={"source_ip": "other"})
    assert reading_settings([mapped, other]) == {}  # no one way to read csv files again
    assert settings_text({"csv_file": expected}) == (
        "csv_file: field map (1 field), column names (2 columns), label map (1 label), no "
        "header line")


def test_recorded_settings_apply_to_the_same_type_and_the_given_ones_win():
    recorded = {"csv_file": {"field_map": {"source_ip": "src", "dest_ip": "dst"},
                             "column_names": ["src", "dst"], "has_header": False,
                             "label_map": {"Background": 0}}}
    new = DataSource("a", "csv", {"path": "new.csv"}, label_map={"Botnet": 1})
    zeek = DataSource("z", "zeek", {"path": "conn.log"})
    (read, same), used = read_as_recorded([new, zeek], recorded, given=set())
    assert read.field_map == {"source_ip": "src", "dest_ip": "dst"}
    assert read.connection_params == {"path": "new.csv", "column_names": ["src", "dst"],
                                      "has_header": False}
    assert read.label_map.overrides == {"Background": 0, "Botnet": 1}  # the given one too
    assert same is zeek and new.field_map is None  # the sources given are not changed
    assert used == {"field_map": 2, "column_names": 2, "label_map": 1}
    assert recorded_line(used, "m 1.0.0") == (
        "reading with the field map (2 fields) and the column names (2 columns) and the label "
        "map (1 label) m 1.0.0 was trained with; --field-map, --column-names, --label-map "
        "override")
    given = DataSource("g", "csv", {"path": "new.csv"}, field_map={"source_ip": "a"})
    (read,), used = read_as_recorded([given], recorded, given={"field_map", "label_map"})
    assert read.field_map == {"source_ip": "a"} and used == {"column_names": 2}
    assert read_as_recorded([zeek], recorded, set())[1] == {}
    assert recorded_line({}, "m 1.0.0") is None


@pytest.fixture(scope="module")
def trained(tmp_path_factory, datasets):
    """A layer-1 pipeline model trained on a renamed IoT-23 CSV read with --field-map."""
    folder = tmp_path_factory.mktemp("recorded")
    original = datasets / IOT23
    renamed = folder / "renamed.csv"
    header, rest = original.read_text().split("\n", 1)
    renamed.write_text(",".join(RENAMED.get(c, c) for c in header.split(",")) + "\n" + rest)
    assert main(["-q", "pipeline", "--source", f"csv:{renamed}", "--field-map", FIELD_MAP,
                 "--layers", "layer1", "--epochs", "1", "--workdir", str(folder / "run")]) == 0
    return folder, original, renamed


def test_score_reads_a_renamed_csv_with_the_field_map_the_model_was_trained_with(trained,
                                                                                capsys):
    folder, original, renamed = trained
    flags = ["--workdir", str(folder / "run"), "--model", "layer1_vae"]
    metadata = ModelRegistry(folder / "run" / "models", create=False).get_metadata("layer1_vae")
    assert metadata.details[SETTINGS_KEY] == {"csv_file": {"field_map": dict(
        pair.split("=") for pair in FIELD_MAP.split(","))}}
    capsys.readouterr()
    assert main(["-q", "score", *flags, "--input", f"csv:{renamed}",
                 "--output", str(folder / "renamed.parquet")]) == 0
    assert capsys.readouterr().out.splitlines()[0] == LINE
    scored = pq.read_table(folder / "renamed.parquet")
    with original.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert scored.num_rows == len(rows) == 237
    for name, column, kind in (("source_ip", "id.orig_h", str), ("dest_ip", "id.resp_h", str),
                               ("source_port", "id.orig_p", int),
                               ("dest_port", "id.resp_p", int)):
        assert scored[name].null_count == 0, name
        assert scored[name].to_pylist() == [kind(row[column]) for row in rows], name
    # An explicit --field-map wins: the recorded one is not merged under it.
    assert main(["-q", "score", *flags, "--input", f"csv:{renamed}", "--field-map",
                 "source_ip=src", "--output", str(folder / "given.parquet")]) == 0
    assert "reading with" not in capsys.readouterr().out
    given = pq.read_table(folder / "given.parquet")
    assert given["source_ip"].null_count == 0 and given["dest_ip"].null_count == 237


def test_score_once_and_evaluate_read_with_the_recorded_field_map(trained, capsys):
    folder, original, renamed = trained
    flags = ["--workdir", str(folder / "run"), "--model", "layer1_vae"]
    capsys.readouterr()
    assert main(["-q", "score", *flags, "--input", f"csv:{renamed}", "--once",
                 "--output", str(folder / "live.jsonl"),
                 "--alerts", str(folder / "alerts.jsonl")]) == 0
    assert capsys.readouterr().out.splitlines()[0] == LINE
    rows = [json.loads(line) for line in (folder / "live.jsonl").read_text().splitlines()]
    with original.open(newline="") as handle:
        expected = [row["id.resp_h"] for row in csv.DictReader(handle)]
    assert [row["dest_ip"] for row in rows] == expected
    assert main(["-q", "evaluate", *flags, "--source", f"csv:{renamed}", "--no-latency"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == LINE and "benign 211   threat 26" in out
