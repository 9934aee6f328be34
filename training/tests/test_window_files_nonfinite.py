"""Layer-2 and layer-3 units with NaN or infinite features are refused where a model fits or
scores them, saying so, as layer 1's are (trial U); `validate` still reads and reports them.

Before, a NaN in a benign edge's or window's features failed as "the edge scaling in the
FeatureSpec has (18,) means and (18,) deviations for 18 features" (shapes that agree), a NaN in
a threat unit trained without a word, and `evaluate` blamed the model ("the model's
anomaly_score must return finite values")."""

from __future__ import annotations

import numpy as np
import pytest

from training.cli.main import main
from training.features.layer2 import Layer2GraphBuilder
from training.features.layer3 import Layer3WindowBuilder

CAPTURE = "slips_zeek_tsv_test10/conn.log"


@pytest.fixture(scope="module")
def units(datasets, tmp_path_factory):
    """Layer-2 and layer-3 files of a real capture, and copies with one NaN feature."""
    from training.tests.conftest import collect

    events = collect("zeek_logs", datasets / CAPTURE)[0]
    folder = tmp_path_factory.mktemp("units")
    paths = {"layer2": Layer2GraphBuilder().featurize(events).save(folder / "l2.npz"),
             "layer3": Layer3WindowBuilder().featurize(events).save(folder / "l3.npz")}
    for layer, name in (("layer2", "edge_attr"), ("layer3", "X"), ("layer3", "target")):
        arrays = dict(np.load(paths[layer], allow_pickle=False))
        values = arrays[name].astype(np.float32)
        values[1] = np.nan
        np.savez(folder / f"{layer}_{name}.npz", **{**arrays, name: values})
        paths[f"{layer}_{name}"] = folder / f"{layer}_{name}.npz"
    return paths


def _run(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize(("layer", "name", "said"), [
    ("layer2", "edge_attr", "edge features"),
    ("layer3", "X", "histories (X)"),
    ("layer3", "target", "features"),
])
def test_training_on_nan_units_says_so(units, tmp_path, capsys, layer, name, said):
    code, err = _run(["train", layer, "--train_data", str(units[f"{layer}_{name}"]),
                      "--val_data", str(units[layer]), "--num_epochs", "1",
                      "--checkpoint_dir", str(tmp_path), "--no_tensorboard", "-q"], capsys)
    assert code == 1
    assert said in err and "NaN or infinite values in 1 rows" in err
    assert "scaling in the FeatureSpec" not in err
    assert not (tmp_path / f"{layer}_{'gnn' if layer == 'layer2' else 'tcn'}_best.pt").exists()


@pytest.mark.parametrize(("layer", "name"), [("layer2", "edge_attr"), ("layer3", "X")])
def test_evaluating_nan_units_names_the_data_not_the_model(units, tmp_path, capsys, layer,
                                                           name):
    code, _ = _run(["train", layer, "--train_data", str(units[layer]), "--val_data",
                    str(units[layer]), "--num_epochs", "1", "--checkpoint_dir", str(tmp_path),
                    "--no_tensorboard", "-q"], capsys)
    assert code == 0
    model = next(tmp_path.glob("*_best.pt"))
    code, err = _run(["evaluate", "--model", str(model), "--data",
                      str(units[f"{layer}_{name}"]), "--no-latency"], capsys)
    assert code == 1
    assert f"({name}) have NaN or infinite values in 1 rows (first: row 1)" in err
    assert "anomaly_score" not in err


def test_validate_still_reports_nan_units(units, capsys):
    code = main(["validate", "--data", str(units["layer2_edge_attr"])])
    captured = capsys.readouterr()
    assert code == 0, captured.err  # a warning: one row of 79 is under 10% missing
    assert "missing_values: 18 NaN value(s)" in captured.out  # row 1, every feature
