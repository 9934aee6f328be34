"""Crashes: a real SIGKILL at a chosen write of each stage, then a restart.

Each test runs the stage in a child process with a fault armed (faults.py): the child writes
until the chosen point and is killed there by SIGKILL, so what it leaves on disk is exactly what
a crash leaves. Then the stage runs again (or its output is read) and nothing may be lost,
duplicated or accepted half-written.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from training.errors import PipelineError
from training.data_preprocessor import LayerArrays
from training.tests.reliability.harness import (
    TRAIN, TUNE, assert_killed, demo_inputs, last_json, run_child, temporaries, train_vae,
    tune_study,
)

pytestmark = pytest.mark.reliability


# -- collection ---------------------------------------------------------------------------------

COLLECT = """
import json, sys
from training.data_collection import DataCollector, DataSource
paths = {paths!r}
sources = [DataSource(f"f{{i}}", "json_file", {{"path": p, "block_size": 8192}})
           for i, p in enumerate(paths)]
# A part and a checkpoint per batch (by default a part holds 5 s of batches): faults land
# between parts and checkpoints.
collector = DataCollector(sources, output_dir={out!r}, progress=False, checkpoint_every=1)
collector.collect_to()
print(json.dumps(collector.get_stats()))
"""


def _collected_ids(out: Path) -> Counter:
    return Counter(i for part in sorted((out / "events").glob("part-*.parquet"))
                   for i in pq.read_table(part, columns=["event_id"])["event_id"].to_pylist())


def _quarantined_lines(out: Path) -> Counter:
    path = out / "quarantine.jsonl"
    return Counter((r["file"], r["line"]) for r in map(json.loads, path.read_text().splitlines()))


@pytest.mark.parametrize("fault", [
    pytest.param({"action": "kill", "pattern": "*part-000002.parquet*", "after_bytes": 1500},
                 id="mid-part-write"),
    pytest.param({"action": "kill", "pattern": "checkpoint.json", "at": "replace", "nth": 3},
                 id="before-checkpoint-rename"),
    pytest.param({"action": "kill", "pattern": "quarantine.jsonl", "nth": 2, "after_bytes": 40},
                 id="mid-quarantine-append"),
])
def test_collection_killed_then_resumed_delivers_each_event_once(tmp_path, fault, observed):
    """Stage: collection
    Fault: SIGKILL of `collect_to` with two JSON Lines inputs holding malformed lines, at the
        point named by the test id: inside the write of an event part, just before
        checkpoint.json is renamed into place, or in the middle of a quarantine append.
    Expected: the resumed run delivers every good event exactly once, every malformed line is
        quarantined exactly once (file, line), counters add up, no temporary file survives.
    """
    paths, events, bad = demo_inputs(tmp_path, n_events=600, n_files=2, bad_every=53)
    out = tmp_path / "out"
    code = COLLECT.format(paths=[str(p) for p in paths], out=str(out))
    assert_killed(run_child(code, fault))
    assert (out / "checkpoint.json").exists(), "the kill came before any checkpoint"

    stats = last_json(run_child(code))
    assert _collected_ids(out) == Counter(e["event_id"] for e in events)
    assert _quarantined_lines(out) == Counter(bad)
    assert stats["events"] == len(events) and stats["quarantined"] == len(bad)
    assert stats["rows"] == stats["events"] + stats["quarantined"] and stats["duplicates"] == 0
    assert temporaries(out) == []
    observed(f"resumed: {stats['events']} events once, {stats['quarantined']} quarantined once")


# -- preprocessing save -------------------------------------------------------------------------

SAVE_SAMPLES = """
import json
from training.data_preprocessor import DataPreprocessor, LayerType
events = [json.loads(line) for line in open({events!r})]
pre = DataPreprocessor(output_dir={out!r})
for n in (100, 300):  # a first good save, then a bigger one over it
    path = pre.save_samples(pre.featurize(events[:n], LayerType.LAYER1_SENSORY), "layer1_samples")
    print(json.dumps({{"saved": n}}), flush=True)
