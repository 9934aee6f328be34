"""What `score --follow | --once` writes besides exactly-once delivery (test_follow): the rows
of a batch run (context, percentile, reasons), the fused event score, and the alert-rate guard
over a rolling window that warns once per excursion and never stops the scorer."""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from training.artifacts.model_files import save_model
from training.cli.main import main
from training.collection.collector import DataCollector
from training.detectors.vae import Layer1VAE
from training.errors import ConfigError
from training.evaluation.calibration import Calibration
from training.evaluation.fusion import Fusion
from training.features.layer1 import Layer1Featurizer
from training.layers.registry import get_layer
from training.registry.registry import ModelMetadata, ModelRegistry
from training.scoring.batch import score_events
from training.scoring.follow import FollowOutputs, follow_events
from training.scoring.fused import save_fusion, score_fused
from training.scoring.rolling_guard import RollingGuard
from training.sources.config import DataSource
from training.tests.test_follow import _lines as _whole_lines  # complete lines of a file
from training.tests.zeek_writer import header, line

T0 = 1_765_000_000.0


def _lines(numbers) -> str:
    return "".join(line(n, T0 + n) for n in numbers)


def _events(numbers) -> pa.Table:
    """The writer's connections `numbers` as canonical events."""
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "conn.log"
        log.write_text(header(T0) + _lines(numbers))
        return DataCollector([DataSource("z", "zeek", {"path": str(log)})],
                             checkpoint_enabled=False, progress=False).collect_table()


def _scores(numbers) -> np.ndarray:
    """The seed-0 VAE's scores of the writer's connections `numbers`."""
    layer = get_layer("layer1")()
    return np.asarray(layer.score(_vae(), layer.featurize(_events(numbers))), np.float64)


def _vae() -> Layer1VAE:
    torch.manual_seed(0)
    return Layer1VAE().eval()


