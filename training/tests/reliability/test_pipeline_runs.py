"""Whole pipeline runs that race or die half-way: two runs on one working directory, concurrent
registrations, a SIGKILL between registering and promoting or before the report is written."""

from __future__ import annotations


import pytest

from training.tests.reliability.harness import (
    assert_killed, assert_ok, finish, last_json, run_child, start_child, wait_for,
)
from training.tests.reliability.pipeline_runs import pipeline_code, unlabeled_events

pytestmark = pytest.mark.reliability


def _versions(workdir) -> dict:
    from training.registry.registry import ModelRegistry

    registry = ModelRegistry(workdir / "models")
    return {m.version: m for m in registry.list_models("layer1_vae")}


def _files(work) -> dict:
    """Files and their times, but TensorBoard's (its writer thread runs in a paused run)."""
    return {p: p.stat().st_mtime_ns for p in work.rglob("*")
            if p.is_file() and "logs" not in p.relative_to(work).parts}


def test_two_pipeline_runs_on_one_workdir(tmp_path, observed):
    """Stage: pipeline
    Fault: a second `run_pipeline` started on the working directory of a first one that is held
        in the middle of writing its best checkpoint (checkpoints/ is shared by the two).
    Expected: the second refuses at start with an error naming the first's pid, and writes
        nothing; the first finishes, and its version holds its own checkpoint (it loads, with
        a threshold, and scores).
    """
    from training.registry.registry import ModelRegistry

    events = unlabeled_events(tmp_path)
    work = tmp_path / "run"
    flag = tmp_path / "paused"
    first = start_child(pipeline_code(work, events), {
        "action": "pause", "pattern": ".layer1_vae_best.pt*", "flag": str(flag)})
    wait_for(flag, first)
    before = _files(work)
    rival = run_child(pipeline_code(work, events, seed=1))
    assert _files(work) == before  # the rival wrote nothing
    (tmp_path / "paused.go").touch()
    done = last_json(finish(first))
    assert rival.returncode == 1, rival.stderr[-3000:]
    assert "WorkdirBusyError" in rival.stderr and f"pid {first.pid}" in rival.stderr
    assert list(_versions(work)) == ["1.0.0"] and done == {"version": "1.0.0",
                                                          "stage": "production"}
    loaded = ModelRegistry(work / "models").load_model("layer1_vae", stage="production")
    assert loaded.threshold is not None
    observed(rival.stderr.strip().splitlines()[-1])


REGISTER = """
import sys
from training.cli.main import main
sys.exit(main(["registry", "register", "--registry-dir", {registry!r}, "--model", "vae",
               "--layer", "layer1", "--model-path", {weights!r}]))
"""


def test_concurrent_registrations_without_a_version(tmp_path, observed):
    """Stage: registry register
    Fault: `registry register` without --version in two processes at once on one registry: the
        first is held after opening the registry, before its registration's transaction, while
        the second registers the model.
    Expected: both succeed with two different versions (1.0.0, 1.1.0), each chosen inside
        the registration's write transaction; none fails "already registered".
    """
    from training.tests.reliability.harness import small_model

    registry = tmp_path / "models"
    weights = small_model(tmp_path / "m.pt", 3)
    code = REGISTER.format(registry=str(registry), weights=str(weights))
    from training.registry.registry import ModelRegistry
    ModelRegistry(registry)  # an empty registry: its schema exists before the race
    flag = tmp_path / "paused"
    held = start_child(code, {"action": "pause", "at": "sql", "pattern": "BEGIN IMMEDIATE",
                              "nth": 2, "flag": str(flag)})
    wait_for(flag, held)
    other = run_child(code)
    (tmp_path / "paused.go").touch()
    result = finish(held)
    assert_ok(other)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(_registered(registry)) == ["1.0.0", "1.1.0"]
    observed(f"versions {sorted(_registered(registry))} from two processes")


def _registered(registry) -> list[str]:
    from training.registry.registry import ModelRegistry

    return [m.version for m in ModelRegistry(registry).list_models("vae")]


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
