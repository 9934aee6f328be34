"""Concurrency: several processes on one output at once are either safe or refused with a clear
lock error; the output is never corrupted. Whole pipeline runs use pipeline_runs.py."""

from __future__ import annotations

from collections import Counter

import pytest

from training.tests.reliability.harness import (
    assert_ok, demo_inputs, finish, last_json, run_child, start_child, wait_for,
)
from training.tests.reliability.pipeline_runs import pipeline_code, unlabeled_events
from training.tests.reliability.test_crashes import COLLECT, _collected_ids, _quarantined_lines

pytestmark = pytest.mark.reliability


def test_parallel_collectors_on_one_directory(tmp_path, observed):
    """Stage: collection
    Fault: a second `collect_to` process started on the same output directory while the first
        is held between two checkpoints (paused just before its second checkpoint rename).
    Expected: the second process exits with CheckpointError "in use by another collection"
        and writes nothing; the first finishes; a later run resumes with nothing new. Every
        event is in the output exactly once, every bad line quarantined once.
    """
    paths, events, bad = demo_inputs(tmp_path, n_events=300, n_files=2, bad_every=53)
    out = tmp_path / "out"
    code = COLLECT.format(paths=[str(p) for p in paths], out=str(out))
    flag = tmp_path / "paused"
    first = start_child(code, {"action": "pause", "pattern": "checkpoint.json", "at": "replace",
                               "nth": 2, "flag": str(flag)})
    wait_for(flag, first)
    before = sorted(p.name for p in out.rglob("*"))
    rival = run_child(code)
    assert rival.returncode == 1, rival.stderr[-3000:]
    assert "CheckpointError" in rival.stderr and "in use by another collection" in rival.stderr
    assert sorted(p.name for p in out.rglob("*")) == before  # the rival touched nothing
    (tmp_path / "paused.go").touch()
    stats = last_json(finish(first))
    assert stats["events"] == len(events) and stats["quarantined"] == len(bad)

    again = last_json(run_child(code))
    assert again["events"] == len(events) and again["duplicates"] == 0
    assert _collected_ids(out) == Counter(e["event_id"] for e in events)
    assert _quarantined_lines(out) == Counter(bad)
    observed(rival.stderr.strip().splitlines()[-1])


REGISTER_AND_PROMOTE = """
for round_ in range(2):
    version = f"{worker}.{{round_}}.0"
    registry.register_model({weights!r}, ModelMetadata("vae", version, "layer1"),
                            actor="worker{worker}")
    registry.transition_stage("vae", version, "production", actor="worker{worker}")
"""


def test_parallel_registry_writers(tmp_path, observed):
    """Stage: registry register
    Fault: three processes at once on one registry, each registering two versions of the same
        model and promoting each to production right after registering it.
    Expected: all succeed (writes wait for each other); every version is registered once and
        loads verified; exactly one production version, named by the champion alias; the log
        has one register entry per version and every promotion archived the previous
        production, so the production chain is unbroken.
    """
    from training.tests.reliability.harness import REGISTRY_CHILD, seeded_registry

    registry = seeded_registry(tmp_path)
    children = [start_child(REGISTRY_CHILD.format(
        registry=str(registry.registry_dir),
        body=REGISTER_AND_PROMOTE.format(worker=w, weights=str(tmp_path / "new.pt"))))
        for w in range(2, 5)]
    for child in children:
        assert_ok(finish(child))
    versions = {m.version: m.stage for m in registry.list_models("vae")}
    new = {f"{w}.{r}.0" for w in range(2, 5) for r in range(2)}
    assert set(versions) == {"1.0.0", "1.1.0"} | new
    [champion] = [v for v, stage in versions.items() if stage == "production"]
    assert registry.aliases("vae")["champion"] == champion
    log = registry.history("vae")
    assert Counter(t.version for t in log if t.event == "register") == Counter(set(versions))
    chain = [(t.version, t.from_stage, t.to_stage) for t in log if t.event == "stage"]
    promoted = [v for v, _, to in chain if to == "production"]
    archived = [v for v, frm, to in chain if frm == "production" and to == "archived"]
    assert promoted[0] == "1.0.0" and archived == promoted[:-1] and promoted[-1] == champion
    for version in versions:
        registry.load_model("vae", version)
    observed(f"{len(new)} versions from 3 processes; production chain of {len(promoted)} "
             f"promotions unbroken, champion {champion}")


TUNE_COMMAND = """
import json, sys
from training.hyperparameter_tuner import HyperparameterTuner, TuningConfig
from training.tests.tuning_helpers import RecordingObjective
config = TuningConfig("shared", n_trials=8, n_workers=2, output_dir={out!r}, seed={seed},
                      use_pruner=False)
result = HyperparameterTuner(config).tune(RecordingObjective({log!r}, barrier=4))
print(json.dumps({{"ran": result.ran}}))
"""


def test_parallel_tuning_commands_share_one_study(tmp_path, observed):
    """Stage: tuning
    Fault: two `tune` commands started at once on the same study (8 trials), each with two
        worker processes: four processes writing one journal-file study, whose first trials
        provably run at the same time (each waits until all four have started one).
    Expected: both commands succeed; every trial any worker ran is in the study once (unique
        numbers), complete, with the parameters that worker used; none is left running; the
        study has at least its 8 trials and overshoots by at most the 3 other workers' trial
        in flight when the budget was reached.
    """
    from optuna.trial import TrialState

    from training.tests.tuning_helpers import recorded_trials
    from training.tuning.tuner import HyperparameterTuner, TuningConfig

    out, log = tmp_path / "tuning", tmp_path / "log"
    log.mkdir()
    children = [start_child(TUNE_COMMAND.format(out=str(out), seed=seed, log=str(log)))
                for seed in (1, 2)]
    ran = [last_json(finish(child))["ran"] for child in children]
    study = HyperparameterTuner(TuningConfig("shared", n_trials=8, n_workers=2,
                                             output_dir=str(out))).load_study()
    trials = study.get_trials()
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert 8 <= len(trials) <= 8 + 3 and sum(ran) == len(trials)
    records = recorded_trials(log)
    assert sorted(number for _, number, _ in records) == list(range(len(trials)))
    by_number = {t.number: t for t in trials}
    assert all(by_number[number].params["x"] == x for _, number, x in records)
    assert len({pid for pid, _, _ in records}) == 4  # the barrier: all four ran at once
    observed(f"{len(trials)} trials from {len({pid for pid, _, _ in records})} worker "
             f"processes, each once, none lost or left running (commands ran {ran})")


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
    registry = ModelRegistry(work / "models")
    assert [m.version for m in registry.list_models("layer1_vae")] == ["1.0.0"]
    assert done == {"version": "1.0.0", "stage": "production"}
    loaded = registry.load_model("layer1_vae", stage="production")
    assert loaded.threshold is not None
    from training.collection.collector import DataSource
    from training.scoring.batch import score_events

    scored = score_events(registry, "layer1_vae", [DataSource("e", "json_file",
                                                              {"path": str(events)})],
                          tmp_path / "scored.parquet")
    assert scored.units == 400
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
