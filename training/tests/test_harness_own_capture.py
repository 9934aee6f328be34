"""A capture of your own in the detection harness (training/evaluation/harness/own.py): named by
its path in `load_capture` and `benchmarks/detection_harness.py --captures`, cut at its median
time, with notes on its label-separating fields and its too-small parts; on the real CTU-SME-11
extract (a labeled Zeek conn log) and on small hand-made CSVs."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from training.errors import ConfigError, SourceError
from training.evaluation.harness import (
    BASELINES, CANDIDATES, HarnessConfig, load_capture, run_harness,
)

REPO = Path(__file__).resolve().parents[2]
SME = Path("../shared/datasets/slips_ctu_sme_11_labeled_zeek/zeek-labeled/conn.log.labeled")
needs_sme = pytest.mark.skipif(not SME.is_file(), reason=f"{SME} is not here")


def _counts(table: pa.Table) -> dict[int, int]:
    values, counts = np.unique(table["is_threat"].to_numpy(zero_copy_only=False),
                               return_counts=True)
    return dict(zip(values.tolist(), counts.tolist()))


@needs_sme
def test_a_path_is_a_capture_cut_at_its_median_time():
    capture = load_capture(str(SME))
    assert (capture.name, capture.role) == (str(SME), "evaluation")
    # 766 conn events (719 threats, 44 benign, 3 unknown): the first half's 22 benign ones fit,
    # the later 5 of them validate; the second half (361 threats, 22 benign) is scored.
    assert (_counts(capture.train), _counts(capture.val)) == ({0: 17}, {0: 5})
    assert _counts(capture.test) == {0: 22, 1: 361}
    assert max(capture.train["timestamp"].to_pylist()) < min(capture.val["timestamp"].to_pylist())
    assert max(capture.val["timestamp"].to_pylist()) < min(capture.test["timestamp"].to_pylist())


@needs_sme
def test_its_run_notes_the_separating_fields_and_the_small_parts():
    config = HarnessConfig(captures=[str(SME)], layers=["layer1"], seeds=[0], epochs=1,
                           bootstrap=20, methods=(BASELINES[0], BASELINES[2], CANDIDATES[0]))
    entry = run_harness(config)["captures"][str(SME)]
    assert entry["rows"] == {"train": 17, "val": 5, "test": 383}
    assert entry["notes"] == [
        "field dest_ip separates the labels: 66.63.168.35 holds 361 of 361 threats and 0 of 44 "
        "benign events - a leak? Drop it with --drop-field dest_ip",
        "field dest_port separates the labels: 5888 holds 361 of 361 threats and 0 of 44 benign "
        "events - a leak? Drop it with --drop-field dest_port",
        "field history separates the labels: Sr, S hold 361 of 361 threats and 0 of 44 benign "
        "events - a leak? Drop it with --drop-field history",
        "layer1: its training part holds 17 events, fewer than the 50 it needs to learn from",
        "layer1: 5 validation events, fewer than the 20 a threshold needs (the fused score's "
        "tail probabilities rest on them)"]
    unit = entry["layers"]["layer1"]["levels"]["unit"]
    assert (unit["labeled"], unit["positive"]) == (383, 361)


def _harness_cli(argv: list[str], monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["detection_harness.py", *argv])
    runpy.run_path(str(REPO / "benchmarks/detection_harness.py"), run_name="__main__")


@needs_sme
def test_the_cli_takes_a_path_and_leaves_the_benchmarks_file_alone(tmp_path, monkeypatch, capsys):
    benchmarks = tmp_path / "BENCHMARKS.md"
    benchmarks.write_text("the product's tables\n")
    out = tmp_path / "mine.json"
    with pytest.raises(SystemExit) as exited:
        _harness_cli(["--captures", str(SME), "--layers", "layer1", "--seeds", "0", "--epochs",
                      "1", "--bootstrap", "20", "--jobs", "1", "--benchmarks", str(benchmarks),
                      "--out", str(out)], monkeypatch)
    assert exited.value.code == 0
    assert benchmarks.read_text() == "the product's tables\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["BENCHMARKS.md", "mine.json"]
    printed = capsys.readouterr()
    assert f"| {SME} | evaluation | layer1 | default (Layer1VAE) |" in printed.out
    assert f"the tables of {SME} (layer1) are not written into {benchmarks}: only a run of " \
           "every capture and layer is" in printed.err


def test_a_run_of_some_named_captures_leaves_the_benchmarks_file_alone(datasets, tmp_path,
                                                                      monkeypatch, capsys):
    """BENCHMARKS.md's own example (--captures iot23-44 ...) replaced the tables of all eight
    captures with its one (trial W)."""
    benchmarks = tmp_path / "BENCHMARKS.md"
    benchmarks.write_text("the product's tables\n")
    with pytest.raises(SystemExit) as exited:
        _harness_cli(["--captures", "iot23-44", "--layers", "layer1", "--seeds", "0",
                      "--epochs", "1", "--bootstrap", "20", "--jobs", "1", "--datasets",
                      str(datasets), "--benchmarks", str(benchmarks)], monkeypatch)
    assert exited.value.code == 0
    assert benchmarks.read_text() == "the product's tables\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["BENCHMARKS.md"]  # nor a JSON
    assert "| iot23-44 | development | layer1 |" in capsys.readouterr().out


def test_the_cli_names_the_captures_it_knows(monkeypatch, capsys):
    with pytest.raises(SystemExit) as exited:
        _harness_cli(["--captures", "iot23-99"], monkeypatch)
    assert exited.value.code == 2
    assert ("unknown capture(s) iot23-99; known: iot23-42, iot23-44, demo, iot23-20, iot23-21, "
            "strat-011-to-008, strat-008-to-011, nsl-kdd, or the path of a capture of your own"
            in capsys.readouterr().err)


def test_an_unknown_name_or_a_missing_path_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="known: iot23-42, .*, or the path of a labeled capture"):
        load_capture("iot23-99")
    with pytest.raises(SourceError, match="mine.csv: no such file or folder"):
        load_capture(str(tmp_path / "mine.csv"))


def _csv(path: Path, labels: list[str]) -> str:
    rows = [f"2024-01-01T00:00:{i:02d}Z,10.0.0.1,10.0.0.2,{80 + i},tcp,{label}"
            for i, label in enumerate(labels)]
    path.write_text("timestamp,source_ip,dest_ip,dest_port,protocol,label\n" + "\n".join(rows))
    return str(path)


def test_a_capture_without_what_the_protocol_needs_says_what_is_missing(tmp_path):
    with pytest.raises(ConfigError, match="no benign rows in its first half .to fit on.; the "
                                          "harness fits on the benign rows before the median"):
        load_capture(_csv(tmp_path / "a.csv", ["attack"] * 2 + ["normal", "attack"]))
    with pytest.raises(ConfigError, match="no threats in its second half; the harness"):
        load_capture(_csv(tmp_path / "b.csv", ["normal", "attack", "normal", "normal"]))
    capture = load_capture(_csv(tmp_path / "c.csv", ["normal"] * 6 + ["attack", "normal"] * 3))
    assert (_counts(capture.train), _counts(capture.val), _counts(capture.test)) == \
        ({0: 4}, {0: 2}, {0: 3, 1: 3})
