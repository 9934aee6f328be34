"""Continuous training: the seed README's example, the gate both ways, rollback, no trigger."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from training.cli.main import main
from training.datasets.split import DatasetSplit
from training.errors import ConfigError, SchemaError
from training.features.layer1 import Layer1Featurizer
from training.train_layer1_vae import train_layer1_vae
from training.registry.registry import ModelRegistry
from training.retraining import triggers
from training.retraining.continuous import ContinuousTrainingPipeline, RetrainingConfig
from training.retraining.gate import decide, relative_improvement

SPLITS = "training/data/splits"
START = np.datetime64("2026-11-01T00:00:00", "us")


def _rows(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Benign rows: a low background with a few active dims; threat rows: a different block."""
    x = rng.uniform(0.0, 0.1, size=(n, 128))
    dims = slice(0, 16) if kind == "benign" else slice(64, 96)
    x[:, dims] = rng.uniform(0.7, 0.9, size=(n, dims.stop - dims.start))
    return x.astype(np.float32)


def _split(name: str, benign: int, threat: int, rng, *, day: int, labels: str = "true"
           ) -> DatasetSplit:
    x = np.concatenate([_rows("benign", benign, rng), _rows("threat", threat, rng)])
    y = np.r_[np.zeros(benign), np.ones(threat)].astype(np.int8)
    if labels == "poisoned":  # threat-like traffic, unlabeled, passed off as the new normal
        x, y = _rows("threat", benign + threat, rng), np.full(benign + threat, -1, np.int8)
    times = START + np.timedelta64(day, "D") + np.arange(len(x)).astype("timedelta64[s]")
    ids = np.char.add(f"{name}{day}-", np.arange(len(x)).astype(str))
    return DatasetSplit(name, x, y, ids, np.arange(len(x)), {"timestamps": times},
                        Layer1Featurizer().spec, "layer1_sensory")


def _write_splits(root, rng, *, day: int, train: str = "true") -> None:
    _split("train", 1100, 0, rng, day=day, labels=train).save(root / f"{SPLITS}/layer1_train.npz")
    _split("val", 150, 30, rng, day=day).save(root / f"{SPLITS}/layer1_val.npz")
    _split("test", 150, 30, np.random.default_rng(99), day=0).save(root / f"{SPLITS}/layer1_test.npz")


def _seed_example() -> dict:
    """The seed README's continuous-training example, as written."""
    config = RetrainingConfig(
        retrain_frequency_days=7,
        min_new_samples=1000,
        drift_threshold=0.1,
        improvement_threshold=0.02
    )
    pipeline = ContinuousTrainingPipeline(config=config)
    result = pipeline.run_retraining(
        layer_name="layer1",
        model_name="layer1_vae",
        train_fn=train_layer1_vae,
        train_data_path="training/data/splits/layer1_train.npz",
        val_data_path="training/data/splits/layer1_val.npz",
        test_data_path="training/data/splits/layer1_test.npz"
    )
    if result["deployed"]:
        print(f"New model deployed: {result['new_version']}")
    return result


