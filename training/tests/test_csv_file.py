"""training.sources.csv_file: Zeek's unset and empty markers ("-", "(empty)") in a CSV cell are
no value, as the Zeek reader reads them, and a collection made before is not resumed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pytest

from training.collection.collector import DataCollector
from training.errors import CheckpointError
from training.sources import DataSource
from training.tests.conftest import collect

LABELED_CONN = "slips_ctu_sme_11_labeled_zeek/zeek-labeled/conn.log.labeled"


@pytest.mark.parametrize("bad_line", [False, True], ids=["fast path", "slow path"])
def test_a_dash_or_empty_marker_alone_in_a_cell_is_no_value(tmp_path, bad_line):
    # A Zeek conn log exported as CSV, quoted as Kibana's export quotes a dash; a line with a
    # field too many sends the block down the line-by-line path, which must read alike.
    path = tmp_path / "conn.csv"
    lines = ["ts,uid,proto,service,conn_state,history,tunnel_parents,note",
             "1547127288.02,C1,tcp,http,SF,ShADadttFf,(empty),--",
             '1547127292.85,C2,tcp,-,S0,S,"(empty)",- x',
             '1547127293.10,C3,udp,"-",-,-,,->']
    if bad_line:
        lines.insert(2, "1547127290.00,C9,tcp,-,S0,S,(empty),a,one too many")
    path.write_text("\n".join(lines) + "\n")
    table, collector = collect("csv_file", path)
    assert table["service"].to_pylist() == ["http", None, None]
    assert table["conn_state"].to_pylist() == ["SF", "S0", None]
    assert table["history"].to_pylist() == ["ShADadttFf", "S", None]
    assert table["tunnel_parents"].to_pylist() == [None, None, None]
    # Only the whole cell: other text made of dashes is a value.
    assert table["note"].to_pylist() == ["--", "- x", "->"]
    assert collector.get_stats()["quarantined"] == int(bad_line)


def _as_csv(log: Path, out: Path) -> None:
    """The rows of a Zeek TSV log written as a SIEM exports them: one CSV row per line, every
    field's text as Zeek wrote it, the #fields names as the header."""
    fields: list[str] = []
    with log.open() as source, out.open("w", newline="") as target:
        writer = csv.writer(target)
        for line in source:
            values = line.rstrip("\n").split("\t")
            if values[0] == "#fields":
                fields = values[1:]
                writer.writerow(fields)
            elif not values[0].startswith("#"):
                assert len(values) == len(fields)
                writer.writerow(values)


def test_a_zeek_log_read_as_tsv_and_as_csv_gives_the_same_events(datasets, tmp_path):
    # A real labeled conn log: 762 of its 766 flows have service "-".
    log = datasets / LABELED_CONN
    exported = tmp_path / "conn.csv"
    _as_csv(log, exported)
    tsv, _ = collect("zeek_logs", log)
    csv_, _ = collect("csv_file", exported)
    assert tsv.num_rows == csv_.num_rows == 766
    assert tsv["service"].null_count == csv_["service"].null_count == 762
    # What the CSV does not say: the Zeek log path (the "conn:" of its ids). Zeek's booleans
    # are booleans and give the direction, as in the TSV.
    assert tsv["direction"].null_count < tsv.num_rows  # the log has local_orig/local_resp
    apart = {"event_id"}
    shared = [c for c in tsv.column_names if c in csv_.column_names and c not in apart]
    assert {"service", "conn_state", "history", "label", "attack_type", "uid", "local_orig",
            "local_resp", "direction", "event_type"} <= set(shared)
    for name in shared:
        assert tsv[name].to_pylist() == csv_[name].to_pylist(), name
    assert [f"conn:{i}" for i in csv_["event_id"].to_pylist()] == tsv["event_id"].to_pylist()


