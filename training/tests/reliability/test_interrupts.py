"""Interrupts: a real SIGINT (Ctrl-C) sent to a command held at a chosen point of its writes.

The child is paused by a fault (faults.py, action "pause") at a write or a rename of one of its
outputs; the test sends it SIGINT there, so the interrupt lands at a known step, then lets it
go on. Batch `score` writes its scores and the files beside them (incidents, alerts page,
quarantined records) as one set: after an interrupt the set is the earlier run's, untouched,
or the new run's, complete, never a mix of the two.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from training.tests.reliability.harness import (
    assert_ok, finish, run_child, start_child, temporaries, wait_for,
)
from training.tests.reliability.pipeline_runs import cli_code

pytestmark = pytest.mark.reliability

LOG = "stratosphere/008-zeek-mixed/data/conn.log.labeled"
SIDECARS = ("x.incidents.parquet", "x.alerts.json", "x.alerts.html", "x.quarantine.jsonl")
# TinyDetector is registered when its module is imported: the child imports it before the CLI.
SCORE = "import training.tests.registry_fixtures\n"


def _zeek_slices(datasets: Path, directory: Path) -> tuple[Path, Path]:
    """Two Zeek conn logs cut from the Stratosphere 008 one: `old.log`, its first 300
    connections with one port out of range (a quarantined record), and `new.log`, the next
    1,000 connections."""
    lines = (datasets / LOG).read_text().splitlines(keepends=True)
    head = [x for x in lines if x.startswith("#") and not x.startswith("#close")]
    data = [x for x in lines if not x.startswith("#")]
    cells = data[5].split("\t")
    cells[5] = "70000"  # id.resp_p
    old, new = directory / "old.log", directory / "new.log"
    old.write_text("".join(head + data[:5] + ["\t".join(cells)] + data[6:300]))
    new.write_text("".join(head + data[300:1300]))
    return old, new


def _score(directory: Path, log: Path, output: Path) -> str:
    return SCORE + cli_code("-q", "score", "--model", "tiny", "--registry-dir",
                            str(directory / "models"), "--input", f"zeek:{log}",
                            "--output", str(output))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def scored_before(tmp_path, datasets) -> dict:
    """A registry with model "tiny", and a finished `score` of old.log into sc/x.parquet."""
    from training.registry.registry import ModelMetadata, ModelRegistry
    from training.tests.registry_fixtures import save_tiny

    registry = ModelRegistry(tmp_path / "models")
    weights = save_tiny(tmp_path / "src" / "tiny.pt", centre=0.25, dim=128, threshold=30.0)
    registry.register_model(weights, ModelMetadata("tiny", "1.0.0", "layer1",
                                                   stage="production"))
    old, new = _zeek_slices(datasets, tmp_path)
    out = tmp_path / "sc"
    assert_ok(run_child(_score(tmp_path, old, out / "x.parquet")))
    assert sorted(p.name for p in out.iterdir()) == sorted(["x.parquet", *SIDECARS])
    return {"new": new, "out": out, "before": _files(out)}


def test_score_interrupted_while_writing_incidents_keeps_the_earlier_set(
        tmp_path, scored_before, observed):
    """Stage: scoring
    Fault: SIGINT (Ctrl-C) while `score` writes the incidents file, its scores of new events
        all written, over the output of an earlier run (scores, incidents, alerts page, a
        quarantine file). Before, the new scores file was already in place: 1,000 new rows
        beside the earlier run's incidents and alerts page.
    Expected: exit 130 with `error: interrupted`; every file of the earlier run is as it was,
        byte for byte; no temporary file or folder is left.
    """
    out, flag = scored_before["out"], tmp_path / "paused"
    child = start_child(_score(tmp_path, scored_before["new"], out / "x.parquet"),
                        {"action": "pause", "pattern": "*x.incidents.parquet*",
                         "flag": str(flag)})
    wait_for(flag, child)
    os.kill(child.pid, signal.SIGINT)
    result = finish(child)
    assert result.returncode == 130, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == "error: interrupted"
    assert _files(out) == scored_before["before"]
    assert temporaries(tmp_path) == []
    observed(f"exit 130; {len(scored_before['before'])} files of the earlier run unchanged, "
             "no temporary left")


def test_score_interrupted_while_publishing_completes_the_new_set(
        tmp_path, scored_before, observed):
    """Stage: scoring
    Fault: SIGINT (Ctrl-C) while `score` renames its finished outputs into place, held just
        before the incidents file's rename (the scores file already renamed), over the output
        of an earlier run that quarantined a record where this one quarantines none.
    Expected: the renames finish first, then exit 130 with `error: interrupted`: the scores,
        incidents and alerts page are those of an uninterrupted run of the same input, and
        the earlier run's quarantine file is gone; no temporary file or folder is left.
    """
    out, flag = scored_before["out"], tmp_path / "paused"
    child = start_child(_score(tmp_path, scored_before["new"], out / "x.parquet"),
                        {"action": "pause", "pattern": "x.incidents.parquet", "at": "replace",
                         "nth": 2, "flag": str(flag)})  # the 1st: its write in the staging folder
    wait_for(flag, child)
    os.kill(child.pid, signal.SIGINT)
    (tmp_path / "paused.go").touch()
    result = finish(child)
    assert result.returncode == 130, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == "error: interrupted"

    assert_ok(run_child(_score(tmp_path, scored_before["new"], tmp_path / "ref" / "x.parquet")))
    expected = _files(tmp_path / "ref")
    assert sorted(_files(out)) == sorted(expected) == ["x.alerts.html", "x.alerts.json",
                                                       "x.incidents.parquet", "x.parquet"]
    for name in ("x.parquet", "x.incidents.parquet"):
        assert pq.read_table(out / name).equals(pq.read_table(tmp_path / "ref" / name))
    assert pq.read_metadata(out / "x.parquet").num_rows == 1000
    assert _files(out)["x.alerts.json"] == expected["x.alerts.json"]
    assert temporaries(tmp_path) == []
    observed("exit 130 after the renames: the new run's 4 files in place, the earlier "
             "quarantine file removed")
