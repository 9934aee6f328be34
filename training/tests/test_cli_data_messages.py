"""What `preprocess` and `validate` say about bad input: preprocess writes its quarantined
records (file, line, field, reason) as collect does, and validate, given an export instead of a
feature file, says what it takes and what to run on the export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.cli.main import main

IOT23 = "iot23/CTU-Malware-Capture-44-1-labeled.csv"


@pytest.fixture
def broken_csv(datasets, tmp_path) -> Path:
    """The first 40 rows of a real IoT-23 capture, three of them broken (rows 11, 21, 31)."""
    lines = (datasets / IOT23).read_text().splitlines()[:41]
    lines[10] = lines[10].replace(",80,tcp,", ",70000,tcp,", 1)
    fields = lines[20].split(",")
    lines[20] = ",".join([fields[0], fields[1], "1.2.3", *fields[3:]])
    lines[30] = ",".join(lines[30].split(",")[:18])
    path = tmp_path / "iot_bad.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_preprocess_writes_its_quarantine_as_collect_does(broken_csv, tmp_path, capsys):
    out = tmp_path / "pre"
    assert main(["-q", "preprocess", "--source", f"csv:{broken_csv}", "--output", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["events"] == 37 and printed["quarantined"] == 3
    assert printed["quarantine"] == str(out / "quarantine.jsonl")
    assert printed["quarantine_reasons"] == {"expected 23 fields, found 18": 1, "id.orig_h": 1,
                                             "id.resp_p": 1}
    quarantined = _records(out / "quarantine.jsonl")
    assert [(r["file"], r["line"], r["field"]) for r in quarantined] == [
        (str(broken_csv), 11, "id.resp_p"), (str(broken_csv), 21, "id.orig_h"),
        (str(broken_csv), 31, None)]
    assert quarantined[0]["reason"] == "id.resp_p = 70000 is not a port in 0..65535"
    # The very records collect quarantines (collect adds the source's name).
    assert main(["-q", "collect", "--source", f"csv:{broken_csv}", "--output",
                 str(tmp_path / "collected")]) == 0
    assert json.loads(capsys.readouterr().out)["quarantine_reasons"] == printed[
        "quarantine_reasons"]
    collected = _records(tmp_path / "collected" / "quarantine.jsonl")
    assert [{k: v for k, v in r.items() if k != "source"} for r in collected] == quarantined
    # Rewritten by every run: a clean rerun leaves no earlier record behind.
    clean = tmp_path / "clean.csv"
    clean.write_text("\n".join(broken_csv.read_text().splitlines()[:10]) + "\n")  # rows 1-9
    assert main(["-q", "preprocess", "--source", f"csv:{clean}", "--output", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["quarantined"] == 0
    assert (out / "quarantine.jsonl").read_text() == ""


def _error_line(err: str) -> str:
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err.rstrip("\n")


def test_validate_given_an_export_says_what_it_takes_and_what_to_run(datasets, capsys):
    csv = datasets / IOT23
    assert main(["validate", "--data", str(csv)]) == 2
    assert _error_line(capsys.readouterr().err) == (
        f"error: --data {csv} is not a .npz feature file, the only input validate checks "
        "(preprocess and split write them); for events (a CSV, JSON or log export) run "
        f"`maximus-train preprocess --source csv:{csv}` first, or `maximus-train collect "
        f"--source csv:{csv} --output DIR` to check its records (each bad one quarantined with "
        "its file, line and reason)")
    # A JSON export's type is not in its name: TYPE, and the types to choose from.
    eve = datasets / "suricata/slips_test6-malicious.suricata.json"
    assert main(["validate", "--data", str(eve)]) == 2
    line = _error_line(capsys.readouterr().err)
    assert line.startswith(f"error: --data {eve} is not a .npz feature file")
    assert f"`maximus-train preprocess --source TYPE:{eve}` first" in line
    assert line.endswith("; TYPE as in collect --source: json, zeek, suricata, windows")