def test_seed_example_deploys_a_better_challenger_and_keeps_a_worse_one_out(tmp_path,
                                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    _write_splits(tmp_path, rng, day=1, train="poisoned")
    # A weak production model: trained on the poisoned rows, promoted by hand.
    weak = _seed_example()  # no production yet: trained, but below the PR-AUC floor
    assert weak["retrained"] and not weak["deployed"]
    assert weak["comparison"]["metric"] == "pr_auc" and weak["comparison"]["challenger"] < 0.85
    registry = ModelRegistry()  # training/models, as the pipeline's default
    registry.transition_stage("layer1_vae", weak["new_version"], "production", reason="test")

    _write_splits(tmp_path, rng, day=2)  # clean, newer traffic
    better = _seed_example()
    assert better["deployed"] is True and better["new_version"] == "1.1.0"
    assert better["champion_version"] == "1.0.0"
    decision = better["comparison"]
    assert decision["challenger"] >= decision["champion"] * 1.02 and decision["challenger"] >= 0.85
    assert [t["name"] for t in better["triggers"] if t["fired"]] == ["new_samples"]
    stored = registry.get_metadata("layer1_vae", stage="production")
    assert stored.version == "1.1.0" and stored.aliases == ["champion"]
    assert stored.details["decision"]["test_fingerprint"] == decision["test_fingerprint"]
    assert stored.details["data"]["train_until"] == str(START + np.timedelta64(2, "D") +
                                                          np.timedelta64(1099, "s"))

    _write_splits(tmp_path, rng, day=3, train="poisoned")  # newer again, but poisoned
    worse = _seed_example()
    assert worse["retrained"] and worse["deployed"] is False and worse["new_version"] == "1.2.0"
    assert worse["comparison"]["rule"] in ("paired bootstrap of pr_auc", "labeled floor (ROC-AUC "
                                           "above chance, PR-AUC above the base rate)")
    assert worse["comparison"]["test_fingerprint"] == decision["test_fingerprint"]
    assert registry.aliases("layer1_vae") == {"champion": "1.1.0", "challenger": "1.2.0"}

    assert ContinuousTrainingPipeline().rollback("layer1_vae") == "1.0.0"
    assert registry.get_metadata("layer1_vae", stage="production").version == "1.0.0"
    assert registry.get_metadata("layer1_vae", "1.1.0").stage == "archived"


def test_no_trigger_does_nothing_and_threat_rows_never_train(tmp_path, capsys):
    rng = np.random.default_rng(1)
    train = _split("train", 1000, 200, rng, day=1)
    paths = {}
    for split in (train, _split("val", 150, 30, rng, day=1), _split("test", 150, 30, rng, day=1)):
        paths[split.name] = split.save(tmp_path / f"layer1_{split.name}.npz")
    config = RetrainingConfig(registry_dir=str(tmp_path / "models"), exclude_alerted=True)
    pipeline = ContinuousTrainingPipeline(config)
    seen = {}

    def train_fn(train_x, train_y, *args, **kwargs):
        seen["labels"] = np.unique(train_y).tolist()
        return train_layer1_vae(train_x, train_y, *args, **kwargs)

    first = pipeline.run_retraining("layer1", "vae", train_fn, paths["train"], paths["val"],
                                    paths["test"])
    assert first["deployed"] and first["data"]["excluded_threat_rows"] == 200
    assert seen["labels"] == [0]
    log_before = len(pipeline.registry.history("vae"))

    later = datetime.now(timezone.utc) + timedelta(days=3)
    again = pipeline.run_retraining("layer1", "vae", train_fn, paths["train"], paths["val"],
                                    paths["test"], now=later)
    assert again["success"] and not again["retrained"] and not again["deployed"]
    assert [(t["name"], t["fired"]) for t in again["triggers"]] == \
        [("age", False), ("new_samples", False), ("drift", False)]
    assert again["reason"].startswith("no trigger fired: the production model is 3.")
    assert [m.version for m in pipeline.registry.list_models("vae")] == ["1.0.0"]
    assert len(pipeline.registry.history("vae")) == log_before
    # What a scheduler calls: nothing to do, exit 0, the reasons printed.
    code = main(["retrain", "--model_name", "vae", "--train-data", str(paths["train"]),
                 "--val_data", str(paths["val"]), "--test-data", str(paths["test"]),
                 "--registry-dir", str(tmp_path / "models"), "--exclude-alerted"])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0 and printed["retrained"] is False and printed["deployed"] is False
    assert len(pipeline.registry.history("vae")) == log_before

    old = pipeline.run_retraining("layer1", "vae", train_fn, paths["train"], paths["val"],
                                  paths["test"], now=later + timedelta(days=5))
    assert [t["name"] for t in old["triggers"] if t["fired"]] == ["age"]
    assert old["retrained"]


def test_gate_arithmetic_and_config_checks():
    assert relative_improvement(0.9, 0.8, "max") == pytest.approx(0.125)
    assert relative_improvement(0.08, 0.1, "min") == pytest.approx(0.2)
    small = decide("pr_auc", {"pr_auc": 0.9}, {"pr_auc": 0.89}, floor=0.85, improvement=0.02)
    assert not small.deploy and small.reason == ("challenger pr_auc 0.9 vs champion 0.89: +1.12% "
                                                 "(higher is better; at least +2.00% needed)")
    assert decide("pr_auc", {"pr_auc": 0.9}, {"pr_auc": 0.88}, floor=0.85, improvement=0.02).deploy
    assert not decide("pr_auc", {"pr_auc": 0.8}, None, floor=0.85, improvement=0.02).deploy
    assert decide("val_loss", {"val_loss": 1.0}, {"val_loss": 2.0}, floor=None,
                  improvement=0.02).deploy
    low = decide("val_loss", {"val_loss": 3.0}, None, floor=2.5, improvement=0.02)
    assert not low.deploy and low.reason == "challenger val_loss 3 is above the ceiling 2.5"
    with pytest.raises(ConfigError, match="improvement_threshold must be >= 0, got -0.1"):
        RetrainingConfig(improvement_threshold=-0.1)
    with pytest.raises(ConfigError, match="no known direction"):
        RetrainingConfig(comparison_metric="goodness")
    assert RetrainingConfig(drift_share=1.0).drift_share == 1.0  # every varying feature
    with pytest.raises(ConfigError, match=r"drift_share must be in \(0, 1\], got 1.01"):
        RetrainingConfig(drift_share=1.01)


def test_triggers_new_rows_and_drift():
    rng = np.random.default_rng(2)
    split = _split("train", 40, 0, rng, day=1)  # times: day 1 + 0..39 s
    until = str(START + np.timedelta64(1, "D") + np.timedelta64(29, "s"))
    times = split.columns["timestamps"]
    assert triggers.new_rows(times, {"train_until": until}).sum() == 10
    assert triggers.new_rows(times, {}).sum() == 40  # nothing on record: every row is new
    # Rows before the span it learnt from (a backfill, another capture) are new too.
    since = str(START + np.timedelta64(1, "D") + np.timedelta64(5, "s"))
    assert triggers.new_rows(times, {"train_from": since, "train_until": until}).sum() == 15
    record = triggers.training_record(times, np.arange(40) < 30)
    assert (record["train_rows"], record["train_from"], record["train_until"]) == (
        30, str(times[0]), str(times[29]))
    untimed = np.full(40, np.datetime64("NaT"), "datetime64[us]")
    assert triggers.new_rows(untimed, {"train_rows": 30}).sum() == 10  # beyond what it saw
    # Only rows a challenger learns from can be new (trial G2): the threat rows are not.
    learnt = np.arange(40) % 4 != 0  # 30 of 40
    assert triggers.new_rows(times, {"train_until": until}, learnt).tolist() == \
        [i >= 30 and i % 4 != 0 for i in range(40)]
    # without times, the learnt rows after the first 20 it saw: rows 27, 29, ..., 39
    assert np.flatnonzero(triggers.new_rows(untimed, {"train_rows": 20}, learnt)).tolist() == \
        [27, 29, 30, 31, 33, 34, 35, 37, 38, 39]
    # Without times, the digest of the units it learnt from tells its data grown from other
    # data (trial P: another capture of 3,568 rows read as 0 new rows, drift never checked).
    features = rng.normal(size=(40, 4)).astype(np.float32)
    seen = triggers.training_record(untimed[:30], np.ones(30, bool), features[:30])
    assert seen["train_units"] == 30
    grown = triggers.new_rows(untimed, seen, learnt, features)
    assert np.flatnonzero(grown).tolist() == [30, 31, 33, 34, 35, 37, 38, 39]
    other = rng.normal(size=(40, 4)).astype(np.float32)  # another capture, as many rows
    assert triggers.new_rows(untimed, seen, learnt, other).tolist() == learnt.tolist()
    assert triggers.new_rows(untimed[:20], seen, None, features[:20]).sum() == 20  # fewer rows
    assert triggers.new_samples(np.ones(999, bool), 1000).fired is False
    assert triggers.new_samples(np.ones(1000, bool), 1000).fired is True

    reference = _rows("benign", 2000, rng)
    same = triggers.drift(reference, _rows("benign", 2000, rng), 0.1, 0.5)
    assert not same.fired and same.details["share"] == 0.0
    moved = _rows("benign", 2000, rng)
    moved[:, 16:128] += 0.5  # most features move by several reference standard deviations
    shifted = triggers.drift(reference, moved, 0.1, 0.5)
    assert shifted.fired and shifted.details["share"] == pytest.approx(112 / 128)
    assert not triggers.drift(None, moved, 0.1, 0.5).fired
    # The layer's own feature names, where it has them (`Layer.feature_names`)
    from training.features.layer1_names import DIM_NAMES

    named = triggers.drift(reference, moved, 0.1, 0.5, list(DIM_NAMES))
    assert named.details["drifted_features"] == list(DIM_NAMES[16:128])


def test_splits_without_a_feature_spec(tmp_path, caplog):
    from training.layers.layer1 import Layer1
    from training.retraining.split_files import common_spec as _common_spec

    rng = np.random.default_rng(0)
    bare = {name: _split(name, 20, 5, rng, day=1) for name in ("train", "val", "test")}
    bare = {name: replace(s, spec=None) for name, s in bare.items()}
    # All three bare and 128 wide: layer 1's data-free default layout, said in a warning.
    splits, spec = _common_spec(Layer1(), bare)
    assert spec == Layer1Featurizer().spec and all(s.spec == spec for s in splits.values())
    assert "taken as the data-free default layer1 layout" in caplog.text
    # Only some bare: the message says what made them so and how to keep the spec.
    mixed = {**bare, "train": replace(bare["train"], spec=Layer1Featurizer().spec)}
    with pytest.raises(SchemaError, match=r"the val, test split file\(s\) carry no FeatureSpec: "
                                          r"they were saved from bare arrays.*while the other "
                                          r"splits do.*DatasetBuilder.from_file"):
        _common_spec(Layer1(), mixed)
    narrow = {name: replace(s, features=s.features[:, :16]) for name, s in bare.items()}
    with pytest.raises(SchemaError, match="layer1 has no data-free layout to assume"):
        _common_spec(Layer1(), narrow)


def _saved_splits(folder, rng, *, test_threats: int = 30) -> dict:
    splits = (_split("train", 1100, 0, rng, day=1), _split("val", 150, 30, rng, day=1),
              _split("test", 150, test_threats, rng, day=1))
    return {s.name: str(s.save(folder / f"layer1_{s.name}.npz")) for s in splits}


def test_a_challenger_is_trained_and_thresholded_like_the_production_model(tmp_path, capsys):
    """The pipeline's champion used quantile:0.999 and batches of 32: so does its challenger
    (the trainer's "auto" rule alerts ten times as often); flags change either, and the result
    says which settings were used and where they came from."""
    from training.layers.layer1 import Layer1

    paths, registry = _saved_splits(tmp_path, np.random.default_rng(3)), tmp_path / "models"
    as_the_pipeline = Layer1().default_config(num_epochs=1, batch_size=32, seed=42,
                                              threshold_rule="quantile:0.999")
    first = ContinuousTrainingPipeline(RetrainingConfig(
        registry_dir=str(registry), training_config=as_the_pipeline)).run_retraining(
        "layer1", "vae", None, paths["train"], paths["val"], paths["test"])
    if not first["deployed"]:
        ModelRegistry(registry).transition_stage("vae", first["new_version"], "production")
    capsys.readouterr()

    def retrain(*flags: str) -> tuple[dict, dict]:
        assert main(["retrain", "--model-name", "vae", "--train-data", paths["train"],
                     "--val-data", paths["val"], "--test-data", paths["test"], "--registry-dir",
                     str(registry), "--force", "--epochs", "1", "-q", *flags]) == 0
        result = json.loads(capsys.readouterr().out)
        model = ModelRegistry(registry).load_model("vae", result["new_version"])
        return model.sidecar["training_config"], result

    trained, result = retrain()
    assert (trained["threshold_rule"], trained["batch_size"]) == ("quantile:0.999", 32)
    assert result["training_settings"] == {
        "from": "the production vae 1.0.0", "changed": {"num_epochs": 1},
        "threshold_rule": "quantile:0.999", "batch_size": 32,
        "learning_rate": as_the_pipeline.learning_rate, "num_epochs": 1, "seed": 42,
        "model": {}}  # the layer's own detector with its defaults, as the champion's
    trained, result = retrain("--threshold", "quantile:0.99", "--batch-size", "64")
    assert (trained["threshold_rule"], trained["batch_size"]) == ("quantile:0.99", 64)
    assert result["training_settings"]["changed"] == {
        "num_epochs": 1, "batch_size": 64, "threshold_rule": "quantile:0.99"}


def test_a_single_threat_is_too_few_for_the_labeled_gate(tmp_path):
    """A test split with 1 threat gave a [1, 1] interval: it is judged without labels, and the
    reason names the counts."""
    paths = _saved_splits(tmp_path, np.random.default_rng(4), test_threats=1)
    result = ContinuousTrainingPipeline(RetrainingConfig(registry_dir=str(tmp_path / "models"))
                                        ).run_retraining("layer1", "vae", None, *paths.values())
    decision = result["comparison"]
    assert decision["metric"] == "val_loss" and "challenger_roc_auc_ci" not in decision["figures"]
    assert decision["reason"].endswith(
        "(1 threat and 150 benign test units: the labeled gate needs at least 5 of each for "
        "its 95% intervals, so judged without them)")


def test_retrain_and_the_pipeline_gate_apply_the_same_floor():
    """No fixed PR-AUC floor by default in either (a PR-AUC of 0.5 at a base rate of 0.3% is
    far above chance): the labeled gate's statistical floors, which follow the base rate."""
    from training.cli.main import build_parser
    from training.pipeline.config import GateConfig

    assert RetrainingConfig().floor("pr_auc") is None
    assert build_parser().parse_args(["retrain"]).min_accuracy is None
    assert (GateConfig().min_value or None) is None  # as promotion_decision reads it


def test_a_challenger_is_built_like_the_tuned_production_model(tmp_path, capsys):
    """A production model trained with a tuned architecture (`train --hidden_dim ...`) is
    challenged by one of the same architecture, not the layer's defaults; the result says so."""
    paths, registry = _saved_splits(tmp_path, np.random.default_rng(5)), tmp_path / "models"
    assert main(["train", "layer1", "--train_data", paths["train"], "--val_data", paths["val"],
                 "--num_epochs", "1", "--hidden_dim", "32", "--latent_dim", "8", "--dropout",
                 "0.3", "--checkpoint_dir", str(tmp_path / "ckpt"), "--log_dir",
                 str(tmp_path / "logs"), "--no_tensorboard", "--model_name", "vae", "-q"]) == 0
    registered = ["--model", "vae", "--registry-dir", str(registry), "-q"]
    assert main(["registry", "register", "--model-path", str(tmp_path / "ckpt/vae_best.pt"),
                 "--version", "1.0.0", *registered]) == 0
    assert main(["registry", "promote", "--version", "1.0.0", *registered]) == 0
    capsys.readouterr()
    assert main(["retrain", "--model-name", "vae", "--train-data", paths["train"],
                 "--val-data", paths["val"], "--test-data", paths["test"], "--registry-dir",
                 str(registry), "--force", "--epochs", "1", "-q"]) == 0
    result = json.loads(capsys.readouterr().out)
    models = ModelRegistry(registry)
    champion = models.load_model("vae", "1.0.0").sidecar["init_args"]
    challenger = models.load_model("vae", result["new_version"]).sidecar["init_args"]
    assert (champion["hidden_dim"], champion["latent_dim"], champion["dropout"]) == (32, 8, 0.3)
    assert challenger == champion
    assert result["training_settings"]["model"] == {"hidden_dim": 32, "latent_dim": 8,
                                                    "dropout": 0.3}


def test_a_row_detector_is_rebuilt_by_its_name_view_and_arguments():
    """An isolation-forest champion gives `train_layer` its name, view and changed arguments;
    its row width is left to the new units. A detector the layer cannot build is refused."""
    from training.detectors.gnn import Layer2GNN
    from training.layers.layer1 import Layer1
    from training.retraining.settings import recorded_model_args

    units = _split("train", 20, 0, np.random.default_rng(0), day=1)
    forest = Layer1().build_detector(units, detector="iforest", n_estimators=7, seed=3)
    assert recorded_model_args(Layer1(), forest, units) == {
        "detector": "iforest", "inputs": "vector", "n_estimators": 7, "seed": 3}
    with pytest.raises(ConfigError, match="the production model is a Layer2GNN, which layer1 "
                                          "does not build \\(its own is a Layer1VAE\\)"):
        recorded_model_args(Layer1(), Layer2GNN(node_dim=5, edge_dim=6), units)
