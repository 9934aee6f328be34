"""Whole pipeline runs killed half-way: between registering and promoting its model, or before
its report is written (two runs at once: test_concurrency)."""

from __future__ import annotations


import pytest

from training.tests.reliability.harness import (
    assert_killed, last_json, run_child,
)
from training.tests.reliability.pipeline_runs import pipeline_code, unlabeled_events

pytestmark = pytest.mark.reliability


def _versions(workdir) -> dict:
    from training.registry.registry import ModelRegistry

    registry = ModelRegistry(workdir / "models")
    return {m.version: m for m in registry.list_models("layer1_vae")}


def test_pipeline_killed_between_register_and_promote(tmp_path, observed):
    """Stage: registry promote
    Fault: SIGKILL of a first `run_pipeline` (no production model yet, so its model is to be
        promoted) at the first statement that moves a version's stage, after the model files
        were copied into the registry.
    Expected: no version is left in stage none whose recorded decision says deploy: true
        (registration and promotion are one transaction); the next run registers and promotes
        its model.
    """
    events = unlabeled_events(tmp_path)
    work = tmp_path / "run"
    assert_killed(run_child(pipeline_code(work, events), {
        "action": "kill", "at": "sql", "pattern": "UPDATE versions SET stage*"}))
    stranded = {v: m.stage for v, m in _versions(work).items()
                if m.details["decision"]["deploy"] and m.stage != "production"}
    assert stranded == {}, f"decided to deploy, never promoted: {stranded}"
    again = last_json(run_child(pipeline_code(work, events)))
    assert again["stage"] == "production"
    assert {v: m.stage for v, m in _versions(work).items()} == {again["version"]: "production"}
    observed(f"killed run left {len(_versions(work)) - 1} versions; next run promoted "
             f"{again['version']}")


def test_pipeline_killed_before_its_report(tmp_path, observed):
    """Stage: pipeline
    Fault: a first run completes; a second run is SIGKILLed after registering its model, just
        before pipeline.json is renamed into place (the report comes after it).
    Expected: report/index.html no longer passes for a complete report of the registry: it
        says the run did not finish (or names the new version); the next run rewrites it whole.
    """
    events = unlabeled_events(tmp_path)
    work = tmp_path / "run"
    last_json(run_child(pipeline_code(work, events)))
    assert_killed(run_child(pipeline_code(work, events), {
        "action": "kill", "at": "replace", "pattern": "pipeline.json"}))
    assert set(_versions(work)) == {"1.0.0", "1.1.0"}
    page = (work / "report" / "index.html").read_text()
    assert "did not finish" in page or "1.1.0" in page
    third = last_json(run_child(pipeline_code(work, events)))
    page = (work / "report" / "index.html").read_text()
    assert third["version"] in page and "did not finish" not in page
    observed("index.html after the kill: " + ("marked unfinished" if "did not finish" in page
                                              else "names 1.1.0"))
