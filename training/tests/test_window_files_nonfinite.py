"""A layer-2 or layer-3 split file with NaN or infinite features is refused when read, naming
the file, the array and the first bad row, as layer 1's are (trial U).

Before, a NaN in a benign edge's or window's features surfaced as "the edge scaling in the
FeatureSpec has (18,) means and (18,) deviations for 18 features" (shapes that agree), a NaN in
a threat unit trained without a word, and `evaluate` blamed the model ("the model's
anomaly_score must return finite values")."""

from __future__ import annotations

import numpy as np
import pytest

from training.cli.main import main
from training.errors import SchemaError
from training.features.layer2 import Layer2GraphBuilder
from training.features.layer2_graphs import Layer2Graphs
from training.features.layer3 import Layer3WindowBuilder
from training.features.layer3_windows import Layer3Windows
from training.tests.conftest import collect

CAPTURE = "slips_zeek_tsv_test10/conn.log"


@pytest.fixture(scope="module")
def events(datasets):
    return collect("zeek_logs", datasets / CAPTURE)[0]


def _poisoned(path, name, row):
    arrays = dict(np.load(path, allow_pickle=False))
    values = arrays[name].astype(np.float32)
    values[row] = np.nan
    arrays[name] = values
    np.savez(path, **arrays)


@pytest.mark.parametrize("array", ["x", "edge_attr"])
def test_layer2_file_with_nan_is_refused_naming_it(events, tmp_path, array):
    path = Layer2GraphBuilder().featurize(events).save(tmp_path / "layer2_train.npz")
    Layer2Graphs.load(path)  # clean: read as before
    _poisoned(path, array, 1)
    with pytest.raises(SchemaError, match=rf"{array} has NaN or infinite values in 1 rows "
                                          r"\(first: row 1\)"):
        Layer2Graphs.load(path)


@pytest.mark.parametrize("array", ["X", "target"])
def test_layer3_file_with_nan_is_refused_naming_it(events, tmp_path, array):
    path = Layer3WindowBuilder().featurize(events).save(tmp_path / "layer3_train.npz")
    Layer3Windows.load(path)
    _poisoned(path, array, 2)
    with pytest.raises(SchemaError, match=rf"{array} has NaN or infinite values in 1 rows "
                                          r"\(first: row 2\)"):
        Layer3Windows.load(path)


def test_train_layer3_on_nan_split_says_so(events, tmp_path, capsys):
    windows = Layer3WindowBuilder().featurize(events)
    train = windows.save(tmp_path / "layer3_train.npz")
    val = windows.save(tmp_path / "layer3_val.npz")
    _poisoned(train, "target", 0)
    code = main(["train", "layer3", "--train_data", str(train), "--val_data", str(val),
                 "--num_epochs", "1", "--checkpoint_dir", str(tmp_path / "ck"),
                 "--no_tensorboard", "-q"])
    err = capsys.readouterr().err
    assert code == 1
    assert "target has NaN or infinite values" in err
    assert "scaling in the FeatureSpec" not in err
