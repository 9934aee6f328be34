"""Interrupts of `collect`: a real SIGINT sent while the command is held at the rename of an
event part (faults.py, action "pause"), so the interrupt lands before or after a commit. The
error line says what was kept, which is what a rerun resumes from (trial D8)."""

from __future__ import annotations

import json
import os
import re
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


def _collect(datasets: Path, out: Path) -> str:
    # A part and a checkpoint per batch (by default a part holds 5 s of batches).
    return cli_code("collect", "--source", f"zeek:{datasets / LOG}", "--output", str(out),
                    "--block-size", "200000", "--checkpoint-every", "1")


def _interrupted(tmp_path: Path, datasets: Path, out: Path, part: str):
    flag = tmp_path / "paused"
    child = start_child(_collect(datasets, out), {"action": "pause", "pattern": part,
                                                  "at": "replace", "flag": str(flag)})
    wait_for(flag, child)
    os.kill(child.pid, signal.SIGINT)
    (tmp_path / "paused.go").touch()
    result = finish(child)
    assert result.returncode == 130, result.stderr[-3000:]
    assert not re.search(r"collecting: [\d,]+ events in ", result.stderr)  # "done" lines
    return result.stderr.strip().splitlines()[-1]


def test_collect_interrupted_before_its_first_commit_keeps_nothing(tmp_path, datasets,
                                                                   observed):
    """Stage: collection
    Fault: SIGINT (Ctrl-C) while `collect` into a new folder renames its first event part
        into place, before any checkpoint. Before, it printed "collecting: N events in T s"
        and "error: interrupted", and left the folder with its lock.
    Expected: exit 130; the error line says nothing was kept and the folder it made is
        removed; no progress line claims events collected.
    """
    out = tmp_path / "made" / "out"
    line = _interrupted(tmp_path, datasets, out, "part-000000.parquet")
    assert line == (f"error: interrupted: nothing was kept (no batch had been committed); "
                    f"{out}, which it made, is removed")
    assert not (tmp_path / "made").exists()
    observed(line)


def test_collect_interrupted_after_a_commit_says_what_is_kept(tmp_path, datasets, observed):
    """Stage: collection
    Fault: SIGINT (Ctrl-C) while `collect` renames its second event part into place, the
        first committed.
    Expected: exit 130; the error line gives the events of the last checkpoint (those of the
        first part) and says to rerun; the rerun resumes there and ends with every event of
        the log, each once, as an uninterrupted run does; no temporary file is left.
    """
    out = tmp_path / "out"
    line = _interrupted(tmp_path, datasets, out, "part-000001.parquet")
    kept = pq.read_metadata(out / "events" / "part-000000.parquet").num_rows
    assert json.loads((out / "checkpoint.json").read_text())["stats"]["events"] == kept > 0
    assert line == (f"error: interrupted: the events up to its last checkpoint are kept: "
                    f"{kept:,} in {out / 'events'}; run the same command again to resume there")
    assert temporaries(out) == []
    resumed = json.loads(assert_ok(run_child(_collect(datasets, out))))
    whole = json.loads(assert_ok(run_child(_collect(datasets, tmp_path / "whole"))))
    assert resumed["events"] == whole["events"] > kept
    parts = [pq.read_table(p) for p in sorted((out / "events").glob("part-*.parquet"))]
    ids = [i for part in parts for i in part["event_id"].to_pylist()]
    assert len(ids) == len(set(ids)) == whole["events"]
    observed(f"{line}; the rerun ended with {resumed['events']:,} events, as a whole run")
