"""`compare_models` and `registry compare` rank versions on a loss only where it compares."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from training.artifacts.model_files import save_model
from training.cli.main import main
from training.detectors.iforest import IsolationForestDetector
from training.detectors.vae import Layer1VAE
from training.errors import ConfigError
from training.registry.comparable import UNKNOWN, loss_recipe
from training.registry.registry import ModelMetadata, ModelRegistry


def _vae(path: Path, beta: float) -> Path:
    torch.manual_seed(0)
    save_model(Layer1VAE(input_dim=8, hidden_dim=4, latent_dim=2, beta=beta), path,
               threshold=1.0)
    return path


def _forest(path: Path) -> Path:
    rows = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    save_model(IsolationForestDetector(input_dim=8, n_estimators=10, seed=0).fit(rows), path,
               threshold=0.5)
    return path


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    """The trial's registry: a forest (1.0.0), a VAE with beta 0.01 (1.1.0), one with the
    tuned beta 0.26 (1.2.0) and another with beta 0.01 (1.3.0); each recorded its kept epoch's
    validation loss, the beta-0.01 VAE's the lowest."""
    registry = ModelRegistry(tmp_path / "models")
    for version, weights, val_loss, pr_auc in (
            ("1.0.0", _forest(tmp_path / "forest.pt"), 0.45, 0.61),
            ("1.1.0", _vae(tmp_path / "vae.pt", 0.01), 0.02, 0.70),
            ("1.2.0", _vae(tmp_path / "tuned.pt", 0.26), 0.31, 0.93),
            ("1.3.0", _vae(tmp_path / "again.pt", 0.01), 0.03, 0.72)):
        registry.register_model(weights, ModelMetadata(
            "layer1_vae", version, "layer1", metrics={"val_loss": val_loss, "pr_auc": pr_auc}))
    return registry


def test_a_loss_never_ranks_versions_whose_losses_measure_different_things(registry):
    """The trial's `registry compare --metric val_loss` named the beta-0.01 VAE best over the
    forest and over the tuned VAE: its loss weighs KL 26 times less, and the forest's is its
    mean anomaly score. It refuses now, naming why and what to compare on instead."""
    every = ["1.0.0", "1.1.0", "1.2.0", "1.3.0"]
    with pytest.raises(ConfigError) as refused:
        registry.compare_models("layer1_vae", every)  # the default metric is val_loss
    message = str(refused.value)
    assert message.startswith("val_loss cannot rank these versions of layer1_vae: ")
    assert ("(1.0.0: IsolationForestDetector (inputs=\"vector\"); "
            "1.1.0, 1.3.0: Layer1VAE (beta=0.01, reconstruction=\"mse\"); "
            "1.2.0: Layer1VAE (beta=0.26, reconstruction=\"mse\"))") in message
    assert message.endswith("compare on a metric every one of them records alike: pr_auc, "
                            "or compare the versions of one kind (e.g. versions 1.1.0 1.3.0)")
    with pytest.raises(ConfigError, match="1.1.0: Layer1VAE .beta=0.01.*1.2.0: Layer1VAE"):
        registry.compare_models("layer1_vae", ["1.1.0", "1.2.0"], "val_loss")
    # a loss of one detector class with the same loss settings compares
    same = registry.compare_models("layer1_vae", ["1.1.0", "1.3.0"])
    assert same == {"1.1.0": 0.02, "1.3.0": 0.03} and same.best == "1.1.0"
    # a metric measured alike ranks them all
    assert registry.compare_models("layer1_vae", every, "pr_auc").best == "1.2.0"


