"""Tests for training.scoring.follow_switch: `score --once --switch-model` takes a follow state
over for a newly promoted version, from where the old one stopped. `score --once` runs in
process on Slips' vertical port scan (a Zeek JSON conn log, ../shared/datasets), with untrained
VAEs registered as two versions of one model (`test_follow_state._register`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from training.cli.main import main
from training.scoring.follow_windows import held_events
from training.tests.test_follow_state import _files, _once, _register

SCAN = "slips_portscan_zeek/vertical_conn.log"  # 50 connections, one JSON object a line


def test_switch_model_goes_on_from_the_read_positions_with_the_new_version(
        tmp_path, datasets, capsys, caplog):
    lines = (datasets / SCAN).read_text().splitlines(keepends=True)
    assert len(lines) == 50
    log, models = tmp_path / "conn.log", tmp_path / "models"
    _register(models, "1.0.0", seed=0, stage="production")
    second = _register(models, "1.1.0", seed=1)
    log.write_text("".join(lines[:30]))
    assert main(_once(tmp_path, models)) == 0
    assert "followed with vae 1.0.0: 30 events scored" in capsys.readouterr().out

    # Retrained and promoted; the sensor wrote 20 more connections.
    assert main(["registry", "promote", "--model", "vae", "--version", "1.1.0",
                 "--registry-dir", str(models)]) == 0
    with log.open("a") as out:
        out.write("".join(lines[30:]))
    before = _files(tmp_path)
    capsys.readouterr()
    assert main(_once(tmp_path, models)) == 1  # without the flag: refused, the way out named
    err = capsys.readouterr().err.splitlines()[-1]
    assert "holds the live scoring of vae 1.0.0, not of vae 1.1.0" in err
    assert ("to go on with vae 1.1.0 from these read positions and outputs, add "
            "--switch-model (the totals and open incidents start again with it)") in err
    assert _files(tmp_path) == before

    with caplog.at_level(logging.WARNING, logger="training.scoring.follow_switch"):
        assert main(_once(tmp_path, models, "--switch-model")) == 0
    # Its own totals: the 20 connections it scored, none of 1.0.0's 30.
    assert "followed with vae 1.1.0: 20 events scored" in capsys.readouterr().out
    warned = [r.getMessage() for r in caplog.records if r.name.endswith("follow_switch")]
    state = tmp_path / "s.jsonl.state"
    assert warned == [f"{state}: going on with vae 1.1.0 from where vae 1.0.0 stopped "
                      "(--switch-model): reset vae 1.0.0's totals (30 events, 28 alerts, 1 "
                      "incident update) and its 1 open incident"]
    saved = json.loads((state / "state.json").read_text())
    assert saved["model"] == {"name": "vae", "version": "1.1.0", "sha256": second}
    assert saved["counts"]["events"] == 20
    alerts = [json.loads(a) for a in (tmp_path / "s.alerts.jsonl").read_text().splitlines()]
    by_version = [a["rule"]["version"] for a in alerts]
    assert by_version == ["1.0.0"] * 28 + ["1.1.0"] * saved["counts"]["alerts"]
    assert [i["entity"] for i in saved["incidents"]["open"]] == ["192.168.1.9"]  # 1.1.0's own

    # Every connection scored once, in the log's order: 1.0.0's 30 rows stayed, 1.1.0
    # appended the other 20.
    rows = [json.loads(r) for r in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [r["unit"] for r in rows] == [f"conn:{json.loads(x)['uid']}" for x in lines]

    # The state is 1.1.0's now: it goes on without the flag, and 1.0.0 is refused.
    assert main(_once(tmp_path, models)) == 0
    assert "followed with vae 1.1.0: 20 events scored" in capsys.readouterr().out
    assert main(_once(tmp_path, models, "--version", "1.0.0")) == 1
    assert "holds the live scoring of vae 1.1.0, not of vae 1.0.0" in capsys.readouterr().err


def test_switch_model_on_a_new_state_or_the_same_model_changes_nothing(tmp_path, datasets,
                                                                         capsys, caplog):
    models = tmp_path / "models"
    _register(models, "1.0.0", seed=0, stage="production")
    Path(tmp_path / "conn.log").write_text((datasets / SCAN).read_text())
    with caplog.at_level(logging.WARNING, logger="training.scoring.follow_switch"):
        assert main(_once(tmp_path, models, "--switch-model")) == 0
        assert main(_once(tmp_path, models, "--switch-model")) == 0
    assert not [r for r in caplog.records if r.name.endswith("follow_switch")]
    assert capsys.readouterr().out.count("followed with vae 1.0.0: 50 events scored") == 2


def test_switch_model_keeps_the_open_windows_of_the_same_layout_and_drops_another_s(
        tmp_path, capsys, caplog):
    """Window layers: untrained layer-3 TCNs over the Zeek writer stand-in's lines
    (`test_follow_windows._writer_model`): "m" 1.0.0, the same weights as "m" 1.1.0, and
    "m8", a longer history (another layout)."""
    from training.registry.registry import ModelMetadata
    from training.tests.test_follow_windows import _writer_model
    from training.tests.zeek_writer import header, line

    registry = _writer_model(tmp_path)
    registry.register_model(tmp_path / "m4.pt", ModelMetadata("m", "1.1.0", "layer3"))
    _writer_model(tmp_path, history=8)
    log = tmp_path / "conn.log"
    log.write_text(header(0.0) + "".join(line(n, 1.7e9 + n / 100) for n in range(300)))
    command = ["score", "--registry-dir", str(tmp_path / "models"), "--input", f"zeek:{log}",
               "--output", str(tmp_path / "s.jsonl"), "--alerts", str(tmp_path / "a.jsonl"),
               "--once", "--window-grace", "0", "--switch-model"]
    state = tmp_path / "s.jsonl.state"

    def run(*model: str) -> tuple[int, int, list[str]]:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="training.scoring.follow_switch"):
            assert main([*command, "--model", *model]) == 0
        saved = json.loads((state / "state.json").read_text())
        held = sum(1 for _ in (tmp_path / "s.jsonl").open())
        return (saved["counts"]["events"], held,
                [r.getMessage() for r in caplog.records if r.name.endswith("follow_switch")])

    scored, rows, warned = run("m")
    assert warned == [] and scored == rows == 250  # the last windows held
    # The same layout: 1.1.0 scores the held events as their windows close.
    log.write_text(log.read_text() + "".join(line(n, 1.7e9 + n / 100) for n in range(300, 400)))
    more, rows, warned = run("m", "--version", "1.1.0")
    assert warned == [f"{state}: going on with m 1.1.0 from where m 1.0.0 stopped "
                      "(--switch-model): reset m 1.0.0's totals (250 events, 50 alerts, 50 "
                      "incident updates) and its 250 open incidents; kept the open windows (the "
                      "same layout: m 1.1.0 scores their events)"]
    held = 400 - scored - more
    assert rows == scored + more and 0 < held < 100
    # A switch that fails before its first checkpoint (the alerts path is a folder) changes
    # nothing: the state still names m 1.1.0 and its held events, and nothing is warned of.
    before = (state / "state.json").read_bytes(), sorted(state.glob("*.arrow"))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="training.scoring.follow_switch"):
        (tmp_path / "adir.jsonl").mkdir()
        folder = [str(tmp_path / "adir.jsonl") if c == str(tmp_path / "a.jsonl") else c
                  for c in command]
        assert main([*folder, "--model", "m8"]) == 1
    assert not [r for r in caplog.records if r.name.endswith("follow_switch")]
    assert ((state / "state.json").read_bytes(), sorted(state.glob("*.arrow"))) == before
    assert sum(held_events(p) for p in state.glob("pending-*.arrow")) == held
    # Another layout: the held events cannot go into its windows; they are dropped, said so.
    _, _, warned = run("m8")
    assert warned[0].endswith(f"; dropped the {held} events held in open windows of m "
                              "1.1.0's layout, unscored")
    assert capsys.readouterr().out.splitlines()[-1].startswith("windows: 0 events held")
    generation = json.loads((state / "state.json").read_text())["windows"]["generation"]
    assert [p.name for p in state.glob("*.arrow")] == [f"pending-{generation}.arrow"]  # m8's


def test_a_running_follow_says_once_that_its_version_left_production(tmp_path, datasets,
                                                                     caplog, monkeypatch):
    """Trial R: a `score --follow` went on with 1.1.0 through four promotions without a word.
    It still goes on with the version it started with (its state is that model's), but the
    first look at the registry after a promotion warns, once, naming --switch-model."""
    import threading
    import time

    from training.registry.registry import ModelRegistry
    from training.scoring import follow_model
    from training.scoring.follow import FollowOutputs, follow_events
    from training.sources.config import DataSource

    monkeypatch.setattr(follow_model, "CHECK_SECONDS", 0.0)  # look at every checkpoint
    models, log = tmp_path / "models", tmp_path / "conn.log"
    _register(models, "1.0.0", seed=0, stage="production")
    _register(models, "1.1.0", seed=1)
    log.write_text((datasets / SCAN).read_text())
    stop, done = threading.Event(), []
    outputs = FollowOutputs(alerts=tmp_path / "a.jsonl", state=tmp_path / "state")
    run = threading.Thread(target=lambda: done.append(follow_events(
        ModelRegistry(models), "vae", [DataSource("z", "zeek_logs", {"path": str(log)})],
        outputs, poll_seconds=0.05, stop=stop, checkpoint_seconds=0)))

    def warned() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name.endswith("follow_model")]

    state = tmp_path / "state" / "state.json"

    def scored_more() -> None:
        """Until the run has read and committed lines appended to the log (it looks at the
        registry at each checkpoint)."""
        before = state.stat().st_mtime_ns if state.exists() else None
        with log.open("a") as out:
            out.write((datasets / SCAN).read_text())  # seen before: counted as duplicates
        deadline = time.monotonic() + 30
        while (state.stat().st_mtime_ns if state.exists() else None) == before:
            assert time.monotonic() < deadline, "the run stopped checkpointing"
            time.sleep(0.02)

    with caplog.at_level(logging.WARNING, logger="training.scoring.follow_model"):
        run.start()
        try:
            scored_more()
            assert warned() == []  # still the production version
            ModelRegistry(models).transition_stage("vae", "1.1.0", "production")
            deadline = time.monotonic() + 30
            while not warned() and time.monotonic() < deadline:
                time.sleep(0.05)
            scored_more()  # more looks: no second warning
        finally:
            stop.set()
            run.join(60)
    assert warned() == ["vae 1.0.0, which this run scores with, is no longer the production "
                        "version (1.1.0 is); the run goes on with it: to score with the new one, "
                        "stop it and run the same command with --switch-model"]
    assert done[0].version == "1.0.0"


def test_the_production_check_never_stops_a_live_run(tmp_path, caplog, monkeypatch):
    """The look at the registry only warns: a registry it cannot read (damaged, locked, gone
    on a network share) is tried again later, and the run goes on (review)."""
    from training.registry.registry import ModelRegistry
    from training.scoring import follow_model

    monkeypatch.setattr(follow_model, "CHECK_SECONDS", 0.0)
    models = tmp_path / "models"
    _register(models, "1.0.0", seed=0, stage="production")
    watch = follow_model.ProductionWatch(ModelRegistry(models), "vae", "1.0.0", True)
    (models / "registry.db").write_bytes(b"not a database" * 100)
    with caplog.at_level(logging.WARNING):
        watch.check()
    assert watch.watching and not caplog.records
