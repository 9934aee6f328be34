"""Hyperparameter tuning on Optuna (the original script and module; the code lives in
`training.tuning`).

    python training/hyperparameter_tuner.py --train_data ... --val_data ... --n_trials 50
"""

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # Run as a script, sys.path[0] is training/, whose folders (datasets, ...) would shadow
    # top-level packages; the folder holding the package goes there instead.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from training.cli.tune import main
from training.compat.tuning import create_layer1_vae_objective, tune_layer1_vae
from training.tuning.tuner import HyperparameterTuner, TuningConfig, TuningResult

__all__ = ["HyperparameterTuner", "TuningConfig", "TuningResult", "create_layer1_vae_objective",
           "main", "tune_layer1_vae"]

if __name__ == "__main__":
    sys.exit(main())
