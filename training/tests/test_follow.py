"""Live scoring (`score --follow | --once`): exactly once across SIGKILL and log rotation, ECS
alerts into Elasticsearch through the bulk API with refused items retried or reported."""

from __future__ import annotations

import collections
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from training.artifacts.model_files import save_model
from training.cli.main import main
from training.detectors.vae import Layer1VAE
from training.features.layer1 import Layer1Featurizer
from training.registry.registry import ModelMetadata, ModelRegistry
from training.scoring.ecs import AlertRule, alert_id
from training.scoring.follow import FollowOutputs, FollowSummary, follow_events
from training.sources.config import DataSource
from training.tests.fake_es_bulk import FakeElasticsearchBulk
from training.tests.zeek_writer import header, line

ECS_FIELDS = ("@timestamp", "event.kind", "event.risk_score", "rule.name", "source.ip",
              "destination.port", "related.ip")


def _vae() -> Layer1VAE:
    torch.manual_seed(0)
    return Layer1VAE().eval()


@functools.cache
def _threshold() -> float:
    """The median score of the untrained VAE (seed 0) on the writer's conn lines, so that
    about half of them alert (whatever the layer-1 layout makes of them)."""
    from training.collection.collector import DataCollector
    from training.layers.registry import get_layer

    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "conn.log"
        log.write_text(header(0.0) + "".join(line(n, 1.7e9 + n) for n in range(500)))
        events = DataCollector([DataSource("z", "zeek", {"path": str(log)})],
                               checkpoint_enabled=False, progress=False).collect_table()
    layer = get_layer("layer1")()  # the default layout, as Layer1Featurizer().spec
    return float(np.median(layer.score(_vae(), layer.featurize(events))))


def _register(root: Path) -> ModelRegistry:
    weights = root / "src" / "vae.pt"
    save_model(_vae(), weights, feature_spec=Layer1Featurizer().spec, threshold=_threshold())
    registry = ModelRegistry(root / "models")
    registry.register_model(weights, ModelMetadata("vae", "1.0.0", "layer1", stage="production"))
    return registry


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _field(doc: dict, name: str) -> object:
    for part in name.split(".") if name != "@timestamp" else [name]:
        doc = doc[part]
    return doc


