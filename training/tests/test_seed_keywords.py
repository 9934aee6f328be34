"""A mistyped keyword argument of the seed-compatible training functions (`hiden_dim=64`) is
refused before any work, naming it and the closest valid one (`seed_keywords`).

Before, layer 1 raised Python's bare "train_layer1_vae() got an unexpected keyword argument
'hiden_dim'", and layers 2 and 3 fitted the layer, then the detector raised
"Layer2GNN.__init__() got an unexpected keyword argument 'hiden_dim'" (trial U)."""

from __future__ import annotations

import numpy as np
import pytest

from training.errors import ConfigError, UnknownArgumentError
from training.features.layer2 import Layer2GraphBuilder
from training.features.layer3 import Layer3WindowBuilder
from training.tests import synthetic_traffic as traffic
from training.train_layer1_vae import train_layer1_vae
from training.train_layer2_gnn import train_layer2_gnn
from training.train_layer3_tcn import train_layer3_tcn
from training.trainer.config import TrainingConfig


@pytest.fixture(scope="module")
def units():
    """Each function's training units: layer-1 vectors, office graphs and windows."""
    rows = traffic.table(traffic.office_rows(1, hosts=4, minutes=30))
    vectors = np.random.default_rng(0).random((40, 128)).astype(np.float32)
    return {train_layer1_vae: vectors, train_layer2_gnn: Layer2GraphBuilder().featurize(rows),
            train_layer3_tcn: Layer3WindowBuilder(history=10).featurize(rows)}


@pytest.fixture
def config(tmp_path):
    return TrainingConfig(model_name="m", layer_name="l", num_epochs=1, tensorboard=False,
                          checkpoint_dir=tmp_path / "checkpoints", log_dir=tmp_path / "logs")


@pytest.mark.parametrize("function, typo, meant", [
    (train_layer1_vae, "hiden_dim", "hidden_dim"),
    (train_layer1_vae, "benign_onyl", "benign_only"),
    (train_layer2_gnn, "hiden_dim", "hidden_dim"),
    (train_layer2_gnn, "num_layer", "num_layers"),
    (train_layer2_gnn, "benign_onyl", "benign_only"),  # passed on to the detector before
    (train_layer3_tcn, "chanels", "channels"),
    (train_layer3_tcn, "Dropout", "dropout"),
])
def test_a_mistyped_keyword_is_named_with_the_closest_valid_one(units, config, tmp_path,
                                                                 function, typo, meant):
    with pytest.raises(UnknownArgumentError,
                       match=rf"^{function.__name__}\(\) got an unknown keyword argument "
                             rf"'{typo}' \(did you mean {meant}\?\); it takes ") as caught:
        function(units[function], None, config, **{typo: 1})
    # a TypeError as Python's own was, and one of our configuration errors
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, ConfigError)
    assert not tmp_path.joinpath("checkpoints").exists()  # refused before any work


def test_the_message_lists_the_function_s_and_the_detector_s_arguments(units, config):
    with pytest.raises(UnknownArgumentError) as caught:
        train_layer3_tcn(units[train_layer3_tcn], None, config, chanels=[8])
    assert str(caught.value) == (
        "train_layer3_tcn() got an unknown keyword argument 'chanels' (did you mean channels?); "
        "it takes train_windows, val_windows, config, benign_only, resume, callbacks; "
        "Layer3TCN's arguments go with them: channels, kernel_size, dilations, dropout, detector")


def test_layer1_model_args_keys_and_the_sizes_the_layer_sets(units, config):
    with pytest.raises(UnknownArgumentError, match=r"^train_layer1_vae\(\) got an unknown "
                       r"model_args key 'num_hiden_layers' \(did you mean num_hidden_layers\?\)"):
        train_layer1_vae(units[train_layer1_vae], config=config,
                         model_args={"num_hiden_layers": 3})
    with pytest.raises(UnknownArgumentError, match=r"^train_layer2_gnn\(\) got an unknown "
                       r"keyword argument 'node_dim' \(the layer sets it from the data\); "):
        train_layer2_gnn(units[train_layer2_gnn], None, config, node_dim=3)


def test_valid_keywords_still_train(units, config):
    """The detector's own arguments pass (layer 1's in model_args); a row detector's are
    checked where it is built."""
    model, _ = train_layer1_vae(units[train_layer1_vae], config=config, hidden_dim=8,
                                model_args={"num_hidden_layers": 1})
    assert model.init_args["hidden_dim"] == 8 and model.init_args["num_hidden_layers"] == 1
    model, _ = train_layer3_tcn(units[train_layer3_tcn], None, config, channels=[4],
                                kernel_size=2)
    assert model.init_args["channels"] == [4] and model.init_args["kernel_size"] == 2
    with pytest.raises(ConfigError, match="^iforest takes "):
        train_layer2_gnn(units[train_layer2_gnn], None, config, detector="iforest", hiden=1)
