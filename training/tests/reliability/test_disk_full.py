"""Disk full: a write that fails with ENOSPC (a patched file object in a child process raises it
once some bytes reached the file) leaves the previous good file in place and reports the error;
once space is back, the stage completes without loss."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch

from training.artifacts.model_files import load_model
from training.collection.resume_state import CollectionState
from training.data_preprocessor import LayerArrays
from training.tests.reliability.harness import demo_inputs, last_json, run_child, temporaries
from training.tests.reliability.test_crashes import (
    COLLECT, SAVE_SAMPLES, _collected_ids, _quarantined_lines,
)

pytestmark = pytest.mark.reliability
ENOSPC_TEXT = "No space left on device"


def assert_reported_enospc(result) -> str:
    assert result.returncode == 1, f"exit {result.returncode}: {result.stderr[-3000:]}"
    assert ENOSPC_TEXT in result.stderr, result.stderr[-3000:]
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("fault", [
    pytest.param({"action": "enospc", "pattern": "*part-000002.parquet*", "after_bytes": 1000},
                 id="part"),
    pytest.param({"action": "enospc", "pattern": "*checkpoint.json*", "nth": 3,
                  "after_bytes": 100}, id="checkpoint"),
])
def test_collection_disk_full_then_resumed(tmp_path, fault, observed):
    """Stage: collection
    Fault: ENOSPC while `collect_to` writes its third event part, or its third checkpoint.json
        (test id), after some bytes reached the temporary file.
    Expected: the run fails with the OSError (errno 28) reported; checkpoint.json is the last
        good one (loads, consistent); no temporary file remains; rerun with space back, every
        event is delivered exactly once and every bad line quarantined once.
    """
    paths, events, bad = demo_inputs(tmp_path, n_events=400, n_files=2, bad_every=53)
    out = tmp_path / "out"
    code = COLLECT.format(paths=[str(p) for p in paths], out=str(out))
    reported = assert_reported_enospc(run_child(code, fault))
    state = CollectionState.load(out, resume=True, recipe=json.loads(
        (out / "checkpoint.json").read_text())["recipe"])
    state.release()
    assert temporaries(out) == []
    stats = last_json(run_child(code))
    assert _collected_ids(out) == Counter(e["event_id"] for e in events)
    assert _quarantined_lines(out) == Counter(bad)
    assert stats["events"] == len(events) and stats["duplicates"] == 0
    observed(f"{reported}; rerun delivered {stats['events']} events once")


def test_preprocessing_save_disk_full_keeps_previous_file(tmp_path, observed):
    """Stage: preprocessing save
    Fault: ENOSPC after 20 kB of the second `save_samples` of layer1_samples.npz (over the
        first one).
    Expected: OSError errno 28 reported; layer1_samples.npz is still the first save (100
        samples, loadable); no temporary file remains.
    """
    paths, _, _ = demo_inputs(tmp_path, n_events=300, n_files=1)
    out = tmp_path / "pre"
    fault = {"action": "enospc", "pattern": "*layer1_samples.npz*", "nth": 2,
             "after_bytes": 20_000}
    reported = assert_reported_enospc(
        run_child(SAVE_SAMPLES.format(events=str(paths[0]), out=str(out)), fault))
    assert len(LayerArrays.load(out / "layer1_samples.npz")) == 100
    assert temporaries(out) == []
    observed(reported)


SAVE_MODEL = """
import torch
from training.detectors.vae import Layer1VAE
from training.artifacts.model_files import save_model
for seed, threshold in ((1, 0.25), (2, 0.75)):  # a first model, then a second over it
    torch.manual_seed(seed)
    save_model(Layer1VAE(hidden_dim=16, latent_dim=4), {path!r}, threshold=threshold)