def test_registry_compare_refuses_a_loss_across_kinds_with_the_reason(registry, capsys):
    where = ["--registry-dir", str(registry.registry_dir)]
    assert main(["registry", "compare", "--model", "layer1_vae", *where]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert "val_loss cannot rank these versions of layer1_vae" in err and "pr_auc" in err
    assert main(["registry", "compare", "--model", "layer1_vae", "--metric", "pr_auc",
                 "--json", *where]) == 0
    assert json.loads(capsys.readouterr().out)["best"] == "1.2.0"


def test_loss_recipe_names_the_class_and_its_loss_settings_only():
    vae = {"model_class": "Layer1VAE",
           "init_args": {"input_dim": 8, "hidden_dim": 4, "beta": 0.5, "reconstruction": "bce"}}
    assert loss_recipe(vae) == 'Layer1VAE (beta=0.5, reconstruction="bce")'
    assert loss_recipe({"model_class": "Layer3TCN", "init_args": {"input_dim": 11}}) == \
        "Layer3TCN"
    assert loss_recipe({"model_class": "KNNDistance", "init_args": {"k": 7, "inputs": "vector",
                                                                   "seed": 1}}) == \
        'KNNDistance (inputs="vector", k=7)'
    assert loss_recipe(None) == UNKNOWN


@pytest.fixture
def retrained(tmp_path) -> ModelRegistry:
    """The trial's registry: 1.0.0 from a pipeline run on 008, tested on 008's test part;
    1.1.0 and 1.2.0 retrained on 011, each tested on 011's; 1.3.0 registered by hand with
    figures and no fingerprint."""
    registry = ModelRegistry(tmp_path / "models")
    on_008 = {"train": "58be" * 16, "val": "ab50" * 16, "test": "0f43507a16c9" + "0" * 52}
    on_011 = {"train": "f958" * 16, "val": "e356" * 16, "test": "44d185d51303" + "0" * 52}
    for version, prints, val_loss, pr_auc in (("1.0.0", on_008, 3.096, 0.9975),
                                              ("1.1.0", on_011, 1.481, 0.9933),
                                              ("1.2.0", on_011, 1.52, 0.9921),
                                              ("1.3.0", {}, 1.3, 0.999)):
        registry.register_model(_vae(tmp_path / f"{version}.pt", 0.01), ModelMetadata(
            "layer1_vae", version, "layer1", metrics={"val_loss": val_loss, "pr_auc": pr_auc},
            dataset_fingerprints=prints))
    return registry


def test_figures_on_different_data_never_name_a_best(retrained):
    """The trial's `registry compare --metric pr_auc` named 1.0.0 best at 0.9975 (on 008's
    test part) over 1.1.0's 0.9933 (on 011's), where on 011's test part 1.0.0 scored 0.9899. It
    refuses now, naming the data of each and how to measure them on the same data; so does
    the validation loss, on two validation parts."""
    with pytest.raises(ConfigError) as refused:
        retrained.compare_models("layer1_vae", ["1.0.0", "1.1.0", "1.2.0"], "pr_auc")
    assert str(refused.value) == (
        "pr_auc cannot rank these versions of layer1_vae: they were measured on different test "
        "data (test data 0f43507a16c9: 1.0.0 0.9975; test data 44d185d51303: 1.1.0 0.9933, "
        "1.2.0 0.9921), and a figure on one data set says nothing of a model on another; "
        "measure each version on one test split: maximus-train evaluate --registry-dir "
        f"{retrained.registry_dir} --model layer1_vae --version V --data TEST.npz (a version "
        "`retrain` registered also keeps its gate's figures of the production model it "
        "challenged, on its own test data: registry show --json, "
        "details.decision.champion_metrics), or compare only versions measured on the same "
        "test data (e.g. versions 1.1.0 1.2.0)")
    with pytest.raises(ConfigError, match=r"different validation data \(validation data "
                                          r"ab50ab50ab50: 1.0.0 3.096; validation data "
                                          r"e356e356e356: 1.1.0 1.481\)"):
        retrained.compare_models("layer1_vae", ["1.0.0", "1.1.0"])  # val_loss
    # one test part: ranked; a version that recorded none is not checked
    same = retrained.compare_models("layer1_vae", ["1.1.0", "1.2.0", "1.3.0"], "pr_auc")
    assert same.best == "1.3.0" and same == {"1.1.0": 0.9933, "1.2.0": 0.9921, "1.3.0": 0.999}
    # speed is no data's: it is not checked
    assert retrained.compare_models("layer1_vae", ["1.0.0", "1.1.0"],
                                    "avg_inference_time_ms").best is None


def test_registry_compare_refuses_figures_on_different_data(retrained, capsys):
    where = ["--registry-dir", str(retrained.registry_dir)]
    assert main(["registry", "compare", "--model", "layer1_vae", "--metric", "pr_auc",
                 *where]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "best" not in captured.err
    assert captured.err.startswith("error: pr_auc cannot rank these versions of layer1_vae: "
                                   "they were measured on different test data (")
    assert main(["registry", "compare", "--model", "layer1_vae", "--metric", "pr_auc",
                 "--versions", "1.1.0", "1.2.0", "--json", *where]) == 0
    assert json.loads(capsys.readouterr().out)["best"] == "1.1.0"
