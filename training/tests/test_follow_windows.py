"""Window layers under `score --follow`: units scored as their windows close, as the batch path
scores them, once each across restarts; events that arrive after their window closed are
quarantined and counted.

Real data: the Stratosphere 008 Zeek conn.log (its lines are ordered by when Zeek wrote them,
so their `ts` runs up to 6 hours behind the latest one read), followed in three parts.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from training.artifacts.model_files import save_model
from training.cli.main import main
from training.collection.collector import DataCollector
from training.registry.registry import ModelMetadata, ModelRegistry
from training.scoring.batch import score_events
from training.scoring.follow import FollowOutputs, follow_events
from training.sources.config import DataSource

LOG = "stratosphere/008-zeek-mixed/data/conn.log.labeled"


def _register(tmp_path: Path, layer: str, log: Path) -> ModelRegistry:
    """An untrained detector of `layer` with its scaling fitted on `log` and the 90th
    percentile of its scores there as threshold (no labels used)."""
    from training.detectors.gnn import Layer2GNN
    from training.detectors.tcn import Layer3TCN
    from training.layers.layer2_batches import Layer2Data, fit_layer2_scaling
    from training.layers.layer3_batches import Layer3Data, fit_layer3_scaling
    from training.layers.registry import get_layer

    table = DataCollector([DataSource("zeek", "zeek_logs", {"path": str(log)})],
                          progress=False).collect_table()
    units = get_layer(layer)().featurize(table)
    torch.manual_seed(0)
    if layer == "layer2":
        spec = fit_layer2_scaling(units)
        data = Layer2Data(units, spec)
        model = Layer2GNN(node_dim=data.node_dim, edge_dim=data.edge_dim).eval()
        scores = data.edge_scores(model)
    else:
        spec = fit_layer3_scaling(units, benign_only=False)
        data = Layer3Data(units, spec)
        model = Layer3TCN(input_dim=data.input_dim).eval()
        scores = data.scores(model)
    save_model(model, tmp_path / "m.pt", feature_spec=spec,
               threshold=float(np.quantile(scores, 0.9)))
    registry = ModelRegistry(tmp_path / "models")
    registry.register_model(tmp_path / "m.pt",
                            ModelMetadata("m", "1.0.0", layer, stage="production"))
    return registry


def _writer_model(tmp_path: Path, history: int = 4) -> ModelRegistry:
    """An untrained layer-3 TCN over half-second buckets of the Zeek writer's lines
    (`training.tests.zeek_writer`), its threshold the 80th percentile of their scores."""
    from training.detectors.tcn import Layer3TCN
    from training.features.layer3 import Layer3WindowBuilder
    from training.layers.layer3_batches import Layer3Data, fit_layer3_scaling
    from training.tests.zeek_writer import header, line

    sample = tmp_path / "sample.log"
    sample.write_text(header(0.0) + "".join(line(n, 1.7e9 + n / 500) for n in range(1500)))
    table = DataCollector([DataSource("z", "zeek", {"path": str(sample)})],
                          progress=False).collect_table()
    units = Layer3WindowBuilder(bucket_seconds=0.5, history=history).featurize(table)
    spec = fit_layer3_scaling(units, benign_only=False)
    torch.manual_seed(0)
    model = Layer3TCN(input_dim=units.target.shape[1], channels=[8, 8]).eval()
    threshold = float(np.quantile(Layer3Data(units, spec).scores(model), 0.8))
    save_model(model, tmp_path / f"m{history}.pt", feature_spec=spec, threshold=threshold)
    registry = ModelRegistry(tmp_path / "models")
    registry.register_model(tmp_path / f"m{history}.pt",
                            ModelMetadata(f"m{history}" if history != 4 else "m", "1.0.0",
                                          "layer3", stage="production"))
    return registry


def _parts(datasets: Path) -> tuple[list[str], list[list[str]]]:
    lines = (datasets / LOG).read_text().splitlines(keepends=True)
    head = [x for x in lines if x.startswith("#") and not x.startswith("#close")]
    data = [x for x in lines if not x.startswith("#")]
    third = len(data) // 3
    return head, [data[:third], data[third:2 * third], data[2 * third:]]


def _sentinel(data: list[str], days: int = 2) -> str:
    """A connection `days` after the latest one: event time moves past every window."""
    fields = data[-1].rstrip("\n").split("\t")
    latest = max(float(x.split("\t", 1)[0]) for x in data)
    fields[0], fields[1] = f"{latest + days * 86_400:.6f}", "Csentinel"
    return "\t".join(fields) + "\n"


def _follow(registry: ModelRegistry, log: Path, out: Path, grace: float):
    return follow_events(registry, "m", [DataSource("zeek", "zeek_logs", {"path": str(log)})],
                         FollowOutputs(alerts=out / "alerts.jsonl", state=out / "state",
                                       scores=out / "scores.jsonl"),
                         once=True, window_grace=grace)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("layer", ["layer2", "layer3"])
def test_windows_close_as_event_time_passes_and_score_as_the_batch_path(tmp_path, datasets,
                                                                        layer):
    head, parts = _parts(datasets)
    whole = tmp_path / "whole.log"
    whole.write_text("".join(head + [x for p in parts for x in p]))
    registry = _register(tmp_path, layer, whole)
    batch = score_events(registry, "m", [DataSource("zeek", "zeek_logs", {"path": str(whole)})],
                         tmp_path / "batch.jsonl")
    expected = {r["unit"]: r for r in _jsonl(tmp_path / "batch.jsonl")}

    live, out = tmp_path / "live" / "conn.log", tmp_path / "out"
    live.parent.mkdir()
    live.write_text("".join(head))
    held = []
    for i, part in enumerate(parts):  # three runs, each resuming the last one's state
        last = i == len(parts) - 1
        with live.open("a") as handle:
            handle.write("".join(part + ([_sentinel(sum(parts, []))] if last else [])))
        summary = _follow(registry, live, out, grace=86_400)  # more than the log's 6 h lag
        held.append(summary.held)
    assert held[0] > 0 and held[-1] == 1  # at the end, only the sentinel's window is open
    assert summary.counts["late"] == 0

    rows = _jsonl(out / "scores.jsonl")
    assert collections.Counter(r["unit"] for r in rows) == collections.Counter(list(expected))
    for row in rows:
        want = expected[row["unit"]]
        assert row["event_ids"] == want["event_ids"]
        assert row["score"] == pytest.approx(want["score"], rel=1e-4, abs=1e-6)
    assert summary.counts["events"] == batch.events == sum(map(len, parts))

    docs = _jsonl(out / "alerts.jsonl")
    alerting = {r["unit"] for r in rows if r["is_alert"]}
    assert len(docs) == len(alerting) == batch.alerts > 0
    assert {d["maximus"]["unit"] for d in docs} == alerting  # each once
    assert len({d["event"]["id"] for d in docs}) == len(docs)
    for doc in docs:
        row = expected[doc["maximus"]["unit"]]
        assert doc["event"]["kind"] == "alert" and doc["maximus"]["layer"] == layer
        assert doc["source"]["ip"] == row["source_ip"]
        assert doc["event"]["start"] == doc["@timestamp"] < doc["event"]["end"]
        assert doc["maximus"]["event_ids"] == row["event_ids"]
        assert 1 <= len(doc["maximus"]["top_events"]) <= 3
        assert set(doc["related"]["ip"]) >= {e["dest_ip"] for e in doc["maximus"]["top_events"]}


def test_events_after_their_window_closed_are_quarantined_and_counted(tmp_path, datasets):
    head, parts = _parts(datasets)
    whole = tmp_path / "whole.log"
    whole.write_text("".join(head + [x for p in parts for x in p]))
    registry = _register(tmp_path, "layer3", whole)
    live, out = tmp_path / "conn.log", tmp_path / "out"
    live.write_text("".join(head))
    for part in parts:
        with live.open("a") as handle:
            handle.write("".join(part))
        summary = _follow(registry, live, out, grace=300)  # the default: Zeek's TCP timeout

    late = [q for q in _jsonl(out / "state" / "quarantine.jsonl") if "late" in q["reason"]]
    assert len(late) == summary.counts["late"] > 0
    assert all(q["field"] == "timestamp" and q["event_id"] and "--window-grace" in q["reason"]
               for q in late)
    # Each at the line of the followed file it was read from (1-based, the header's included).
    line_of = {f"conn:{text.split(chr(9))[1]}": n
               for n, text in enumerate(live.read_text().splitlines(), 1)
               if not text.startswith("#")}
    assert [(q["file"], q["line"]) for q in late] == [(str(live), line_of[q["event_id"]])
                                                      for q in late]
    scored = {i for r in _jsonl(out / "scores.jsonl") for i in r["event_ids"]}
    assert not scored & {q["event_id"] for q in late}
    # Nothing silently dropped: every event was scored, is late, or is held in an open window.
    assert summary.counts["events"] + summary.counts["late"] + summary.held == \
        sum(map(len, parts))


def test_the_command_line_follows_with_a_window_model(tmp_path, datasets, capsys):
    head, parts = _parts(datasets)
    log = tmp_path / "conn.log"
    log.write_text("".join(head + parts[0] + [_sentinel(parts[0], days=1)]))
    _register(tmp_path, "layer3", log)
    command = ["score", "--model", "m", "--registry-dir", str(tmp_path / "models"), "--input",
               f"zeek:{log}", "--output", str(tmp_path / "s.jsonl"), "--alerts",
               str(tmp_path / "a.jsonl"), "--once"]
    for bad in ("-1", "inf"):
        assert main([*command, "--window-grace", bad]) == 2  # a usage error
        assert "(--window-grace) must be a finite number of seconds >= 0" in \
            capsys.readouterr().err
    assert main([*command, "--window-grace", "600"]) == 0
    out = capsys.readouterr().out
    assert f"{len(parts[0]):,} events scored" in out and "1 event held in open windows" in out and "0 events that came after" in out
    assert "quarantined record" not in out  # none yet: no line about them, as batch score
    with log.open("a") as handle:  # a connection of the day before: its window has closed
        handle.write(parts[1][0])
    assert main([*command, "--window-grace", "600"]) == 0
    state = tmp_path / "s.jsonl.state" / "quarantine.jsonl"
    assert (f"1 quarantined record (file, line, reason of each): {state}"
            in capsys.readouterr().out.splitlines())
    [late] = _jsonl(state)
    assert (late["file"], late["line"]) == (str(log), len(log.read_text().splitlines()))


def test_a_sigkilled_window_scorer_scores_every_closed_window_once(tmp_path):
    """The writer stamps each line with the time it wrote it, so with half-second buckets the
    windows close as it writes; the scorer is killed mid-stream and restarted."""
    import signal

    from training.tests.test_follow import WRITTEN, _wait, kill_mid_stream

    _writer_model(tmp_path)
    logs, scores, alerts = tmp_path / "logs", tmp_path / "scores.jsonl", tmp_path / "alerts.jsonl"
    state = tmp_path / "scores.jsonl.state" / "state.json"
    restarted, _, at_kill = kill_mid_stream(tmp_path, "m", 300, "--window-grace", "0.2")
    last = f"C{WRITTEN - 1:08d}"
    # Read: held in an open window, or its window closed (a quiet live log's windows close
    # with the clock) and scored.
    def read(path: Path) -> bytes:
        try:
            return path.read_bytes()
        except FileNotFoundError:  # a generation of held events the scorer just replaced
            return b""

    _wait("the last event read", lambda: last.encode() in b"".join(
        read(p) for p in [*state.parent.glob("pending-*.arrow"), scores]), scorer=restarted)
    restarted.send_signal(signal.SIGTERM)
    out, err = restarted.communicate(timeout=60)
    assert restarted.returncode == 0, err

    first_open = json.loads(state.read_text())["windows"]["first_open"]
    batch = tmp_path / "batch.jsonl"
    score_events(ModelRegistry(tmp_path / "models"), "m",
                 [DataSource("z", "zeek", {"path": str(logs)})], batch)
    closed = {r["unit"]: r for r in _jsonl(batch)
              if np.datetime64(r["time"].rstrip("Z"), "us").astype(np.int64)
              < first_open * 500_000}
    rows = _jsonl(scores)
    assert at_kill < len(rows)
    scored = collections.Counter(r["unit"] for r in rows)
    assert set(scored) == set(closed) and set(scored.values()) == {1}  # each window once
    for row in rows:
        assert row["score"] == pytest.approx(closed[row["unit"]]["score"], rel=1e-4, abs=1e-6)
    alerted = collections.Counter(d["maximus"]["unit"] for d in _jsonl(alerts))
    assert set(alerted) == {u for u, r in closed.items() if r["is_alert"]}
    assert set(alerted.values()) == {1}  # no alert lost or doubled


def test_a_file_with_a_backlog_holds_event_time_back(tmp_path):
    """Two logs read at once: the poll reads 1 MiB of the long one (its first minutes) and
    all of the short one (a later time). Event time must wait for the long one's backlog,
    else the rest of it would come after its windows had closed."""
    from training.scoring.tail import MAX_READ
    from training.tests.zeek_writer import header, line

    registry = _writer_model(tmp_path)
    start = 1.7e9
    long_log, short_log = tmp_path / "a" / "conn.log", tmp_path / "b" / "conn.log"
    long_log.parent.mkdir(), short_log.parent.mkdir()
    long_log.write_text(header(start) + "".join(line(n, start + n / 100) for n in range(25_000)))
    short_log.write_text(header(start) + "".join(line(100_000 + n, start + 250 + n / 100)
                                                 for n in range(100)))
    assert long_log.stat().st_size > 2 * MAX_READ  # three polls to read
    summary = follow_events(
        registry, "m", [DataSource("a", "zeek", {"path": str(long_log)}),
                        DataSource("b", "zeek", {"path": str(short_log)})],
        FollowOutputs(alerts=tmp_path / "alerts.jsonl", state=tmp_path / "state",
                      scores=tmp_path / "scores.jsonl"), once=True, window_grace=1.0)
    assert summary.polls >= 3 and summary.counts["late"] == 0
    assert summary.counts["events"] + summary.held == 25_100
    assert summary.counts["events"] > 24_000  # the windows the short log's time closed


def test_a_state_folder_keeps_to_the_model_layout_it_was_used_with(tmp_path, capsys):
    from training.tests.test_follow import _register as register_vae
    from training.tests.zeek_writer import header, line

    _writer_model(tmp_path)
    _writer_model(tmp_path, history=8)  # "m8": the same buckets, a longer history
    register_vae(tmp_path)  # "vae": layer 1
    log = tmp_path / "conn.log"
    log.write_text(header(0.0) + "".join(line(n, 1.7e9 + n / 100) for n in range(300)))
    command = ["score", "--registry-dir", str(tmp_path / "models"), "--input", f"zeek:{log}",
               "--output", str(tmp_path / "s.jsonl"), "--alerts", str(tmp_path / "a.jsonl"),
               "--once", "--window-grace", "0"]
    assert main([*command, "--model", "m"]) == 0
    capsys.readouterr()
    for model in ("m8", "vae"):  # another layout; a layer-1 model: refused as another model
        assert main([*command, "--model", model]) == 1
        assert f"holds the live scoring of m 1.0.0, not of {model} 1.0.0 " in \
            capsys.readouterr().err
    assert main([*command, "--model", "m"]) == 0  # the first model goes on with it


def _followed_twenty_seconds(tmp_path):
    """A conn log of 200 connections in 20 s, followed once: (registry, log, outputs, source)."""
    from training.tests.zeek_writer import header, line

    registry = _writer_model(tmp_path)
    log = tmp_path / "conn.log"
    log.write_text(header(0.0) + "".join(line(n, 1.7e9 + n / 10) for n in range(200)))
    outputs = FollowOutputs(alerts=tmp_path / "alerts.jsonl", state=tmp_path / "state")
    source = [DataSource("z", "zeek", {"path": str(log)})]
    follow_events(registry, "m", source, outputs, once=True, window_grace=1.0)
    return registry, log, outputs, source


def test_a_jump_in_event_time_is_warned_of(tmp_path, caplog):
    from training.tests.zeek_writer import line

    registry, log, outputs, source = _followed_twenty_seconds(tmp_path)
    with caplog.at_level("WARNING"):
        with log.open("a") as handle:  # one connection stamped a day later
            handle.write(line(500, 1.7e9 + 86_400))
        follow_events(registry, "m", source, outputs, once=True, window_grace=1.0)
        with log.open("a") as handle:  # then the rest, as before
            handle.write("".join(line(n, 1.7e9 + n / 10) for n in range(200, 300)))
        summary = follow_events(registry, "m", source, outputs, once=True, window_grace=1.0)
    said = caplog.text
    assert "event time jumped from 2023-11-14T22:13:39" in said and str(log) in said
    assert "came after their windows had closed" in said
    assert summary.counts["late"] == 100


def test_the_windows_of_a_live_sensor_that_goes_quiet_close_with_the_clock(tmp_path):
    """Events stamped as they are written, then silence: event time moves on with the clock,
    so the last windows close too (a replayed log's do not: the sentinel's window above)."""
    import threading
    import time

    from training.tests.test_follow import _wait
    from training.tests.zeek_writer import header, line

    registry = _writer_model(tmp_path)
    log, state = tmp_path / "conn.log", tmp_path / "state"
    now = time.time()
    log.write_text(header(now) + "".join(line(n, now - 1 + n / 200) for n in range(200)))
    stop, done = threading.Event(), {}
    follower = threading.Thread(target=lambda: done.update(summary=follow_events(
        registry, "m", [DataSource("z", "zeek", {"path": str(log)})],
        FollowOutputs(alerts=tmp_path / "alerts.jsonl", state=state,
                      scores=tmp_path / "scores.jsonl"),
        poll_seconds=0.05, stop=stop, window_grace=0.3)))
    follower.start()
    try:
        last_bucket_end = (int(now * 2) + 1) * 500_000  # half-second buckets, in us
        _wait("the last window closed", lambda: (state / "state.json").exists() and (
            json.loads((state / "state.json").read_text()).get("windows", {}).get("first_open")
            or 0) * 500_000 >= last_bucket_end, timeout=30)
    finally:
        stop.set()
        follower.join(timeout=60)
    summary = done["summary"]
    assert summary.held == 0 and summary.counts["events"] == 200


def test_a_backlog_read_in_order_is_no_jump(tmp_path, caplog):
    """A cron --once run after six hours reads six hours of connections, every ten seconds:
    event time moves far in one poll, but through its events, so no 'jumped' warning (one
    event stamped hours ahead is warned of: test_a_jump_in_event_time_is_warned_of)."""
    from training.tests.zeek_writer import line

    registry, log, outputs, source = _followed_twenty_seconds(tmp_path)
    with caplog.at_level("WARNING"):
        with log.open("a") as handle:
            handle.write("".join(line(n, 1.7e9 + 20 + (n - 199) * 10) for n in range(200, 2360)))
        summary = follow_events(registry, "m", source, outputs, once=True, window_grace=1.0)
    assert "event time jumped" not in caplog.text
    assert summary.counts["late"] == 0 and summary.counts["quarantined"] == 0