"""


def test_preprocessing_save_killed_keeps_previous_file(tmp_path, observed):
    """Stage: preprocessing save
    Fault: SIGKILL halfway through `DataPreprocessor.save_samples` overwriting an existing
        layer1_samples.npz (the second save of the file, after 20 kB reached the disk).
    Expected: layer1_samples.npz is still the first save, complete and loadable; the partial
        temporary file is not a loadable dataset (a clear package error).
    """
    paths, _, _ = demo_inputs(tmp_path, n_events=300, n_files=1)
    out = tmp_path / "pre"
    fault = {"action": "kill", "pattern": "*layer1_samples.npz*", "nth": 2, "after_bytes": 20_000}
    result = run_child(SAVE_SAMPLES.format(events=str(paths[0]), out=str(out)), fault)
    assert_killed(result)
    assert result.stdout.strip().splitlines() == ['{"saved": 100}']
    kept = LayerArrays.load(out / "layer1_samples.npz")
    assert len(kept) == 100 and kept.arrays["features"].shape == (100, 128)
    [partial] = temporaries(out)
    assert 0 < partial.stat().st_size <= 20_000
    with pytest.raises(PipelineError) as info:
        LayerArrays.load(partial)
    observed(f"previous file intact (100 samples); partial file refused: {info.value}")


# -- training checkpoints -----------------------------------------------------------------------

@pytest.mark.parametrize("fault", [
    pytest.param({"action": "kill", "pattern": "*vae_best.pt*", "nth": 2, "after_bytes": 500},
                 id="best"),
    pytest.param({"action": "kill", "pattern": "*vae_last_state.pt*", "nth": 3,
                  "after_bytes": 500}, id="last"),
    pytest.param({"action": "kill", "pattern": "*vae_epoch0004.pt*", "after_bytes": 500},
                 id="periodic"),
])
def test_training_killed_at_checkpoint_write_then_resumed(tmp_path, fault, straight_training,
                                                          observed):
    """Stage: training
    Fault: SIGKILL of `LayerTrainer.train` (6 epochs, best, periodic every 2 and last-state
        checkpoints) in the middle of writing the checkpoint named by the test id: the second
        best model, the third last-state file, or the epoch-4 periodic weights.
    Expected: `train(..., resume=True)` continues from the last complete state and ends with
        exactly the history (epochs 1-6, same losses) and weights of an uninterrupted run;
        every checkpoint file in place loads (sha256 verified); the partial file is never
        taken for a checkpoint.
    """
    from training.artifacts.model_files import load_model
    from training.trainer.resume import load_state

    ck = tmp_path / "ck"
    assert_killed(run_child(TRAIN.format(ck=str(ck), resume=False), fault))
    partial = temporaries(ck)
    assert partial, "the kill left no partial checkpoint: it came at another point"
    resumed = train_vae(str(ck), resume=True)  # in this process: same code, same figures
    assert resumed["epochs"] == [1, 2, 3, 4, 5, 6]
    assert resumed["train_loss"] == straight_training["train_loss"]
    assert resumed["weights"] == straight_training["weights"]
    for name in ("vae_best.pt", "vae_epoch0002.pt", "vae_epoch0004.pt", "vae_epoch0006.pt"):
        load_model(ck / name)
    assert load_state(ck / "vae_last_state.pt")["epoch"] == 6
    for leftover in partial:
        with pytest.raises(PipelineError):
            (load_state if "last_state" in leftover.name else load_model)(leftover)
    observed(f"killed leaving {', '.join(p.name for p in partial)}; resumed: epochs 1-6, "
             "weights identical to an uninterrupted run")


# -- registry -----------------------------------------------------------------------------------

REGISTER_NEW = 'registry.register_model({new!r}, ModelMetadata("vae", "2.0.0", "layer1"))'
PROMOTE = 'registry.transition_stage("vae", "1.1.0", "production", reason="challenger won")'


@pytest.mark.parametrize("fault", [
    pytest.param({"action": "kill", "pattern": "model.pt", "after_bytes": 300},
                 id="mid-artifact-write"),
    pytest.param({"action": "kill", "at": "sql", "pattern": "INSERT INTO transitions*"},
                 id="inside-transaction"),
])
def test_registry_register_killed(tmp_path, fault, observed):
    """Stage: registry register
    Fault: SIGKILL of `register_model` (vae 2.0.0) in the middle of copying the weights into
        the version's folder, or inside the SQLite transaction after the folder was renamed
        into place and the version row inserted, before COMMIT (test id).
    Expected: afterwards the registry is exactly as before (versions, stages, aliases,
        transition log); 2.0.0 is not found; registering 2.0.0 again succeeds (the leftover
        folder is cleared) and the version loads verified.
    """
    from training.errors import NotFoundError
    from training.registry.registry import ModelMetadata
    from training.tests.reliability.harness import REGISTRY_CHILD, registry_state, seeded_registry

    registry = seeded_registry(tmp_path)
    before = registry_state(registry)
    body = REGISTER_NEW.format(new=str(tmp_path / "new.pt"))
    assert_killed(run_child(REGISTRY_CHILD.format(registry=str(registry.registry_dir),
                                                  body=body), fault))
    left = sorted(p.name for p in (registry.artifacts_dir / "vae").iterdir())
    assert registry_state(registry) == before
    with pytest.raises(NotFoundError):
        registry.load_model("vae", "2.0.0")
    registry.register_model(tmp_path / "new.pt", ModelMetadata("vae", "2.0.0", "layer1"))
    assert registry.get_model("vae", "2.0.0").metadata.version == "2.0.0"
    assert sorted(p.name for p in (registry.artifacts_dir / "vae").iterdir()) == \
        ["1.0.0", "1.1.0", "2.0.0"]
    observed(f"registry unchanged after the kill (leftovers {left}); 2.0.0 registered on retry")


def test_registry_promote_killed_inside_transaction(tmp_path, observed):
    """Stage: registry promote
    Fault: SIGKILL of `transition_stage(vae, 1.1.0, production)` inside its transaction, after
        1.0.0 was archived, 1.1.0 set to production and the champion alias moved, at the last
        statement before COMMIT.
    Expected: the promotion is entirely absent: 1.0.0 is still production and champion, 1.1.0
        still none, no log entry of it; promoting again works and rollback restores 1.0.0.
    """
    from training.tests.reliability.harness import REGISTRY_CHILD, registry_state, seeded_registry

    registry = seeded_registry(tmp_path)
    before = registry_state(registry)
    fault = {"action": "kill", "at": "sql", "pattern": "UPDATE versions SET replaced_version*"}
    assert_killed(run_child(REGISTRY_CHILD.format(registry=str(registry.registry_dir),
                                                  body=PROMOTE), fault))
    assert registry_state(registry) == before
    assert registry.get_model("vae", stage="production").metadata.version == "1.0.0"
    assert registry.transition_stage("vae", "1.1.0", "production", reason="again")
    assert registry.aliases("vae")["champion"] == "1.1.0"
    assert registry.rollback("vae") == "1.0.0"
    observed("promotion rolled back whole: 1.0.0 production and champion; promote + rollback "
             "work afterwards")


# -- split save ---------------------------------------------------------------------------------

SAVE_SPLITS = """
import numpy as np
from training.dataset_builder import DatasetBuilder, SplitStrategy
rng = np.random.default_rng(0)
features = rng.random((200, 8), dtype=np.float32)
labels = (np.arange(200) % 5 == 0).astype(np.int8)
ids = [f"e{{i}}" for i in range(200)]
for seed in (1, 2):  # a first set of splits, then another cut over it
    builder = DatasetBuilder(features, labels, ids, output_dir={out!r}, random_seed=seed)
    builder.save_splits(builder.create_splits(SplitStrategy.RANDOM), "layer1")
    print("saved", seed, flush=True)
