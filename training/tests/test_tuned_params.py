"""Tuned hyperparameters read back (`training.tuning.params_file`): `tune`'s best_params.json
into `train --params`, `[train.<layer>] params` and `pipeline --params`, the way
`tune --train-best` turns them into a model; explicit settings win, the model records the
file."""

from __future__ import annotations

import json

import pytest

from training.errors import ConfigError
from training.layers.layer1 import Layer1
from training.layers.layer2 import Layer2
from training.layers.layer3 import Layer3
from training.pipeline.config import config_from_dict
from training.registry.registry import ModelRegistry
from training.tests.tuning_helpers import write_layer1_splits
from training.tuning.params_file import read_params, split_params

LAYER1 = {"learning_rate": 0.004, "batch_size": 64, "hidden_dim": 128, "latent_dim": 32,
          "dropout": 0.25, "beta": 0.005}
LAYER2 = {"learning_rate": 0.001, "batch_size": 8, "hidden_dim": 32, "num_layers": 2,
          "conv": "sage", "dropout": 0.1}


def _best_params(path, params, layer="layer1", trial=7):
    """A best_params.json as `tune` writes it (`training.tuning.outputs.summary`)."""
    path.write_text(json.dumps({"study_name": f"{layer}_tuning", "best_trial": trial,
                                "params": params,
                                "study_attrs": {"objective": {"layer": layer}}}))
    return path


def test_a_configuration_becomes_each_layers_settings_as_its_search_space_says():
    assert split_params(Layer1(), LAYER1) == (
        {"learning_rate": 0.004, "batch_size": 64},
        {"hidden_dim": 128, "latent_dim": 32, "dropout": 0.25, "beta": 0.005})
    assert split_params(Layer2(), LAYER2)[1] == {"hidden_dim": 32, "num_layers": 2,
                                                 "conv": "sage", "dropout": 0.1}
    layer3 = {"learning_rate": 0.002, "batch_size": 32, "channels": 16, "num_blocks": 3,
              "kernel_size": 2, "dropout": 0.0}
    assert split_params(Layer3(), layer3)[1] == {"channels": [16, 16, 16], "kernel_size": 2,
                                                 "dropout": 0.0}


def test_a_file_is_read_with_its_origin_and_refused_when_it_does_not_fit(tmp_path):
    path = _best_params(tmp_path / "best_params.json", {**LAYER1, "error_floor": 0.01})
    tuned = read_params(path, Layer1())
    assert tuned.training == {"learning_rate": 0.004, "batch_size": 64}
    assert tuned.model_args["error_floor"] == 0.01 and tuned.model_args["hidden_dim"] == 128
    assert tuned.origin == f"best trial 7 of tuning study layer1_tuning ({path})"
    assert tuned.unless({"batch_size", "beta"}) == {
        "learning_rate": 0.004, "hidden_dim": 128, "latent_dim": 32, "dropout": 0.25,
        "error_floor": 0.01}
    with pytest.raises(ConfigError) as refused:
        read_params(_best_params(tmp_path / "b.json", {**LAYER1, "depth": 3, "lr": 1}), Layer1())
    assert str(refused.value) == (
        f"{tmp_path / 'b.json'}: unknown hyperparameter(s) depth, lr for layer1; allowed: "
        "batch_size, beta, dropout, error_floor, hidden_dim, latent_dim, learning_rate")
    other = _best_params(tmp_path / "l2.json", LAYER2, layer="layer2")
    with pytest.raises(ConfigError, match=r"l2.json holds layer2's hyperparameters \(study "
                                          r"layer2_tuning\), not layer1's"):
        read_params(other, Layer1())
    plain = tmp_path / "plain.json"  # no study: its keys are layer 2's search space
    plain.write_text(json.dumps(LAYER2))
    with pytest.raises(ConfigError, match="plain.json holds layer2's hyperparameters, not "
                                          "layer1's"):
        read_params(plain, Layer1())
    missing = {k: v for k, v in LAYER1.items() if k != "beta"}
    with pytest.raises(ConfigError, match="no value for beta of layer1's search space"):
        read_params(_best_params(tmp_path / "m.json", missing), Layer1())
    with pytest.raises(ConfigError, match="batch_size must be an integer, got '64'"):
        read_params(_best_params(tmp_path / "t.json", {**LAYER1, "batch_size": "64"}), Layer1())
    with pytest.raises(ConfigError, match="no complete trial"):
        read_params(_best_params(tmp_path / "n.json", None), Layer1())