def _register(root: Path, calibration: Calibration) -> ModelRegistry:
    weights = root / "src" / "vae.pt"
    save_model(_vae(), weights, feature_spec=Layer1Featurizer().spec,
               threshold=calibration.threshold, extra={"calibration": calibration.to_dict()})
    registry = ModelRegistry(root / "models")
    registry.register_model(weights, ModelMetadata("vae", "1.0.0", "layer1", stage="production"))
    return registry


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _follow_twice(registry: ModelRegistry, model: str, root: Path, n: int) -> list[dict]:
    """Score connections 0..n-1 with --once as the sensor writes them: half, then the rest."""
    log = root / "conn.log"
    log.write_text(header(T0) + _lines(range(n // 2)))
    outputs = FollowOutputs(alerts=root / "alerts.jsonl", state=root / "state",
                            scores=root / "scores.jsonl")
    sources = [DataSource("zeek", "zeek", {"path": str(log)})]
    follow_events(registry, model, sources, outputs, once=True)
    with open(log, "a") as out:
        out.write(_lines(range(n // 2, n)))
    summary = follow_events(registry, model, sources, outputs, once=True)
    assert summary.counts["events"] == n
    return _jsonl(root / "scores.jsonl")


def test_followed_rows_are_the_batch_rows_and_alerts_carry_sensor_id_and_reasons(tmp_path):
    # Half of the connections alert; the calibration gives their percentiles.
    registry = _register(tmp_path, Calibration.fit(_scores(range(200)), rule="quantile:0.5"))
    followed = _follow_twice(registry, "vae", tmp_path, 200)
    score_events(registry, "vae", [DataSource("zeek", "zeek", {"path": str(tmp_path / "conn.log")})],
                 tmp_path / "batch.jsonl")
    batch = _jsonl(tmp_path / "batch.jsonl")

    assert followed == batch  # every column: context, percentile, reasons
    second = followed[1]  # connection 1, written at 1_765_000_001 (05:46:41 UTC)
    assert second["source_ip"] == "10.0.1.2" and second["source_port"] == 40001
    assert second["dest_ip"] == "93.184.1.34" and second["dest_port"] == 443
    assert second["protocol"] == "tcp" and second["service"] == "ssl"
    assert second["sensor_id"] == "C00000001" and second["event_type"] == "conn"
    assert second["time"] == second["first_seen"] == "2025-12-06T05:46:41.000000Z"
    alerting = {r["unit"]: r for r in followed if r["is_alert"]}
    assert 50 < len(alerting) < 150 and all(r["reasons"] for r in alerting.values())
    docs = _jsonl(tmp_path / "alerts.jsonl")
    assert sorted(d["maximus"]["unit"] for d in docs) == sorted(alerting)
    for doc in docs:
        row = alerting[doc["maximus"]["unit"]]
        assert doc["maximus"]["sensor_id"] == row["sensor_id"] == row["unit"][len("conn:"):]
        assert doc["maximus"]["reasons"] == row["reasons"]
        assert doc["maximus"]["score"] == row["score"]
        # One source: the alert's percentile (and risk) are the scores file's, to the bit.
        assert doc["maximus"]["percentile"] == row["percentile"]
        assert doc["event"]["risk_score"] == round(row["percentile"], 3)


def _fused_registry(root: Path) -> ModelRegistry:
    """The VAE (calibrated on connections 0..199) and a fusion of it alone, whose own
    calibration puts its threshold at the median fused score."""
    scores = _scores(range(200))
    layer_calibration = Calibration.fit(scores, rule="quantile:0.999")
    registry = _register(root, layer_calibration)
    fused = -np.log10(layer_calibration.tail_probability(scores))  # min-p of one layer
    save_fusion(Fusion("min-p", ({"layer": "layer1", "model_name": "vae", "version": "1.0.0"},),
                       Calibration.fit(fused, rule="quantile:0.5")), registry.registry_dir)
    return registry


def test_the_fused_event_score_goes_out_with_each_batch_as_the_batch_run_gives_it(tmp_path):
    registry = _fused_registry(tmp_path)
    followed = _follow_twice(registry, "fused", tmp_path, 200)
    score_fused(registry, [DataSource("zeek", "zeek", {"path": str(tmp_path / "conn.log")})],
                tmp_path / "batch.jsonl")
    batch = _jsonl(tmp_path / "batch.jsonl")

    assert followed == batch and len(batch) == 200
    assert {r["layer"] for r in followed} == {"fused"} and followed[0]["sensor_id"] == "C00000000"
    alerting = {r["unit"] for r in followed if r["is_alert"]}
    assert 50 < len(alerting) < 150
    docs = _jsonl(tmp_path / "alerts.jsonl")
    assert sorted(d["maximus"]["unit"] for d in docs) == sorted(alerting)
    assert {d["rule"]["name"] for d in docs} == {"MAXIMUS fused anomaly (fused)"}
    assert {d["rule"]["version"] for d in docs} == {"vae 1.0.0"}
    with pytest.raises(ConfigError, match="the fused detector scores with the versions"):
        follow_events(registry, "fused", [], FollowOutputs(alerts=tmp_path / "a.jsonl",
                                                           state=tmp_path / "s"), stage="staging")


def test_window_layers_count_as_no_evidence_yet_in_the_live_fused_score(tmp_path):
    """A fusion of layer 1 and layer 3: live, layer 3's windows are still open, so its p is 1
    (its column null) while the Bonferroni factor stays 2: the live fused score of an event is
    never above the batch run's, and a live alert is a batch alert."""
    registry = _fused_registry(tmp_path)
    layer = get_layer("layer3")()  # an untrained TCN, scaled and calibrated on these events
    units = layer.featurize(_events(range(200)))
    layer.fit(units)
    torch.manual_seed(0)
    tcn = layer.default_detector(units).eval()
    calibration = Calibration.fit(layer.score(tcn, units), rule="quantile:0.99")
    save_model(tcn, tmp_path / "src" / "tcn.pt", feature_spec=layer.spec,
               threshold=calibration.threshold, extra={"calibration": calibration.to_dict()})
    registry.register_model(tmp_path / "src" / "tcn.pt", ModelMetadata("tcn", "1.0.0", "layer3"))
    fusion = json.loads((registry.registry_dir / "fusion.json").read_text())
    fusion["models"].append({"layer": "layer3", "model_name": "tcn", "version": "1.0.0"})
    (registry.registry_dir / "fusion.json").write_text(json.dumps(fusion))

    live = _follow_twice(registry, "fused", tmp_path, 200)
    score_fused(registry, [DataSource("zeek", "zeek", {"path": str(tmp_path / "conn.log")})],
                tmp_path / "batch.jsonl")
    batch = _jsonl(tmp_path / "batch.jsonl")
    assert [r["unit"] for r in live] == [r["unit"] for r in batch]
    assert all(r["tail_layer3"] is None for r in live)
    assert sum(r["tail_layer3"] is not None for r in batch) > 100
    p1 = np.array([r["tail_layer1"] for r in live])
    assert p1.tolist() == [r["tail_layer1"] for r in batch]
    scores = np.array([r["score"] for r in live])
    np.testing.assert_allclose(scores, -np.log10(np.minimum(1.0, 2 * p1)), rtol=1e-6)
    assert (scores <= np.array([r["score"] for r in batch]) + 1e-6).all()
    assert {r["unit"] for r in live if r["is_alert"]} <= {r["unit"] for r in batch if r["is_alert"]}
    assert {d["maximus"]["unit"] for d in _jsonl(tmp_path / "alerts.jsonl")} == \
        {r["unit"] for r in live if r["is_alert"]}


def test_the_rolling_guard_warns_once_per_excursion(caplog):
    guard = RollingGuard(0.01, window=1000, factor=3.0)
    with caplog.at_level(logging.INFO, logger="training.scoring.rolling_guard"):
        said = [guard.add(500, 5), guard.add(500, 5),     # 1%: as expected
                guard.add(500, 100), guard.add(500, 100),  # 20%: one excursion, one warning
                guard.add(500, 5), guard.add(500, 5),      # the window is back within
                guard.add(1000, 200)]                      # a second excursion
    assert [s is not None for s in said] == [False, False, True, False, False, False, True]
    assert "over the last 1,000 units" in said[2] and guard.excursions == 2
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO", "WARNING"]
    assert (guard.units, guard.alerts) == (1000, 200)  # the window: whole batches, >= 1,000 units


def test_the_rolling_guard_checks_its_arguments_and_a_given_maximum():
    with pytest.raises(ConfigError, match="the guard window must be >= 1 units, got 0"):
        RollingGuard(0.01, window=0)
    assert RollingGuard(None, window=1).add(1, 1) is None  # no calibration, no maximum: no bound
    with pytest.raises(ConfigError, match=r"alerts must be in \[0, units=3\], got 4"):
        RollingGuard(0.01).add(3, 4)
    capped = RollingGuard(None, window=100, max_alert_rate=0.05)
    assert capped.add(100, 4) is None and "past the maximum" in capped.add(100, 30)


def _excursion_registry(root: Path) -> ModelRegistry:
    """Calibrated on every 5th connection (large transfers to port 31337, scored lower by this
    VAE than the others): the others are traffic unlike the calibration, and all alert."""
    return _register(root, Calibration.fit(_scores(range(0, 1000, 5)), rule="quantile:0.999"))


def test_under_follow_the_guard_warns_once_per_excursion_and_scoring_goes_on(tmp_path, caplog):
    registry = _excursion_registry(tmp_path)
    log, scores = tmp_path / "conn.log", tmp_path / "scores.jsonl"
    log.write_text(header(T0))
    outputs = FollowOutputs(alerts=tmp_path / "alerts.jsonl", state=tmp_path / "state",
                            scores=scores)
    stop = threading.Event()
    follower = threading.Thread(target=follow_events, kwargs=dict(
        registry=registry, model_name="vae", outputs=outputs, poll_seconds=0.02, stop=stop,
        sources=[DataSource("zeek", "zeek", {"path": str(log)})], guard_window=200))
    like_calibration = iter(range(0, 10_000, 5))
    unlike = (n for n in range(10_000) if n % 5)
    chunks = [(like_calibration, 200), (unlike, 100), (unlike, 100), (like_calibration, 300),
              (unlike, 200)]  # two excursions
    written = 0
    with caplog.at_level(logging.WARNING, logger="training.scoring.rolling_guard"):
        follower.start()
        try:
            for numbers, count in chunks:
                with open(log, "a") as out:
                    out.write(_lines(next(numbers) for _ in range(count)))
                written += count
                deadline = time.monotonic() + 30
                while _whole_lines(scores) < written:  # the scorer may be mid-append
                    assert time.monotonic() < deadline, "the scorer fell behind"
                    time.sleep(0.02)
        finally:
            stop.set()
            follower.join(timeout=30)
    assert not follower.is_alive()
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2 and all("over the last" in w for w in warnings)
    rows = _jsonl(scores)
    assert len(rows) == written == 900 and sum(r["is_alert"] for r in rows) >= 400


def test_score_once_past_max_alert_rate_warns_and_exits_0(tmp_path, capsys):
    _excursion_registry(tmp_path)
    log = tmp_path / "conn.log"
    log.write_text(header(T0) + _lines(range(300)))  # 4 in 5 alert
    code = main(["score", "--model", "vae", "--registry-dir", str(tmp_path / "models"),
                 "--input", f"zeek:{log}", "--output", str(tmp_path / "s.jsonl"), "--alerts",
                 str(tmp_path / "a.jsonl"), "--once", "--max-alert-rate", "0.05"])
    out, err = capsys.readouterr()
    assert code == 0 and err.count("alert rate past the maximum") == 1
    assert "scoring goes on" in err and "1 excursion(s) past the guard's bound" in out


def test_the_scorers_own_files_inside_the_followed_folder_are_not_read(tmp_path, caplog,
                                                                       monkeypatch):
    """Run from the folder it follows, with its outputs there: the alerts (a .json, a name a
    Zeek folder takes), the rows and the state folder (state.json, replaced at every commit)
    are left out, so nothing is read back and no 'removed before it was read' warning."""
    from training.tests.test_follow import _register as register_vae

    registry = register_vae(tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "conn.log").write_text(header(T0) + _lines(range(20)))
    monkeypatch.chdir(logs)
    outputs = FollowOutputs(alerts=Path("out/a.json"), scores=Path("out/s.jsonl"),
                            state=Path("out/s.jsonl.state"))
    source = [DataSource("z", "zeek", {"path": str(logs)})]
    with caplog.at_level(logging.WARNING):
        follow_events(registry, "vae", source, outputs, once=True)
        with (logs / "conn.log").open("a") as handle:
            handle.write(_lines(range(20, 30)))
        summary = follow_events(registry, "vae", source, outputs, once=True)
    assert summary.counts["events"] == 30 and summary.counts["quarantined"] == 0
    assert len((logs / "out/s.jsonl").read_text().splitlines()) == 30
    assert "removed before it was read" not in caplog.text
    state = json.loads((logs / "out/s.jsonl.state/state.json").read_text())
    assert [p["path"] for p in state["positions"]] == [str(logs / "conn.log")]
    with pytest.raises(ConfigError, match=r"out/s\.jsonl is given as an input, but the scorer "
                                          r"writes it \(an output, the alerts or the state "
                                          r"folder\); give another output path"):
        follow_events(registry, "vae", [DataSource("j", "json", {"path": "out/s.jsonl"})],
                      outputs, once=True)


def test_files_removed_before_they_were_read_to_the_end_are_in_the_summary(tmp_path, capsys):
    """The live conn.log holds a line the sensor has not finished (read only once whole); the
    file is removed and a new conn.log written: the next run counts the file and its unread
    bytes as lost, in the CLI's summary line and in `FollowSummary`'s fields."""
    from training.scoring.tables import incidents_path
    from training.tests.test_follow import _register as register_vae

    register_vae(tmp_path)
    registry = ModelRegistry(tmp_path / "models")
    log, scores, alerts = tmp_path / "conn.log", tmp_path / "s.jsonl", tmp_path / "a.jsonl"
    outputs = FollowOutputs(alerts=alerts, scores=scores, state=tmp_path / "s.jsonl.state",
                            incidents=incidents_path(alerts))  # the CLI's defaults
    sources = [DataSource("zeek0", "zeek", {"path": str(log)})]  # as the CLI names it

    def replace(text: str) -> None:
        """A new conn.log, made before the old one goes, so it cannot get the old inode."""
        new = tmp_path / "conn.new"
        new.write_text(text)
        log.unlink()
        new.rename(log)

    unfinished = [line(20, T0 + 20)[:30], line(30, T0 + 30)[:45]]
    log.write_text(header(T0) + _lines(range(20)) + unfinished[0])
    first = follow_events(registry, "vae", sources, outputs, once=True).to_dict()
    assert (first["lost_files"], first["lost_bytes"]) == (0, 0)  # fields even when none
    replace(header(T0 + 25) + _lines(range(25, 30)) + unfinished[1])
    assert main(["score", "--model", "vae", "--registry-dir", str(tmp_path / "models"),
                 "--input", f"zeek:{log}", "--output", str(scores), "--alerts", str(alerts),
                 "--once"]) == 0
    out = capsys.readouterr().out
    assert "25 events scored" in out
    assert (f"1 file removed before it was read to the end in this run: {len(unfinished[0])} "
            "bytes left unread were not scored") in out.splitlines()
    replace(header(T0 + 40) + _lines(range(40, 45)))
    third = follow_events(registry, "vae", sources, outputs, once=True)
    assert (third.lost_files, third.lost_bytes) == (1, len(unfinished[1]))
    assert third.counts["events"] == 30
    assert main(["score", "--model", "vae", "--registry-dir", str(tmp_path / "models"),
                 "--input", f"zeek:{log}", "--output", str(scores), "--alerts", str(alerts),
                 "--once"]) == 0
    assert "removed before" not in capsys.readouterr().out  # none lost: no line
