"""A validation split with no unit of the kind training learns from (empty, or threats only
while training learns from the benign ones) is refused naming the validation split (trial U).

Before, layer 3 said "no window to train on (none is benign)" and layer 2 "no window has an
edge to train on" about a training split that had plenty, and layer 1 "the validation data
yielded no batch"."""

from __future__ import annotations

import numpy as np
import pytest

from training.cli.main import main
from training.errors import ConfigError
from training.features.layer3 import Layer3WindowBuilder
from training.layers.training import train_layer3_tcn
from training.tests.conftest import collect
from training.trainer.config import TrainingConfig

CAPTURE = "stratosphere/011-zeek-mixed/data/conn.log.labeled"


@pytest.fixture(scope="module")
def events(datasets):
    return collect("zeek_logs", datasets / CAPTURE)[0]


def _config(tmp_path):
    return TrainingConfig(model_name="m", layer_name="l", num_epochs=1, checkpoint_dir=tmp_path,
                          log_dir=tmp_path, tensorboard=False)


def test_layer3_validation_of_threats_only_is_named(events, tmp_path):
    windows = Layer3WindowBuilder().featurize(events)
    assert (windows.labels == 0).any() and (windows.labels == 1).any()
    train = windows.subset(np.flatnonzero(windows.labels == 0))
    threats = windows.subset(np.flatnonzero(windows.labels == 1))
    with pytest.raises(ConfigError, match=r"^the validation split has no benign window among "
                                          rf"its {len(threats)}: "):
        train_layer3_tcn(train, threats, _config(tmp_path))
    empty = windows.subset(np.array([], dtype=np.int64))
    with pytest.raises(ConfigError, match=r"^the validation split is empty \(0 windows\)"):
        train_layer3_tcn(train, empty, _config(tmp_path))
    # learning from every unit, the threats are a reference like any other
    _, results = train_layer3_tcn(train, threats, _config(tmp_path), benign_only=False)
    assert results["epochs_trained"] == 1


def test_layer1_validation_of_threats_only_is_named(datasets, tmp_path, capsys):
    assert main(["preprocess", "--source", f"zeek:{datasets / CAPTURE}", "--layers", "layer1",
                 "--output", str(tmp_path), "-q"]) == 0
    assert main(["split", "--data", str(next(tmp_path.glob("layer1_*.npz"))), "--prefix",
                 "l1", "--output", str(tmp_path), "-q"]) == 0
    arrays = dict(np.load(tmp_path / "l1_val.npz", allow_pickle=False))
    keep = arrays["labels"] == 1
    np.savez(tmp_path / "threats.npz", **{k: v[keep] if v.ndim and len(v) == len(keep) else v
                                          for k, v in arrays.items()})
    capsys.readouterr()
    assert main(["train", "layer1", "--train_data", str(tmp_path / "l1_train.npz"),
                 "--val_data", str(tmp_path / "threats.npz"), "--num_epochs", "1",
                 "--checkpoint_dir", str(tmp_path / "ck"), "--no_tensorboard", "-q"]) == 2
    assert capsys.readouterr().err.startswith(
        f"error: the validation split has no benign event among its {int(keep.sum())}: ")
