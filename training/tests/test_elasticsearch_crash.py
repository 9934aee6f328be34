"""An Elasticsearch collection killed with SIGKILL mid-read resumes from its checkpoint and
delivers every document exactly once. The cluster is `FakeElasticsearch` (a stand-in: no cluster
can be installed here), running in this process; the collection runs in a child process through
`maximus-train collect --source es:URL/INDEX`, with the API key in the environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from training.tests.conftest import REPO
from training.tests.fake_elasticsearch import FakeElasticsearch
from training.tests.test_elasticsearch import API_KEY, _all_ids, _docs

DEADLINE_S = 120.0  # only a guard against a hang


def _progress(out: Path) -> dict:
    try:
        return json.loads((out / "progress.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _command(es: FakeElasticsearch, out: Path, *extra: str, slices: int = 2) -> list[str]:
    return [sys.executable, "-m", "training.cli", "collect", "--source",
            f"siem=es:{es.url}/logs-*", "--output", str(out), "--batch-size", "40",
            "--slices", str(slices), "--checkpoint-every", "1", *extra]


def _kill_mid_read(es: FakeElasticsearch, command: list[str], env: dict, out: Path,
                   pages: int) -> None:
    """Runs `command` until `pages` pages were served and a checkpoint is written, then SIGKILLs
    it; the server answers again afterwards."""
    es.hold_after_pages = pages  # every later search waits: the child cannot finish
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + DEADLINE_S
    seen: dict = {}
    while time.monotonic() < deadline and child.poll() is None:
        seen = _progress(out)
        if es.held.is_set() and seen.get("checkpoints", 0) >= 1:
            break
        es.held.wait(0.05)  # a bounded wait on a condition, not a sleep
    assert child.poll() is None, f"collection ended before it could be killed: {seen}"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    es.hold_after_pages = None
    es.release()


def _collected_ids(out: Path) -> list[str]:
    return [i for part in sorted((out / "events").glob("part-*.parquet"))
            for i in pq.read_table(part, columns=["event_id"])["event_id"].to_pylist()]


def test_sigkill_mid_read_then_resume_delivers_each_document_once(tmp_path):
    indices = {"logs-a": _docs(600, prefix="a"), "logs-b": _docs(400, prefix="b")}
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "MAXIMUS_ES_API_KEY": API_KEY}
    with FakeElasticsearch(indices, api_key=API_KEY) as es:
        _kill_mid_read(es, _command(es, out), env, out, pages=8)

        parts_before = sorted((out / "events").glob("part-*.parquet"))
        assert parts_before, "nothing was written before the kill"
        resumed = subprocess.run(_command(es, out), env=env, capture_output=True, text=True,
                                 timeout=DEADLINE_S)
        assert resumed.returncode == 0, resumed.stderr
        assert Counter(_collected_ids(out)) == _all_ids(es)
        stats = json.loads(resumed.stdout)
        assert stats["events"] == 1000 and stats["duplicates"] == 0
        # The resumed run read only what was left; both runs' slices were the same two.
        assert all(s == {(0, 2), (1, 2)} for s in es.slices_read.values())
        assert len(es.pits_opened) == 2 and es.open_pits == {es.pits_opened[0]}  # the killed one
        checkpoint = (out / "checkpoint.json").read_text()
        assert API_KEY not in checkpoint and API_KEY not in resumed.stderr


@pytest.mark.parametrize("dedup", [[], ["--no-dedup"]], ids=["dedup", "no-dedup"])
def test_a_resume_inside_a_timestamp_shared_by_more_documents_than_a_page_delivers_none_twice(
        tmp_path, dedup):
    # 150 documents share each millisecond, pages hold 40: the killed run stops inside the
    # first tie, and the resume reads several pages of that timestamp again in a new view.
    docs = _docs(450, per_timestamp=150)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "MAXIMUS_ES_API_KEY": API_KEY}
    with FakeElasticsearch({"logs-a": docs}, api_key=API_KEY) as es:
        command = _command(es, out, *dedup, slices=1)
        _kill_mid_read(es, command, env, out, pages=2)
        position = json.loads((out / "checkpoint.json").read_text())["positions"]["siem"]["all"]
        assert 40 <= position["record"] < 150 and len(position["tied"]) == position["record"]
        docs.reverse()  # a segment merge before the resume: every _shard_doc changes

        resumed = subprocess.run(command, env=env, capture_output=True, text=True,
                                 timeout=DEADLINE_S)
        assert resumed.returncode == 0, resumed.stderr
        ids = _collected_ids(out)
        assert len(ids) == 450 and Counter(ids) == _all_ids(es)
        stats = json.loads(resumed.stdout)
        assert stats["duplicates"] == 0 and stats["rows"] == 450
