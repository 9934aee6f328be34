"""A study whose every trial failed (here on a split with a NaN) holds no value to compare, so
running `tune` again on the fixed data resumes it instead of refusing it as "trials on other
data" (trial U: the study folder had to be found and deleted by hand). A study with values
still refuses other data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.cli.main import main

CAPTURE = "slips_zeek_tsv_test10/conn.log"


@pytest.fixture(scope="module")
def splits(datasets, tmp_path_factory):
    folder = tmp_path_factory.mktemp("splits")
    assert main(["preprocess", "--source", f"zeek:{datasets / CAPTURE}", "--layers", "layer1",
                 "--output", str(folder), "-q"]) == 0
    assert main(["split", "--data", str(next(folder.glob("layer1_*.npz"))), "--strategy",
                 "random", "--prefix", "l1", "--output", str(folder), "-q"]) == 0
    arrays = dict(np.load(folder / "l1_train.npz", allow_pickle=False))
    features = arrays["features"].copy()
    features[3, 5] = np.nan
    np.savez(folder / "l1_train_nan.npz", **{**arrays, "features": features})
    return {name: str(folder / f"l1_{name}.npz") for name in ("train", "val", "train_nan")}


def test_a_study_of_failed_trials_resumes_on_the_fixed_data(splits, tmp_path, capsys):
    common = ["tune", "--val_data", splits["val"], "--n_trials", "1", "--max_epochs", "1",
              "--study_name", "s", "--output_dir", str(tmp_path), "--metric", "loss", "-q"]
    assert main([*common, "--train_data", splits["train_nan"]]) == 1
    assert "NaN or infinite values" in capsys.readouterr().err
    assert main([*common, "--train_data", splits["train"]]) == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert summary["trials"]["complete"] == 1
    recorded = json.loads((tmp_path / "s" / "best_params.json").read_text())
    assert recorded["study_attrs"]["objective"]["train_data"] == splits["train"]
    # now it holds a value: the other (bad) data is refused again
    assert main([*common, "--n_trials", "2", "--train_data", splits["train_nan"]]) == 2
    assert "holds trials on other data" in capsys.readouterr().err
