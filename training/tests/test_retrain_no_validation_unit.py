"""`retrain` whose validation split holds no unit of the kind the challenger learns from (trial R).

A day of another capture appended to a collection of labeled days (an unlabeled port scan after
three labeled days of Stratosphere 011) puts only unlabeled rows in the temporal split's
validation part. A production model trained `--benign-only` makes the challenger learn from and
validate on benign rows: there were none, and `retrain` failed with "error: the validation data
yielded no batch", naming neither the split nor the cause. It now names the split, its label
counts and the way on.
"""

from __future__ import annotations

import json

from training.cli.main import main
from training.tests.cli_run import run_cli

SME = "slips_ctu_sme_11_labeled_zeek/zeek-labeled/conn.log.labeled"
TSV10 = "slips_zeek_tsv_test10/conn.log"  # unlabeled flows of another network


def test_a_validation_split_without_benign_units_is_refused_naming_it(datasets, tmp_path,
                                                                        capsys):
    models = str(tmp_path / "models")
    run_cli("preprocess", "--source", f"zeek:{datasets / SME}", "--output",
            str(tmp_path / "f"))
    run_cli("split", "--data", str(tmp_path / "f/layer1_samples.npz"), "--strategy", "random",
            "--output", str(tmp_path / "s"))
    splits = [f"--{s}-data" if i == 0 else str(tmp_path / f"s/layer1_{s}.npz")
              for s in ("train", "val", "test") for i in (0, 1)]
    first = json.loads(run_cli("retrain", *splits, "--registry-dir", models, "--epochs", "1",
                               "--benign-only"))
    run_cli("registry", "promote", "--registry-dir", models, "--model", "layer1_vae",
            "--version", first["new_version"])
    # the other network's unlabeled flows, featurized with the production model's transform
    run_cli("preprocess", "--source", f"zeek:{datasets / TSV10}", "--output",
            str(tmp_path / "other"), "--model", "layer1_vae", "--registry-dir", models)
    val = str(tmp_path / "other/layer1_samples.npz")
    flags = [*splits[:2], "--val-data", val, *splits[4:], "--registry-dir", models,
             "--epochs", "1", "--force"]
    capsys.readouterr()
    assert main(["retrain", *flags, "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {val}: no validation unit to set the threshold on: it learns "
                          "from benign (is_threat 0) rows"), err
    assert "(0 benign, 0 threat, " in err and "unlabeled)" in err
    assert "retrain --keep-unknown" in err
    assert "yielded no batch" not in err and "Traceback" not in err
    # --keep-unknown, as the error says, trains on them
    assert json.loads(run_cli("retrain", *flags, "--keep-unknown"))["retrained"] is True