"""


@pytest.mark.parametrize("target", ["layer1_vae_best.pt", "layer1_vae_best.json"])
def test_model_save_disk_full_keeps_previous_model(tmp_path, target, observed):
    """Stage: model files
    Fault: ENOSPC while `save_model` overwrites an existing model: in the weights (.pt) or in
        the sidecar (.json) write (test id).
    Expected: OSError errno 28 reported; the previous pair still loads through `load_model`
        (sha256 verified) with its own weights and threshold. (Before, weights were renamed
        into place before the sidecar was written: a failed sidecar write left new weights
        beside the old sidecar, and the model refused to load.)
    """
    path = tmp_path / "layer1_vae_best.pt"
    fault = {"action": "enospc", "pattern": f"*{target}*", "nth": 2, "after_bytes": 64}
    reported = assert_reported_enospc(run_child(SAVE_MODEL.format(path=str(path)), fault))
    loaded = load_model(path)
    torch.manual_seed(1)
    from training.detectors.vae import Layer1VAE
    first = Layer1VAE(hidden_dim=16, latent_dim=4).state_dict()
    assert loaded.threshold == 0.25
    assert all(torch.equal(first[k], v) for k, v in loaded.model.state_dict().items())
    assert temporaries(tmp_path) == []
    observed(f"{reported}; previous model loads (threshold 0.25)")


def test_registry_register_disk_full(tmp_path, observed):
    """Stage: registry register
    Fault: ENOSPC after 300 bytes of the weights copy while `register_model` stores vae 2.0.0.
    Expected: the OSError (errno 28) is reported; the registry is exactly as before (no row,
        no folder, no temporary folder left); registering 2.0.0 afterwards succeeds.
    """
    from training.registry.registry import ModelMetadata
    from training.tests.reliability.harness import REGISTRY_CHILD, registry_state, seeded_registry
    from training.tests.reliability.test_crashes import REGISTER_NEW

    registry = seeded_registry(tmp_path)
    before = registry_state(registry)
    body = REGISTER_NEW.format(new=str(tmp_path / "new.pt"))
    reported = assert_reported_enospc(run_child(REGISTRY_CHILD.format(
        registry=str(registry.registry_dir), body=body),
        {"action": "enospc", "pattern": "model.pt", "after_bytes": 300}))
    assert registry_state(registry) == before
    assert sorted(p.name for p in (registry.artifacts_dir / "vae").iterdir()) == ["1.0.0",
                                                                               "1.1.0"]
    registry.register_model(tmp_path / "new.pt", ModelMetadata("vae", "2.0.0", "layer1"))
    observed(f"{reported}; registry unchanged, 2.0.0 registered once space was back")


def test_split_save_disk_full_keeps_previous_splits(tmp_path, observed):
    """Stage: split save
    Fault: ENOSPC after 2 kB of layer1_val.npz while `save_splits` overwrites a saved set of
        splits with a new cut.
    Expected: the OSError (errno 28) is reported; `load_splits` returns the previous set (or
        refuses the mix): train, val and test partition the rows; no temporary file remains.
    """
    from training.tests.reliability.test_crashes import (
        SAVE_SPLITS, _assert_partition, _split_indices,
    )

    out = tmp_path / "splits"
    fault = {"action": "enospc", "pattern": "*layer1_val.npz*", "nth": 2, "after_bytes": 2000}
    reported = assert_reported_enospc(run_child(SAVE_SPLITS.format(out=str(out)), fault))
    assert temporaries(out) == []
    _assert_partition(_split_indices(out))
    observed(reported)


def test_training_checkpoint_disk_full_then_resumed(tmp_path, straight_training, observed):
    """Stage: training
    Fault: ENOSPC after 500 bytes of every last-state checkpoint from the third on (a disk
        full from the end of epoch 3) during a 6-epoch `LayerTrainer.train` run.
    Expected: the run fails with the OSError (errno 28) reported; the last-state file on disk
        is still epoch 2's, complete; no temporary file remains; with space back,
        `train(resume=True)` ends with the history and weights of an uninterrupted run.
    """
    from training.tests.reliability.harness import TRAIN, train_vae
    from training.trainer.resume import load_state

    ck = tmp_path / "ck"
    fault = {"action": "enospc", "pattern": "*vae_last_state.pt*", "nth": 3, "persist": True,
             "after_bytes": 500}
    reported = assert_reported_enospc(run_child(TRAIN.format(ck=str(ck), resume=False), fault))
    assert load_state(ck / "vae_last_state.pt")["epoch"] == 2
    assert temporaries(ck) == []
    resumed = train_vae(str(ck), resume=True)
    assert resumed["epochs"] == [1, 2, 3, 4, 5, 6]
    assert resumed["weights"] == straight_training["weights"]
    observed(f"{reported}; resumed from epoch 2 to the uninterrupted run's weights")


PROMOTE = """
import sys
from training.cli.main import main
sys.exit(main(["registry", "promote", "--registry-dir", {registry!r}, "--model", "vae",
               "--version", "1.1.0", "--reason", "r" * 20000]))
"""


def test_registry_promote_disk_full_is_not_called_damage(tmp_path, observed):
    """Stage: registry promote
    Fault: `registry promote` of vae 1.1.0 (with a 20 kB reason) while the disk is full: the
        database cannot grow by one page (SQLite's SQLITE_FULL, what a failed write gives).
    Expected: exit 1 with one `error:` line that says "no space left on device" and names
        registry.db, never "damaged" or "restore from a backup"; the registry is exactly as
        before, and the same promotion succeeds once there is space.
    """
    from training.tests.reliability.harness import registry_state, seeded_registry

    registry = seeded_registry(tmp_path)
    before = registry_state(registry)
    result = run_child(PROMOTE.format(registry=str(registry.registry_dir)),
                       {"action": "enospc", "at": "sqlite", "pattern": "*"})
    assert result.returncode == 1, result.stderr[-3000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "Traceback" not in result.stderr
    assert "no space left on device" in line and "registry.db" in line, line
    assert "damaged" not in line and "backup" not in line
    assert registry_state(registry) == before
    assert registry.transition_stage("vae", "1.1.0", "production", reason="r" * 20000)
    observed(line)


@pytest.mark.parametrize("target", ["events.out.tfevents*", "model.json"])
def test_pipeline_disk_full_is_one_error_line(tmp_path, target, observed):
    """Stage: pipeline
    Fault: `maximus-train pipeline` (no -v) with the disk full from the first write of the
        file named by the test id: TensorBoard's event file (written by its own thread) or the
        sidecar copied into the registry.
    Expected: exit 1; stderr ends with one `error:` line naming the file and "No space left on
        device", and holds no traceback.
    """
    from training.tests.reliability.pipeline_runs import (
        cli_code, pipeline_toml, unlabeled_events,
    )

    config = pipeline_toml(tmp_path, unlabeled_events(tmp_path), tmp_path / "run")
    result = run_child(cli_code("pipeline", "--config", str(config)),
                       {"action": "enospc", "pattern": target, "after_bytes": 10,
                        "persist": True})
    reported = assert_reported_enospc(result)
    assert reported.startswith("error: ") and target.rstrip("*") in reported
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    observed(reported)
