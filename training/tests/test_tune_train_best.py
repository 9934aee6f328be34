"""`tune --train-best` on a finished study registers its best configuration once."""

from __future__ import annotations

import json
import logging

from training.cli.main import main
from training.registry.registry import ModelRegistry
from training.tests.tuning_helpers import write_layer1_splits


def test_a_finished_study_resumed_with_train_best_registers_no_duplicate(tmp_path, capsys,
                                                                          caplog):
    """The trial ran `tune ... --train-best` again on a finished study (0 trials left): it
    retrained and registered 1.1.0 with weights byte-identical to 1.0.0's. Now it says which
    version holds that configuration and registers nothing; another --best_epochs trains."""
    train, val = write_layer1_splits(tmp_path)
    models = tmp_path / "models"
    argv = ["tune", "--train_data", train, "--val_data", val, "--n_trials", "1",
            "--max_epochs", "1", "--train_best", "--best_epochs", "1", "--seed", "3",
            "--output_dir", str(tmp_path / "t"), "--registry-dir", str(models), "-q"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert (first["ran"], first["train_best"]["version"]) == (1, "1.0.0")
    assert first["train_best"]["registered"] is True
    with caplog.at_level(logging.INFO):
        assert main([a for a in argv if a != "-q"]) == 0
    again = json.loads(capsys.readouterr().out)
    # its progress line counts the study's trials: "1/1", where it said "0/0" (trial S)
    assert "tuning layer1_vae_tuning: 1/1 trials in " in caplog.text
    assert again["ran"] == 0 and again["best_params"] == first["best_params"]
    kept = again["train_best"]
    assert (kept["version"], kept["registered"], kept["checkpoint"]) == ("1.0.0", False, None)
    assert kept["metrics"] == first["train_best"]["metrics"]
    assert kept["note"].startswith("layer1_vae 1.0.0 was trained with these parameters "
                                   "(trial 0 of study layer1_vae_tuning), num_epochs 1, seed 3 "
                                   "and threshold rule quantile:0.999 on the same data: not "
                                   "trained or registered again")
    assert kept["note"] in caplog.text
    assert ModelRegistry(models).list_models() == {"layer1_vae": ["1.0.0"]}
    # another recipe is another model: trained and registered
    assert main([*argv, "--best_epochs", "2"]) == 0  # the last --best_epochs wins
    other = json.loads(capsys.readouterr().out)["train_best"]
    assert (other["version"], other["registered"]) == ("1.1.0", True)
