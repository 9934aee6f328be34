"""The original tuning functions, over `training.tuning`:

- `create_layer1_vae_objective(train_features, train_labels, val_features, val_labels)`: an
  Optuna objective on arrays that trains a Layer1VAE per trial over the original search space
  (learning rate, batch size, hidden and latent size, dropout, beta; 30 epochs, pruned per
  epoch) and returns its validation loss (recon + KL), to minimize;
- `tune_layer1_vae(train_data_path, val_data_path, n_trials=50, study_name=...)`: that study on
  two split files; returns the original's result dict (best_params, best_value,
  best_trial_number, n_trials, study) and draws the original plots (`visualize`).

No pickled study file is written: the study lives in its storage (SQLite by default, in the
study folder), with `best_params.json` and `trials.csv` beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from training.compat.train_layer1_vae import vectors
from training.tuning.objectives import LayerObjective
from training.tuning.tuner import HyperparameterTuner, TuningConfig


def create_layer1_vae_objective(train_features: np.ndarray, train_labels: np.ndarray | None,
                                val_features: np.ndarray, val_labels: np.ndarray | None, *,
                                max_epochs: int = 30, seed: int | None = 42) -> LayerObjective:
    """The layer-1 objective on arrays: `objective(trial) -> validation loss` (minimize).

    Args:
        train_features, val_features: (rows, 128) vectors (another width trains a VAE of it).
        train_labels, val_labels: -1/0/1 per row, or None.
        max_epochs: epochs per trial.
        seed: training seed of every trial.
    """
    train = vectors("train", train_features, train_labels, None)
    val = vectors("val", val_features, val_labels, None)
    return LayerObjective("layer1", train, val, metric="loss", max_epochs=max_epochs, seed=seed)


def tune_layer1_vae(train_data_path: str | Path, val_data_path: str | Path,
                    n_trials: int = 50, study_name: str = "layer1_vae_tuning", *,
                    output_dir: str | Path | None = None, max_epochs: int = 30,
                    seed: int | None = None) -> dict[str, Any]:
    """Tune the layer-1 VAE on two split files (`.npz` from the dataset builder).

    A study of that name that already has trials is resumed (only the missing ones run).

    Returns:
        {"best_params", "best_value", "best_trial_number", "n_trials", "study", "files"}.
    """
    objective = LayerObjective("layer1", train_data_path, val_data_path, metric="loss",
                               max_epochs=max_epochs)
    extra = {} if output_dir is None else {"output_dir": output_dir}
    tuner = HyperparameterTuner(TuningConfig(
        study_name=study_name, direction="minimize", n_trials=n_trials, use_pruner=True,
        pruner_max_steps=max_epochs, seed=seed, **extra))
    tuner.load_study_for(objective)
    result = tuner.tune(objective).to_dict()
    result["files"].update({name: str(path) for name, path in tuner.visualize().items()})
    return result
