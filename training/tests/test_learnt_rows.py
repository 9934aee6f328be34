"""What a challenger learns from (`training.retraining.learnt`): the rows its champion chose,
and the same rows for the triggers (trial G3).

The module fixture trains the production model the trial did: `pipeline --benign-only` on the
Stratosphere 011 flows (benign, unlabeled "Background" and attack flows), layer 1, one epoch.
`retrain` then runs on that pipeline's own splits.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from training.artifacts.npz import read_arrays
from training.errors import ConfigError
from training.layers.layer1 import Layer1
from training.registry.registry import ModelRegistry
from training.retraining.continuous import RetrainingConfig
from training.retraining.learnt import DataSettings
from training.tests.cli_run import run_cli

S011 = "stratosphere/011-zeek-mixed/data/conn.log.labeled"
MODEL = "layer1_vae"


@pytest.fixture(scope="module")
def benign_only(datasets, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("learnt") / "w"
    run_cli("pipeline", "--source", f"zeek:{datasets / S011}", "--workdir", str(work),
            "--epochs", "1", "--layers", "layer1", "--benign-only",
            "--drop-field", "direction,local_orig")
    champion = ModelRegistry(work / "models").get_metadata(MODEL, stage="production")
    layer = Layer1()
    labels = layer.labels(layer.load_units(work / "splits/layer1_train.npz"))
    counts = {name: int((labels == value).sum())
              for name, value in (("benign", 0), ("unknown", -1), ("threat", 1))}
    assert min(counts.values()) > 100, counts
    return {"work": work, "champion": champion, "counts": counts}


def test_retrain_on_the_champions_own_data_finds_nothing_new(benign_only):
    """The champion learnt from the 011 split's benign rows only: retrain counted its unlabeled
    rows as new and compared them with its benign sample (549 new rows, 69% of the features
    drifted, and a retrain fired); now it takes the champion's rows, all seen."""
    result = json.loads(run_cli("retrain", "--workdir", str(benign_only["work"]), "--epochs", "1"))
    found = {t["name"]: t for t in result["triggers"]}
    assert found["new_samples"]["reason"] == "0 new training rows (< 1000)"
    assert found["drift"]["reason"] == "drift not assessed: no new training rows"
    assert not result["retrained"]
    counts, data = benign_only["counts"], result["data"]
    assert data["train_rows"] == counts["benign"] == \
        benign_only["champion"].details["data"]["train_rows"]
    assert (data["excluded_unlabeled_rows"], data["excluded_threat_rows"]) == \
        (counts["unknown"], counts["threat"])
    assert (data["benign_only"], data["keep_unknown"]) == (True, False)
    version = benign_only["champion"].version
    assert data["learnt_from"] == f"benign (is_threat 0) rows (the production {MODEL} {version})"


def test_the_challenger_trains_on_the_champions_rows_and_records_them(benign_only,
                                                                      tmp_path):
    """A forced retrain learnt from benign and unlabeled rows (2,884 where the champion had
    2,627) and recorded no benign_only; now it learns from the benign ones and records the
    settings, for the next challenger to follow."""
    work = shutil.copytree(benign_only["work"], tmp_path / "w")  # the others' stays as it is
    result = json.loads(run_cli("retrain", "--workdir", str(work), "--epochs", "1", "--force"))
    assert result["retrained"] and result["data"]["train_rows"] == benign_only["counts"]["benign"]
    registry = ModelRegistry(work / "models")
    stored = registry.get_metadata(MODEL, result["new_version"])
    assert (stored.hyperparameters["benign_only"], stored.hyperparameters["keep_unknown"]) == \
        (True, False)
    # its sample of what it learnt from: the benign rows, every one of them
    sample = read_arrays(registry.read_file(MODEL, "reference.npz", result["new_version"]),
                         "reference")["features"]
    assert len(sample) == benign_only["counts"]["benign"]


def test_the_user_overrides_the_champions_rows(benign_only):
    """--no-benign-only learns from every row not labeled a threat; --keep-unknown adds the
    unlabeled rows to the benign ones; without --benign-only it is refused."""
    work, counts = str(benign_only["work"]), benign_only["counts"]
    idle = ["--workdir", work, "--min-new-samples", "1000000", "--retrain-frequency-days", "1000"]
    champion = f"the production {MODEL} {benign_only['champion'].version}"
    for flag, learnt_from in (
            ("--no-benign-only", "every row not labeled a threat, unlabeled ones assumed benign "
                                 f"(benign_only as given; the rest from {champion})"),
            ("--keep-unknown", "benign (is_threat 0) and unlabeled rows (keep_unknown as given; "
                               f"the rest from {champion})")):
        data = json.loads(run_cli("retrain", *idle, flag))["data"]
        assert data["train_rows"] == counts["benign"] + counts["unknown"]
        assert data["excluded_unlabeled_rows"] == 0 and data["learnt_from"] == learnt_from
    with pytest.raises(ConfigError, match="keep_unknown keeps unlabeled rows"):
        RetrainingConfig(benign_only=False, keep_unknown=True)


def test_val_loss_compares_a_pipeline_version_and_its_retrain_with_keep_unknown(datasets,
                                                                                tmp_path):
    """With --keep-unknown the unlabeled validation rows count as benign. The pipeline recorded
    the fingerprint of the validation split as training saw it (relabeled), `retrain` that of
    the split as stored, so `registry compare` (val_loss) refused two versions validated on
    the same rows as "measured on different validation data" (review, trial N)."""
    work = tmp_path / "w"
    run_cli("pipeline", "--source", f"zeek:{datasets / S011}", "--workdir", str(work),
            "--epochs", "1", "--layers", "layer1", "--benign-only", "--keep-unknown",
            "--drop-field", "direction,local_orig")
    # another learning rate: the same settings would train the pipeline's model again, which
    # retrain does not register twice
    result = json.loads(run_cli("retrain", "--workdir", str(work), "--epochs", "1", "--force",
                                "--lr", "3e-4"))
    assert result["retrained"] and result["data"]["keep_unknown"], result["reason"]
    registry = ModelRegistry(work / "models")
    prints = [registry.get_metadata(MODEL, v).dataset_fingerprints["val"]
              for v in ("1.0.0", result["new_version"])]
    assert prints[0] == prints[1]
    ranked = registry.compare_models(MODEL, ["1.0.0", result["new_version"]])
    assert set(ranked) == {"1.0.0", result["new_version"]} and ranked.best in ranked
    # the version names each split it came from, as absolute paths (trial R: val and test
    # were not kept at all)
    data = registry.get_metadata(MODEL, result["new_version"]).details["data"]
    assert [data[f"{k}_data"] for k in ("train", "val", "test")] == [
        str((work / "splits" / f"layer1_{k}.npz").resolve()) for k in ("train", "val", "test")]


def test_data_settings_pick_rows_by_label():
    labels = np.array([0, 1, -1, 0, -1, 1], np.int8)
    only = DataSettings(True, False, "test")
    assert only.mask(labels).tolist() == [True, False, False, True, False, False]
    assert not only.learns_unknown
    assert DataSettings(True, True, "test").mask(labels).tolist() == \
        [True, False, True, True, True, False]
    every = DataSettings(False, False, "test")  # a threat-labeled row never trains
    assert every.mask(labels).tolist() == [True, False, True, True, True, False]
    assert every.learns_unknown and every.recorded() == {"benign_only": False,
                                                         "keep_unknown": False}
