"""Concurrency: several processes on one output at once are either safe or refused with a clear
lock error; the output is never corrupted."""

from __future__ import annotations

from collections import Counter

import pytest

from training.tests.reliability.harness import (
    assert_ok, demo_inputs, finish, last_json, run_child, start_child, wait_for,
)
from training.tests.reliability.test_crashes import COLLECT, _collected_ids, _quarantined_lines

pytestmark = pytest.mark.reliability


def test_parallel_collectors_on_one_directory(tmp_path, observed):
    """Stage: collection
    Fault: a second `collect_to` process started on the same output directory while the first
        is held between two checkpoints (paused just before its second checkpoint rename).
    Expected: the second process exits with CheckpointError "in use by another collection"
        and writes nothing; the first finishes; a later run resumes with nothing new. Every
        event is in the output exactly once, every bad line quarantined once.
    """
    paths, events, bad = demo_inputs(tmp_path, n_events=300, n_files=2, bad_every=53)
    out = tmp_path / "out"
    code = COLLECT.format(paths=[str(p) for p in paths], out=str(out))
    flag = tmp_path / "paused"
    first = start_child(code, {"action": "pause", "pattern": "checkpoint.json", "at": "replace",
                               "nth": 2, "flag": str(flag)})
    wait_for(flag, first)
    before = sorted(p.name for p in out.rglob("*"))
    rival = run_child(code)
    assert rival.returncode == 1, rival.stderr[-3000:]
    assert "CheckpointError" in rival.stderr and "in use by another collection" in rival.stderr
    assert sorted(p.name for p in out.rglob("*")) == before  # the rival touched nothing
    (tmp_path / "paused.go").touch()
    stats = last_json(finish(first))
    assert stats["events"] == len(events) and stats["quarantined"] == len(bad)

    again = last_json(run_child(code))
    assert again["events"] == len(events) and again["duplicates"] == 0
    assert _collected_ids(out) == Counter(e["event_id"] for e in events)
    assert _quarantined_lines(out) == Counter(bad)
    observed(rival.stderr.strip().splitlines()[-1])
