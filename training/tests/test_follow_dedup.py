"""Live scoring drops an event id seen among the recent ones, as batch `score` drops one seen
before, across restarts (`training.scoring.follow_dedup`); --no-dedup keeps them."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from training.cli.main import main
from training.scoring.follow import FollowOutputs, follow_events
from training.scoring.follow_dedup import RecentIds
from training.scoring.follow_state import FollowState
from training.sources.config import DataSource
from training.tests.test_follow import _register

EVE = "suricata/slips_test6-malicious.suricata.json"


def _ids(*ids: str) -> pa.Table:
    return pa.table({"event_id": pa.array(ids, pa.string())})


def test_the_last_recent_ids_are_remembered_across_commits_and_generations(tmp_path):
    state = FollowState(tmp_path / "state")
    dedup = RecentIds(state, recent=3)
    kept, dropped = dedup.keep_new(_ids("a", "b", "a", "c"))
    assert (kept["event_id"].to_pylist(), dropped) == (["a", "b", "c"], 1)
    kept, dropped = dedup.keep_new(_ids("d", "b", "a"))  # a left the last 3 (b, c, d)
    assert (kept["event_id"].to_pylist(), dropped) == (["d", "a"], 1)
    assert dedup.generation == 0
    kept, _ = dedup.keep_new(_ids("e", "f"))  # 7 ids > 2 x 3: the next file, the last 3
    assert dedup.generation == 1
    state.commit([], [dedup.file], {}, {}, dedup=dedup.saved())
    dedup.committed()
    dedup.close()
    state.close()
    assert sorted(p.name for p in (tmp_path / "state").glob("ids-*.bin")) == ["ids-1.bin"]
    state = FollowState(tmp_path / "state")  # a restart reads the recent ids back
    again = RecentIds(state, recent=3)
    kept, dropped = again.keep_new(_ids("a", "d", "e", "f", "g"))
    assert (kept["event_id"].to_pylist(), dropped) == (["d", "g"], 3)
    with pytest.raises(ValueError, match="recent must be >= 1, got 0"):
        RecentIds(state, recent=0)


def test_a_line_written_again_is_dropped_across_restarts_as_batch_score_does(datasets,
                                                                            tmp_path, capsys):
    registry = _register(tmp_path)
    lines = (datasets / EVE).read_bytes().splitlines(keepends=True)[:300]
    live = tmp_path / "eve.json"
    live.write_bytes(b"".join(lines[:200] + lines[150:151]))  # a shipper re-sends a line
    outputs = FollowOutputs(alerts=tmp_path / "alerts.jsonl", state=tmp_path / "state",
                            scores=tmp_path / "scores.jsonl")
    sources = [DataSource("eve", "suricata", {"path": str(live)})]
    first = follow_events(registry, "vae", sources, outputs, once=True)
    assert first.counts["duplicates"] == 1
    with live.open("ab") as out:  # after a restart: 10 lines again, then the rest
        out.write(b"".join(lines[190:200] + lines[200:]))
    second = follow_events(registry, "vae", sources, outputs, once=True)
    assert second.counts["duplicates"] == 11
    rows = [json.loads(x) for x in (tmp_path / "scores.jsonl").read_text().splitlines()]
    ids = [i for r in rows for i in r["event_ids"]]
    assert len(ids) == len(set(ids)) == second.counts["events"]

    assert main(["-q", "score", "--registry-dir", str(tmp_path / "models"), "--model", "vae",
                 "--input", f"suricata:{live}", "--output", str(tmp_path / "again.jsonl"),
                 "--alerts", str(tmp_path / "again-alerts.jsonl"), "--once"]) == 0
    assert ("11 duplicate events (an event id seen before, among the last 100,000 kept) "
            "dropped; --no-dedup keeps them") in capsys.readouterr().out
    assert main(["-q", "score", "--registry-dir", str(tmp_path / "models"), "--model", "vae",
                 "--input", f"suricata:{live}", "--output", str(tmp_path / "kept.jsonl"),
                 "--alerts", str(tmp_path / "kept-alerts.jsonl"), "--once", "--no-dedup"]) == 0
    assert "duplicate" not in capsys.readouterr().out
    kept = [json.loads(x) for x in (tmp_path / "kept.jsonl").read_text().splitlines()]
    assert len(kept) == len(rows) + 11