def _wait(what: str, ready, timeout: float = 180.0,
          scorer: subprocess.Popen | None = None) -> None:
    """Poll `ready` until it holds; fail after `timeout` s (generous: a fresh-clone CI run once
    took over 60 s to score 600 events here, on a slow, shared machine), or at once when
    `scorer` exited (with what it printed)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if scorer is not None and scorer.poll() is not None:
            out, err = scorer.communicate()
            raise AssertionError(f"the scorer exited ({scorer.returncode}) before {what}: "
                                 f"{out!r} {err!r}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


WRITTEN = 1500  # lines the writer appends in `kill_mid_stream`


def kill_mid_stream(root: Path, model: str, killed_at: int, *flags: str
                    ) -> tuple[subprocess.Popen, subprocess.Popen, int]:
    """Follow root/logs/conn.log with `model` (`score --follow`, scores to root/scores.jsonl,
    alerts to root/alerts.jsonl) while the Zeek writer appends 1,500 lines at 500 a second,
    rotating every 400; SIGKILL the scorer once `killed_at` units are scored and start it
    again. Returns the restarted scorer, the writer, and the units scored at the kill."""
    logs, scores = root / "logs", root / "scores.jsonl"
    logs.mkdir()
    (logs / "conn.log").write_text(header(time.time()))  # the sensor's live file, header only
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    command = [sys.executable, "-m", "training.cli", "score", "--model", model, "--registry-dir",
               str(root / "models"), "--input", f"zeek:{logs / 'conn.log'}", "--output",
               str(scores), "--alerts", str(root / "alerts.jsonl"), "--follow",
               "--poll-interval", "0.05", *flags]
    scorer = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait("the scorer's first checkpoint", (root / "scores.jsonl.state" / "state.json").exists,
          scorer=scorer)
    writer = subprocess.Popen([sys.executable, "-m", "training.tests.zeek_writer", str(logs),
                               "--events", str(WRITTEN), "--rate", "500", "--rotate-every",
                               "400"], env=env, stdout=subprocess.PIPE, text=True)
    _wait(f"{killed_at} scored units", lambda: _lines(scores) >= killed_at, scorer=scorer)
    scorer.send_signal(signal.SIGKILL)
    scorer.wait()
    at_kill = _lines(scores)
    restarted = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
    assert writer.wait(timeout=60) == 0
    return restarted, writer, at_kill


def test_sigkilled_scorer_resumes_across_rotation_exactly_once(tmp_path):
    _register(tmp_path)
    logs, scores, alerts = tmp_path / "logs", tmp_path / "scores.jsonl", tmp_path / "alerts.jsonl"
    restarted, writer, at_kill = kill_mid_stream(tmp_path, "vae", 600)
    rotations = [x for x in writer.stdout.read().split("\n") if x.startswith("rotated")]
    _wait("every event scored", lambda: _lines(scores) >= WRITTEN, scorer=restarted)
    # Two more lines, each written once the one before is scored: two more polls have read
    # the files after the writer's last event, so a re-read would show as a duplicate. (An
    # idle scorer leaves its state file alone: its rewrite is no sign of a poll.)
    total = WRITTEN + 2
    for n in range(WRITTEN, total):
        with open(logs / "conn.log", "a") as live:
            live.write(line(n, time.time()))
        _wait(f"event {n} scored", lambda: _lines(scores) >= n + 1, scorer=restarted)
    restarted.send_signal(signal.SIGTERM)  # clean stop: finish the batch, checkpoint, exit 0
    out, err = restarted.communicate(timeout=60)
    assert restarted.returncode == 0, err
    assert f"{total:,} events scored" in out

    assert at_kill < total and len(rotations) == 3
    assert len(list(logs.glob("conn.*.log"))) == 3
    rows = _jsonl(scores)
    scored = collections.Counter(r["unit"] for r in rows)
    assert sorted(scored) == [f"conn:C{n:08d}" for n in range(total)]
    assert set(scored.values()) == {1}  # each event scored exactly once
    docs = _jsonl(alerts)
    alerted = collections.Counter(d["maximus"]["unit"] for d in docs)
    expected = {r["unit"] for r in rows if r["score"] >= _threshold()}
    assert set(alerted) == expected and set(alerted.values()) == {1}  # none lost, none doubled
    assert 0.2 * total < len(expected) < 0.8 * total
    assert all(d["event"]["kind"] == "alert" for d in docs)


class _CountedStop(threading.Event):
    """The `stop` of `follow_events`, counting the pauses: the loop waits on it once after
    each poll that caught up, once that poll is committed."""

    def __init__(self) -> None:
        super().__init__()
        self.pauses = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.pauses += 1
        return super().wait(timeout)


class _Follower:
    """`follow_events` of tmp_path/conn.log (20 events) in a thread, polling every 20 ms."""

    def __init__(self, tmp_path: Path, checkpoint_seconds: float) -> None:
        registry = _register(tmp_path)
        self.log, self.state = tmp_path / "conn.log", tmp_path / "state"
        self.scores = tmp_path / "scores.jsonl"
        _conn_log(self.log, 20)
        outputs = FollowOutputs(alerts=tmp_path / "alerts.jsonl", state=self.state,
                                scores=self.scores, incidents=tmp_path / "incidents.jsonl")
        self.stop, self.done = _CountedStop(), {}

        def follow() -> None:
            try:
                self.done["summary"] = follow_events(
                    registry, "vae", [DataSource("z", "zeek", {"path": str(self.log)})],
                    outputs, poll_seconds=0.02, stop=self.stop,
                    checkpoint_seconds=checkpoint_seconds)
            except BaseException as exc:  # the test's thread reports it
                self.done["error"] = exc

        self.thread = threading.Thread(target=follow, daemon=True)
        self.thread.start()

    def polls(self, n: int) -> None:  # n more polls
        target = self.stop.pauses + n
        _wait(f"{n} more polls", lambda: self.stop.pauses >= target or "error" in self.done,
              timeout=60)

    def scored(self, n: int) -> None:
        _wait(f"{n} events scored", lambda: _lines(self.scores) >= n or "error" in self.done)

    def append(self, first: int, n: int) -> None:
        with open(self.log, "a") as out:
            out.write("".join(line(i, 1_765_000_000.0 + i) for i in range(first, first + n)))

    def finish(self) -> FollowSummary:
        self.stop.set()
        self.thread.join(timeout=60)
        assert "error" not in self.done, self.done.get("error")
        return self.done["summary"]


def test_an_idle_follower_leaves_its_state_file_alone_and_saves_new_lines(tmp_path):
    follower = _Follower(tmp_path, checkpoint_seconds=0)  # a checkpoint after every poll
    state_file = follower.state / "state.json"
    try:
        follower.scored(20)
        follower.polls(1)
        before = state_file.stat()
        follower.polls(5)
        after = state_file.stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        follower.append(20, 2)
        follower.scored(22)
        follower.polls(1)
        saved = json.loads(state_file.read_text())
    finally:
        summary = follower.finish()
    assert state_file.stat().st_ino != before.st_ino  # replaced: written again
    assert saved["counts"]["events"] == 22
    assert [p["offset"] for p in saved["positions"]] == [follower.log.stat().st_size]
    assert summary.polls >= 8 and summary.counts["events"] == 22


def test_checkpoints_wait_their_interval_and_the_stop_takes_the_last(tmp_path):
    follower = _Follower(tmp_path, checkpoint_seconds=3600)
    try:
        follower.scored(20)
        first = json.loads((follower.state / "state.json").read_text())
        follower.append(20, 5)
        follower.scored(25)
        follower.polls(3)
        held = json.loads((follower.state / "state.json").read_text())
    finally:
        summary = follower.finish()
    last = json.loads((follower.state / "state.json").read_text())
    # The checkpoint taken before reading stands until the stop, which takes one of everything.
    assert first == held and first["counts"]["events"] == 0
    assert last["counts"]["events"] == summary.counts["events"] == 25
    assert [p["offset"] for p in last["positions"]] == [follower.log.stat().st_size]
    assert last["outputs"][str(follower.scores)] == follower.scores.stat().st_size


def _conn_log(path: Path, n: int, bad_line_at: int | None = None) -> None:
    lines = [line(i, 1_765_000_000.0 + i) for i in range(n)]
    if bad_line_at is not None:  # port out of range: quarantined with the field and the rule
        lines[bad_line_at] = lines[bad_line_at].replace("\t443\t", "\t70000\t", 1)
    path.write_text(header(1_765_000_000.0) + "".join(lines))


def test_alerts_reach_elasticsearch_as_ecs_and_refused_items_are_retried_or_reported(tmp_path):
    registry = _register(tmp_path)
    log = tmp_path / "conn.log"
    _conn_log(log, 60, bad_line_at=3)
    rule = AlertRule("vae", "1.0.0", "layer1", _threshold())
    with FakeElasticsearchBulk() as es:
        outputs = FollowOutputs(alerts=tmp_path / "alerts.jsonl", state=tmp_path / "state",
                                scores=tmp_path / "scores.jsonl",
                                elasticsearch={"hosts": es.url, "index": "alerts",
                                               "retry_backoff": 0.0, "max_retries": 2})
        # Score once without the cluster to learn which events alert.
        sources = [DataSource("zeek", "zeek", {"path": str(log)})]
        units = [r["unit"] for r in _scores(registry, sources, tmp_path / "probe")]
        busy, broken, flaky = (alert_id(rule, u) for u in units[:3])
        es.refuse = {busy: [429], broken: [400], flaky: [503, 503, 503]}

        summary = follow_events(registry, "vae", sources, outputs, once=True)
        indexed = es.documents("alerts")
        docs = _jsonl(tmp_path / "alerts.jsonl")
        refused = _jsonl(tmp_path / "state" / "refused.jsonl")
        quarantined = _jsonl(tmp_path / "state" / "quarantine.jsonl")
        again = follow_events(registry, "vae", sources, outputs, once=True)  # nothing new

    assert summary.counts == {"events": 59, "alerts": len(docs), "quarantined": 1,
                              "refused": 2, "sensor_records": 0, "duplicates": 0}
    assert again.counts == summary.counts and _jsonl(tmp_path / "alerts.jsonl") == docs
    assert [q["field"] for q in quarantined] == ["id.resp_p"] and quarantined[0]["line"] == 12
    ids = {d["event"]["id"] for d in docs}
    assert len(ids) == len(docs) and set(indexed) == ids - {broken, flaky}
    assert es.attempts[busy] == 2 and es.attempts[broken] == 1 and es.attempts[flaky] == 3
    assert sorted((r["status"], r["document"]["event"]["id"]) for r in refused) == \
        sorted([(400, broken), (503, flaky)])
    assert "mapper_parsing_exception" in next(r["reason"] for r in refused if r["status"] == 400)
    doc = indexed[busy]
    for name in ECS_FIELDS:
        assert _field(doc, name) not in (None, "", [])
    assert doc["event"]["kind"] == "alert" and doc["rule"]["name"] == "MAXIMUS layer1 anomaly (vae)"
    assert doc["related"]["ip"] == [doc["source"]["ip"], doc["destination"]["ip"]]
    n = int(units[0].removeprefix("conn:C"))  # written at 1_765_000_000 + n (05:46:40 UTC)
    assert doc["@timestamp"] == \
        f"2025-12-06T05:{46 + (40 + n) // 60:02d}:{(40 + n) % 60:02d}.000000Z"
    assert doc["maximus"]["unit"] == units[0] and doc["maximus"]["score"] >= _threshold()
    assert 0 <= doc["event"]["risk_score"] <= 100


def _scores(registry: ModelRegistry, sources: list[DataSource], state: Path) -> list[dict]:
    """The alerting units of the events of `sources`, in order, scored in one --once run."""
    outputs = FollowOutputs(alerts=state / "alerts.jsonl", state=state,
                            scores=state / "scores.jsonl")
    follow_events(registry, "vae", sources, outputs, once=True)
    return [r for r in _jsonl(state / "scores.jsonl") if r["is_alert"]]


def test_follow_flags_are_checked(tmp_path, capsys):
    _register(tmp_path)
    base = ["score", "--model", "vae", "--registry-dir", str(tmp_path / "models"), "--input",
            f"zeek:{tmp_path / 'conn.log'}"]
    assert main([*base, "--output", str(tmp_path / "s.jsonl"), "--once"]) == 2
    assert "--follow and --once need --alerts" in capsys.readouterr().err
    assert main([*base, "--output", str(tmp_path / "s.parquet"), "--alerts",
                 str(tmp_path / "a.jsonl"), "--once"]) == 2
    assert "must end in .jsonl or .json" in capsys.readouterr().err
    assert main([*base, "--output", str(tmp_path / "s.jsonl"), "--once", "--follow"]) == 2
    assert "--follow: not allowed with argument --once" in capsys.readouterr().err
    # A batch score refuses the flags of live scoring rather than ignore them.
    assert main([*base, "--output", str(tmp_path / "s.jsonl"), "--alerts",
                 str(tmp_path / "a.jsonl"), "--window-grace", "5"]) == 2
    assert "--alerts, --window-grace: only with --follow or --once" in capsys.readouterr().err


def test_tail_waits_for_whole_lines_and_follows_a_folder_through_rotation(tmp_path):
    from training.scoring.tail import Tail

    logs = tmp_path / "zeek"
    logs.mkdir()
    live = logs / "conn.log"
    first, rest = line(0, 1_765_000_000.0), line(1, 1_765_000_001.0)
    live.write_text(header(1.0) + first + rest[:20])  # the writer is mid-line

    tail = Tail([DataSource("zeek", "zeek", {"path": str(logs)})])

    def uids(reads) -> list[str]:
        return [u for r in reads for u in r.canonical.table["event_id"].to_pylist()]

    assert uids(tail.poll()) == ["conn:C00000000"]
    with open(live, "a") as out:
        out.write(rest[20:])
    assert uids(tail.poll()) == ["conn:C00000001"]
    live.rename(logs / "conn.2025-12-06-05-00-00.log")  # rotation: the old file stays in the folder
    live.write_text(header(2.0) + line(2, 1_765_000_002.0))
    assert uids(tail.poll()) == ["conn:C00000002"] and uids(tail.poll()) == []

    resumed = Tail([DataSource("zeek", "zeek", {"path": str(logs)})], tail.state())
    live.write_text(header(3.0) + line(3, 1_765_000_003.0))  # truncated and rewritten in place
    assert uids(resumed.poll()) == ["conn:C00000003"]


REAL = Path("../shared/datasets/slips_zeek_tsv_test10")


@pytest.mark.skipif(not REAL.exists(), reason="needs ../shared/datasets (slips_zeek_tsv_test10)")
def test_a_real_zeek_folder_written_in_two_parts_scores_as_the_batch_path(tmp_path):
    from training.scoring.batch import score_events

    registry = _register(tmp_path)
    live = tmp_path / "zeek"
    live.mkdir()
    halves = {}
    for log in REAL.glob("*.log"):
        data = log.read_bytes()
        cut = data.index(b"\n", len(data) // 2) + 1  # the sensor has written half the lines
        (live / log.name).write_bytes(data[:cut])
        halves[log.name] = data[cut:]
    outputs = FollowOutputs(alerts=tmp_path / "alerts.jsonl", state=tmp_path / "state",
                            scores=tmp_path / "scores.jsonl")
    sources = [DataSource("zeek", "zeek", {"path": str(live)})]
    follow_events(registry, "vae", sources, outputs, once=True)
    for name, rest in halves.items():
        with open(live / name, "ab") as out:
            out.write(rest)
    summary = follow_events(registry, "vae", sources, outputs, once=True)

    score_events(registry, "vae", sources, tmp_path / "batch.jsonl")
    batch = {r["unit"]: r["score"] for r in _jsonl(tmp_path / "batch.jsonl")}
    followed = {r["unit"]: r["score"] for r in _jsonl(tmp_path / "scores.jsonl")}
    assert summary.counts["events"] == len(batch) > 100
    assert summary.counts["sensor_records"] > 0  # capture_loss, reporter, ...: left out
    assert followed.keys() == batch.keys()
    assert all(abs(followed[u] - batch[u]) <= 1e-6 * abs(batch[u]) for u in batch)
    alerts = {d["maximus"]["unit"] for d in _jsonl(tmp_path / "alerts.jsonl")}
    assert alerts == {u for u, s in batch.items() if s >= _threshold()}


def test_an_unreachable_cluster_stops_the_scorer_and_the_rerun_sends_every_alert(tmp_path):
    from training.errors import SourceError

    registry = _register(tmp_path)
    log = tmp_path / "conn.log"
    _conn_log(log, 40)
    sources = [DataSource("zeek", "zeek", {"path": str(log)})]
    with FakeElasticsearchBulk() as es:
        url = es.url
    down = FollowOutputs(alerts=tmp_path / "alerts.jsonl", state=tmp_path / "state",
                         elasticsearch={"hosts": url, "index": "alerts", "max_retries": 0})
    with pytest.raises(SourceError, match="does not answer"):
        follow_events(registry, "vae", sources, down, once=True)
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    # Read, not committed: the file at its start, as the checkpoint before reading named it.
    assert [p["offset"] for p in state["positions"]] == [0] and state["counts"]["events"] == 0
    with FakeElasticsearchBulk() as es:
        up = FollowOutputs(alerts=down.alerts, state=down.state,
                           elasticsearch={"hosts": es.url, "index": "alerts"})
        summary = follow_events(registry, "vae", sources, up, once=True)
        indexed = es.documents("alerts")
    docs = _jsonl(tmp_path / "alerts.jsonl")  # cut back, then written once
    assert summary.counts["alerts"] == len(docs) == len(indexed) > 0
    assert {d["event"]["id"] for d in docs} == set(indexed)


def test_files_rotated_while_the_scorer_was_stopped_are_read_whole_and_once(tmp_path):
    from training.scoring.tail import MAX_READ, Tail

    live = tmp_path / "conn.log"
    sources = [DataSource("zeek", "zeek", {"path": str(live)})]
    n = iter(range(10**6))

    def lines(count: int) -> str:
        return "".join(line(i, 1_765_000_000.0 + i) for i in (next(n) for _ in range(count)))

    live.write_text(header(1.0) + lines(10))
    tail = Tail(sources)
    got = [u for r in tail.poll() for u in r.canonical.table["event_id"].to_pylist()]
    with open(live, "a") as out:  # the scorer is stopped; the sensor goes on and rotates twice
        out.write(lines(12_000))
    live.rename(tmp_path / "conn.2025-12-06-05-00-00.log")
    live.write_text(header(2.0) + lines(12_000))
    live.rename(tmp_path / "conn.2025-12-06-06-00-00.log")
    live.write_text(header(3.0) + lines(5))
    assert (tmp_path / "conn.2025-12-06-05-00-00.log").stat().st_size > MAX_READ

    resumed = Tail(sources, tail.state())
    for _ in range(5):
        got += [u for r in resumed.poll() for u in r.canonical.table["event_id"].to_pylist()]
    assert got == [f"conn:C{i:08d}" for i in range(10 + 12_000 + 12_000 + 5)]


def test_a_run_that_follows_other_files_keeps_the_positions_of_the_first(tmp_path):
    """--once on a/conn.log, then b/conn.log, then a/conn.log again with one state folder:
    a's events are scored once (its position waited while b was followed)."""
    registry = _register(tmp_path)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        _conn_log(tmp_path / name / "conn.log", 20)
    outputs = FollowOutputs(alerts=tmp_path / "alerts.jsonl", state=tmp_path / "state",
                            scores=tmp_path / "scores.jsonl")
    for name in ("a", "b", "a"):  # b's lines are a's (same uids): duplicates, kept here
        follow_events(registry, "vae",
                      [DataSource("zeek", "zeek", {"path": str(tmp_path / name / "conn.log")})],
                      outputs, once=True, deduplicate=False)
    scored = [r["unit"] for r in _jsonl(tmp_path / "scores.jsonl")]
    assert len(scored) == 40  # 20 each: a read once, b once