"""


def _split_indices(out: Path) -> dict[str, list[int]]:
    from training.datasets.builder import DatasetBuilder
    splits = DatasetBuilder.load_splits(out, "layer1")
    return {name: sorted(split.indices.tolist()) for name, split in splits.items()}


def _assert_partition(indices: dict[str, list[int]]) -> None:
    every = [i for rows in indices.values() for i in rows]
    assert sorted(every) == list(range(200)), "train, val and test must partition the rows"


def test_split_save_killed_mid_file_keeps_previous_splits(tmp_path, observed):
    """Stage: split save
    Fault: SIGKILL in the middle of writing layer1_train.npz while `save_splits` overwrites a
        saved set of splits with a new cut (another seed).
    Expected: `load_splits` returns the previous set, whole: train, val and test load and
        partition the 200 rows; the partial file is not a loadable split.
    """
    from training.datasets.split import DatasetSplit

    out = tmp_path / "splits"
    fault = {"action": "kill", "pattern": "*layer1_train.npz*", "nth": 2, "after_bytes": 2000}
    result = run_child(SAVE_SPLITS.format(out=str(out)), fault)
    assert_killed(result)
    assert result.stdout.split() == ["saved", "1"]
    _assert_partition(_split_indices(out))
    [partial] = temporaries(out)
    with pytest.raises(PipelineError):
        DatasetSplit.load(partial)
    observed("previous splits intact and partitioning the rows; partial file refused")


def test_split_save_killed_between_files_is_not_a_mixed_set(tmp_path, observed):
    """Stage: split save
    Fault: SIGKILL just before layer1_val.npz is renamed into place, while `save_splits`
        overwrites a saved set with a new cut: the new layer1_train.npz is already in place.
    Expected: `load_splits` either refuses the mixed set with a clear error or returns splits
        of one cut (train, val and test partition the rows, no row in two splits).
    """
    out = tmp_path / "splits"
    fault = {"action": "kill", "pattern": "layer1_val.npz", "at": "replace", "nth": 2}
    assert_killed(run_child(SAVE_SPLITS.format(out=str(out)), fault))
    try:
        indices = _split_indices(out)
    except PipelineError as exc:
        observed(f"mixed set refused: {exc}")
        return
    _assert_partition(indices)


# -- tuning -------------------------------------------------------------------------------------

def _trials(out: Path) -> list:
    from training.tuning.tuner import HyperparameterTuner, TuningConfig
    config = TuningConfig("crash", n_trials=6, output_dir=str(out), seed=0, use_pruner=False)
    return HyperparameterTuner(config).load_study().get_trials()


@pytest.mark.parametrize("kill_in_trial,fault", [
    pytest.param(3, None, id="mid-trial"),
    pytest.param(None, {"action": "kill", "at": "sql", "nth": 3,
                        "pattern": "INSERT INTO trial_values*"}, id="mid-storage-write"),
])
def test_tuning_killed_then_the_study_continues(tmp_path, kill_in_trial, fault, observed):
    """Stage: tuning
    Fault: SIGKILL of `HyperparameterTuner.tune` (6 trials, SQLite study) inside the objective
        of trial 3 after two reported epochs, or inside the storage transaction that records
        the third trial's value (test id).
    Expected: rerunning `tune` continues the study: every trial complete before the kill is
        kept with its parameters and value, the trial cut short is marked failed (not counted,
        not left running), and the study ends with exactly 6 complete trials.
    """
    from optuna.trial import TrialState

    out = tmp_path / "tuning"
    assert_killed(run_child(TUNE.format(kill_in_trial=kill_in_trial, out=str(out)), fault))
    before = _trials(out)
    complete = [(t.number, t.params, t.value) for t in before if t.state == TrialState.COMPLETE]
    assert [t.state for t in before][-1] == TrialState.RUNNING and len(complete) >= 2

    ran = tune_study(str(out)).ran  # the restart, in this process
    after = _trials(out)
    states = Counter(t.state for t in after)
    assert states == {TrialState.COMPLETE: 6, TrialState.FAIL: 1}, states
    assert [(t.number, t.params, t.value) for t in after
            if t.state == TrialState.COMPLETE][:len(complete)] == complete
    assert sorted(t.number for t in after) == list(range(len(after)))
    assert ran == 6 - len(complete)
    observed(f"{len(complete)} trials kept, trial {before[-1].number} failed, {ran} more ran: "
             "6 complete")
