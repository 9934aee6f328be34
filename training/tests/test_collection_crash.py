"""A collection killed with SIGKILL mid-run resumes and delivers every event exactly once."""

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

from training.demo.generator import generate_demo_events
from training.tests.conftest import REPO


def _progress(out: Path) -> dict:
    try:
        return json.loads((out / "progress.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _command(inputs: list[Path], out: Path) -> list[str]:
    sources = [arg for i, path in enumerate(inputs) for arg in ("--source", f"f{i}=json:{path}")]
    return [sys.executable, "-m", "training.cli", "collect", *sources, "--output", str(out),
            "--block-size", "16384", "--checkpoint-every", "3"]


def test_sigkill_mid_collection_then_resume_delivers_each_event_once(tmp_path):
    events = generate_demo_events(4_000, seed=7)["events"]
    inputs = []
    for k, chunk in enumerate((events[:2_000], events[2_000:])):
        path = tmp_path / f"part{k}.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in chunk))
        inputs.append(path)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(_command(inputs, out), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    seen: dict = {}
    # Wait until at least one checkpoint is committed and a batch has been written past it.
    while time.monotonic() < deadline and child.poll() is None:
        seen = _progress(out)
        if seen.get("checkpoints", 0) >= 1 and seen.get("batches", 0) > seen.get("committed_batches", 0):
            break
    assert child.poll() is None, f"collection ended before it could be killed: {seen}"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL

    parts_before = sorted((out / "events").glob("part-*.parquet"))
    assert parts_before, "nothing was written before the kill"
    resumed = subprocess.run(_command(inputs, out), env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    ids = [i for part in sorted((out / "events").glob("part-*.parquet"))
           for i in pq.read_table(part, columns=["event_id"])["event_id"].to_pylist()]
    assert Counter(ids) == Counter(e["event_id"] for e in events)
    stats = json.loads(resumed.stdout)
    assert stats["events"] == len(events) and stats["duplicates"] == 0
    assert not list(out.rglob("*.tmp")), "a temporary file survived"