def test_a_rotated_file_read_to_its_end_is_checkpointed_before_it_can_go(tmp_path):
    """The sensor rotates, the scorer finishes the rotated file, an archiver removes it, the
    scorer is killed before its next timed checkpoint: the poll that finished the file took
    one, so a rerun neither looks for the file nor takes back the events scored from it."""
    _register(tmp_path)
    logs, scores = tmp_path / "logs", tmp_path / "scores.jsonl"
    logs.mkdir()
    live = logs / "conn.log"
    live.write_text(header(1.0) + "".join(line(i, 1_765_000_000.0 + i) for i in range(100)))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    command = [sys.executable, "-m", "training.cli", "score", "--model", "vae",
               "--registry-dir", str(tmp_path / "models"), "--input", f"zeek:{live}",
               "--output", str(scores), "--alerts", str(tmp_path / "alerts.jsonl"),
               "--poll-interval", "0.05"]
    scorer = subprocess.Popen([*command, "--follow", "--checkpoint-interval", "3600"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait("100 scored", lambda: _lines(scores) >= 100, scorer=scorer)
    with open(live, "a") as out:
        out.write("".join(line(i, 1_765_000_000.0 + i) for i in range(100, 150)))
    live.rename(logs / "conn.1.log")
    live.write_text(header(2.0))
    _wait("150 scored", lambda: _lines(scores) >= 150, scorer=scorer)
    state = tmp_path / "scores.jsonl.state" / "state.json"
    _wait("the checkpoint", lambda: json.loads(state.read_text())["counts"]["events"] == 150,
          scorer=scorer)
    (logs / "conn.1.log").unlink()
    scorer.send_signal(signal.SIGKILL)
    scorer.wait()
    rerun = subprocess.run([*command, "--once"], env=env, capture_output=True, text=True,
                           timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert "removed before it was read" not in rerun.stderr
    units = collections.Counter(r["unit"] for r in _jsonl(scores))
    assert sorted(units) == [f"conn:C{n:08d}" for n in range(150)]
    assert set(units.values()) == {1}
