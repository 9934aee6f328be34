"""An output that names an input is refused before any work, the input left as it was: `score`
wrote its scores over the events it scored, `evaluate --report` its report over the events or
over the model's sidecar, each silently (red-team trial)."""

from __future__ import annotations

import json

import pytest

from training.cli.main import main
from training.collection.collector import DataSource
from training.demo.generator import write_demo_file
from training.errors import ConfigError
from training.registry.registry import ModelMetadata, ModelRegistry
from training.scoring.batch import score_events
from training.sources.read_files import refuse_replacing_inputs, source_files
from training.tests.registry_fixtures import save_tiny

EVENTS = "".join(json.dumps({"event_id": f"e{i}", "timestamp": f"2026-11-20T10:00:0{i}Z",
                             "event_type": "conn", "source_ip": f"10.0.0.{i}",
                             "dest_ip": "8.8.8.8", "dest_port": 443}) + "\n" for i in range(5))


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    registry = ModelRegistry(tmp_path / "models")
    weights = save_tiny(tmp_path / "src" / "tiny.pt", dim=128)
    registry.register_model(weights, ModelMetadata("tiny", "1.0.0", "layer1", stage="production"))
    return registry


def test_score_refuses_an_output_that_is_its_input_or_beside_it(tmp_path, registry):
    logs = tmp_path / "logs"
    logs.mkdir()
    for name in ("ev.jsonl", "s.quarantine.jsonl"):
        (logs / name).write_text(EVENTS)
    cases = [("ev.jsonl", "ev.jsonl", r"logs/ev\.jsonl is one of its inputs; give it another"),
             ("s.quarantine.jsonl", "s.jsonl",
              r"logs/s\.jsonl writes .*logs/s\.quarantine\.jsonl, one of its inputs"),
             (".", "ev.jsonl", r"logs/ev\.jsonl is one of its inputs")]  # found in the folder
    for given, output, words in cases:
        source = DataSource("j", "json_file", {"path": str(logs / given)})
        with pytest.raises(ConfigError, match=r"^output must not replace a file this command "
                                              r"reads: .*" + words):
            score_events(registry, "tiny", [source], logs / output)
    assert sorted(p.name for p in logs.iterdir()) == ["ev.jsonl", "s.quarantine.jsonl"]
    assert all(p.read_text() == EVENTS for p in logs.iterdir())


def test_the_command_line_names_the_flag_for_one_model_and_the_fused_detector(
        tmp_path, registry, capsys):
    events = tmp_path / "ev.jsonl"
    events.write_text(EVENTS)
    for model in ("tiny", "fused"):
        code = main(["score", "--registry-dir", str(registry.registry_dir), "--model", model,
                     "--input", f"json:{events}", "--output", str(events)])
        assert code == 2
        assert capsys.readouterr().err == (
            f"error: --output must not replace a file this command reads: {events} is one of "
            "its inputs; give it another path\n")
    assert events.read_text() == EVENTS


def test_evaluate_refuses_a_report_over_its_events_or_the_model_sidecar(tmp_path, capsys):
    weights = save_tiny(tmp_path / "tiny.pt", dim=128)
    sidecar = (tmp_path / "tiny.json").read_bytes()
    events = tmp_path / "ev.json"
    events.write_text(EVENTS)
    for report, replaced in ((tmp_path / "tiny", tmp_path / "tiny.json"),
                             (tmp_path / "ev.html", events)):
        code = main(["evaluate", "--model", str(weights), "--source", f"json:{events}",
                     "--report", str(report), "--no-latency"])
        assert code == 2
        assert capsys.readouterr().err.startswith(
            f"error: --report must not replace a file this command reads: {report} writes "
            f"{replaced}, one of its inputs")
    assert (tmp_path / "tiny.json").read_bytes() == sidecar and events.read_text() == EVENTS
    assert not (tmp_path / "tiny.html").exists() and not (tmp_path / "ev.txt").exists()


def test_a_link_to_an_input_is_replaced_as_a_link_and_unreadable_sources_add_nothing(tmp_path):
    events = tmp_path / "ev.jsonl"
    events.write_text(EVENTS)
    (tmp_path / "out.jsonl").symlink_to(events)  # atomic_write replaces the link, not ev.jsonl
    refuse_replacing_inputs(tmp_path / "out.jsonl", [tmp_path / "out.jsonl"], [events], "output")
    (tmp_path / "out.jsonl").unlink()
    assert source_files([DataSource("m", "json_file", {"path": str(tmp_path / "missing")}),
                         DataSource("j", "json_file", {"path": str(tmp_path)})]) == [events]


def test_preprocess_keeps_a_collections_quarantine_and_an_input_named_like_its_own(
        tmp_path, capsys):
    """preprocess rewrites OUTPUT/quarantine.jsonl every run: given a collection's folder, it
    replaced the records collect had quarantined there with its own (none)."""
    events = tmp_path / "ev.jsonl"
    events.write_text(EVENTS + '{"timestamp": "no time", "source_ip": "10.0.0.9"}\n')
    collected = tmp_path / "collected"
    assert main(["-q", "collect", "--source", f"json:{events}", "--output", str(collected)]) == 0
    kept = (collected / "quarantine.jsonl").read_bytes()
    assert kept.count(b"\n") == 1
    capsys.readouterr()
    assert main(["preprocess", "--source", f"json:{events}", "--output", str(collected),
                 "--layers", "layer1"]) == 2
    assert capsys.readouterr().err == (
        f"error: --output must not be a collection's folder: {collected} holds one "
        "(checkpoint.json), whose quarantine.jsonl (the records it quarantined) preprocess "
        "would replace with its own; give another\n")
    assert (collected / "quarantine.jsonl").read_bytes() == kept
    assert not (collected / "layer1_samples.npz").exists()
    named = tmp_path / "named"
    named.mkdir()
    (named / "quarantine.jsonl").write_text(EVENTS)
    assert main(["preprocess", "--source", f"json:{named}", "--output", str(named),
                 "--layers", "layer1"]) == 2
    assert "quarantine.jsonl is one of its inputs" in capsys.readouterr().err
    assert (named / "quarantine.jsonl").read_text() == EVENTS


def test_split_refuses_a_prefix_that_would_replace_the_file_it_splits(tmp_path, capsys):
    """`split --data s/x_train.npz --output s --prefix x` (splitting a training part again)
    replaced the whole file with its own training part."""
    events = write_demo_file(tmp_path / "events.json", n_events=200, seed=3)
    assert main(["-q", "preprocess", "--source", f"json:{events}", "--output",
                 str(tmp_path / "features")]) == 0
    data = tmp_path / "x_train.npz"
    (tmp_path / "features" / "layer1_samples.npz").rename(data)
    before = data.read_bytes()
    capsys.readouterr()
    assert main(["split", "--data", str(data), "--output", str(tmp_path), "--prefix", "x"]) == 2
    assert capsys.readouterr().err == (
        f"error: --output must not replace a file this command reads: {tmp_path} writes "
        f"{data}, one of its inputs; give another --output or --prefix\n")
    assert data.read_bytes() == before and sorted(p.name for p in tmp_path.glob("x_*")) == [
        "x_train.npz"]