def test_a_collection_made_when_a_dash_was_text_is_not_resumed(tmp_path):
    path = tmp_path / "conn.csv"
    path.write_text("ts,uid,conn_state,service\n1547127292.85,C2,S0,-\n")
    source = [DataSource("siem", "csv_file", {"path": str(path)})]
    out = tmp_path / "out"
    DataCollector(source, output_dir=out, progress=False).collect_table()
    checkpoint = out / "checkpoint.json"
    state = json.loads(checkpoint.read_text())
    assert state["recipe"]["sources"][0]["params"]["null_cells"] == ["", "-", "(empty)"]
    # The same collection resumes under the rules that made it ...
    assert DataCollector(source, output_dir=out, progress=False).collect_table(
        resume_from_checkpoint=True).num_rows == 0
    # ... and one written before "-" was no value (no null_cells in its recipe) is refused,
    # naming the rule: resuming it would mix service "-" and null in one collection.
    del state["recipe"]["sources"][0]["params"]["null_cells"]
    checkpoint.write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match=r"other settings \(sources differ: "
                                              r"sources\[0\]\.params\.null_cells\); resuming"):
        DataCollector(source, output_dir=out, progress=False).collect_table(
            resume_from_checkpoint=True)


@pytest.mark.parametrize("bad_line", [False, True], ids=["fast path", "slow path"])
def test_zeek_booleans_in_a_csv_are_booleans_and_another_value_there_is_quarantined(
        datasets, tmp_path, bad_line):
    """Rows of a real conn log (local_orig, local_resp T/F) written as CSV, with a column
    `flag` of T/F that Zeek does not type bool: it stays text. One row's local_orig is neither
    T nor F; one is `true`/`false` as a JSON export writes them."""
    with _exported(datasets / LABELED_CONN, tmp_path / "all.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    names = rows[0] + ["flag"]
    body = [r + ["T" if i % 2 else "F"] for i, r in enumerate(rows[1:9])]
    orig, resp = names.index("local_orig"), names.index("local_resp")
    assert {r[orig] for r in body} | {r[resp] for r in body} == {"T", "F"}
    body[2][orig], body[5][orig], body[5][resp] = "maybe", "true", "false"
    lines = [",".join(names)] + [",".join(r) for r in body]
    if bad_line:  # a field too many sends the block down the line-by-line path
        lines.insert(2, lines[1] + ",one too many")
    path = tmp_path / "conn.csv"
    path.write_text("\n".join(lines) + "\n")
    table, collector = collect("csv_file", path)

    bad = 4 + bad_line  # line of the "maybe" row
    assert [(q.file, q.line, q.field, q.reason) for q in collector.quarantined][-1] == (
        str(path), bad, "local_orig", "'maybe' is not a boolean (T/F, true/false, 0/1)")
    assert len(collector.quarantined) == 1 + bad_line
    kept = [r for i, r in enumerate(body) if i != 2]
    assert table.schema.field("local_orig").type == pa.bool_()
    assert table["local_orig"].to_pylist() == [r[orig] in ("T", "true") for r in kept]
    assert table["local_resp"].to_pylist() == [r[resp] in ("T", "true") for r in kept]
    assert table["flag"].to_pylist() == [r[-1] for r in kept]  # not Zeek's: text


def test_zeek_booleans_only_in_a_zeek_log_and_as_its_tsv_reads_them(datasets, tmp_path):
    files = datasets / "slips_zeek_tsv_test10" / "files.log"  # local_orig, is_orig, timedout
    exported = _exported(files, tmp_path / "files.csv")
    tsv, _ = collect("zeek_logs", files)
    csv_, collector = collect("csv_file", exported)
    assert collector.quarantined == [] and csv_.num_rows == tsv.num_rows == 6
    for name in ("local_orig", "is_orig", "timedout"):
        assert csv_[name].type == pa.bool_() and csv_[name].to_pylist() == tsv[name].to_pylist()
    # Without Zeek's ts and ids, a local_orig column is just a column.
    other = tmp_path / "other.csv"
    other.write_text("time,host,local_orig\n2024-06-01T00:00:00Z,web1,T\n"
                     "2024-06-01T00:00:01Z,web2,sometimes\n")
    table, collector = collect("csv_file", other)
    assert collector.quarantined == [] and table["local_orig"].to_pylist() == ["T", "sometimes"]


def _exported(log: Path, out: Path) -> Path:
    _as_csv(log, out)
    return out