def test_pipeline_config_takes_the_file_under_its_own_keys_and_the_flags(tmp_path):
    path = str(_best_params(tmp_path / "best_params.json", LAYER1))
    source = {"type": "json", "path": "events.jsonl"}
    data = {"sources": [source], "layers": ["layer1"],
            "train": {"batch_size": 8, "epochs": 3, "layer1": {"params": path, "dropout": 0.5}}}
    settings = config_from_dict(data).train["layer1"]
    # the file over [train]'s batch_size, the table's dropout over the file
    assert (settings.batch_size, settings.learning_rate, settings.epochs) == (64, 0.004, 3)
    assert settings.model == {"hidden_dim": 128, "latent_dim": 32, "dropout": 0.5,
                              "beta": 0.005}
    assert settings.trainer_changes()["params_from"] == \
        f"best trial 7 of tuning study layer1_tuning ({path})"
    flagged = _best_params(tmp_path / "flag.json", {**LAYER1, "hidden_dim": 64}, trial=9)
    config = config_from_dict(data, params={"1": str(flagged)}).with_training(batch_size=16)
    settings = config.train["layer1"]
    assert (settings.batch_size, settings.model["hidden_dim"]) == (16, 64)  # --batch-size wins
    assert settings.params_from.startswith("best trial 9 ")
    for train, message in (
            ({"params": path}, r"\[train\]: params names one layer's tuned hyperparameters"),
            ({"layer1": {"params": path, "detector": "iforest"}},
             r"\[train.layer1\]: params holds hyperparameters of layer1's own detector \(vae\), "
             "not of detector 'iforest'")):
        with pytest.raises(ConfigError, match=message):
            config_from_dict({"sources": [source], "layers": ["layer1"], "train": train})
    with pytest.raises(ConfigError, match="params names layer2, which this run does not train"):
        config_from_dict({"sources": [source], "layers": ["layer1"]}, params={"layer2": path})


def test_train_takes_tunes_best_params_as_train_best_does_and_the_flags_win(tmp_path, capsys):
    from training.cli.main import main
    from training.train_layer1_vae import main as train_script

    train, val = write_layer1_splits(tmp_path)
    assert main(["-q", "tune", "--train_data", train, "--val_data", val, "--n_trials", "1",
                 "--max_epochs", "1", "--best_epochs", "1", "--seed", "3", "--train-best",
                 "--output_dir", str(tmp_path / "tuning"),
                 "--registry-dir", str(tmp_path / "models")]) == 0
    summary = json.loads(capsys.readouterr().out)
    best = tmp_path / "tuning" / "layer1_vae_tuning" / "best_params.json"
    origin = f"best trial 0 of tuning study layer1_vae_tuning ({best})"
    tuned = json.loads((tmp_path / "tuning/layer1_vae_tuning/best/layer1_vae_best.json")
                       .read_text())
    assert tuned["training_config"]["params_from"] == origin
    assert main(["-q", "train", "layer1", "--train_data", train, "--val_data", val,
                 "--num_epochs", "1", "--params", str(best), "--checkpoint_dir",
                 str(tmp_path / "a"), "--no_tensorboard"]) == 0
    assert capsys.readouterr().out.startswith(f"hyperparameters from {origin}: learning_rate=")
    mine = json.loads((tmp_path / "a" / "layer1_vae_best.json").read_text())
    assert mine["init_args"] == tuned["init_args"]  # one way from best params to a model
    params = summary["best_params"]
    assert {k: mine["training_config"][k] for k in ("learning_rate", "batch_size")} == \
        {k: params[k] for k in ("learning_rate", "batch_size")}
    assert mine["training_config"]["params_from"] == origin
    # the seed script's flags: an explicit flag wins over the file
    assert train_script(["--train_data", train, "--num_epochs", "1", "--params", str(best),
                         "--batch-size", "16", "--hidden_dim", "64", "--checkpoint_dir",
                         str(tmp_path / "b"), "--no_tensorboard"]) == 0
    assert "; --batch-size, --hidden_dim given, the flag wins" in capsys.readouterr().out
    flagged = json.loads((tmp_path / "b" / "layer1_vae_best.json").read_text())
    assert flagged["training_config"]["batch_size"] == 16
    assert flagged["init_args"]["hidden_dim"] == 64
    assert flagged["init_args"]["latent_dim"] == params["latent_dim"]
    registered = ModelRegistry(tmp_path / "models", create=False).get_metadata("layer1_vae")
    assert registered.hyperparameters["params_from"] == origin  # and MLflow's params
