"""Layer 3: the dilated causal TCN on per-entity windows (windows are the scored units).

| hyperparameter | range                 | what it changes                              |
|----------------|-----------------------|----------------------------------------------|
| learning_rate  | 1e-4 .. 1e-2 (log)    | the optimizer's step size                    |
| batch_size     | 32, 64, 128, 256      | windows per training batch                   |
| channels       | 16, 32, 64            | channels of every residual block             |
| num_blocks     | 2 .. 5                | residual blocks (dilations 1, 2, 4, ...)     |
| kernel_size    | 2, 3, 5               | convolution width                            |
| dropout        | 0.0 .. 0.5            | dropout inside the blocks                    |

Training goes through `train_layer3_tcn` (benign windows only when there are any). The "loss"
metric is the trainer's validation loss (over the benign validation windows); PR-AUC is over
the validation windows with a known label.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna

from training.features.layer3_windows import Layer3Windows
from training.hpo.objectives import LayerObjective, register_objective
from training.layer3_data import Layer3Data, fit_layer3_scaling
from training.train_flags import benign_units
from training.train_layer3_tcn import default_config, train_layer3_tcn
from training.trainer_config import TrainingConfig


@register_objective
class Layer3Objective(LayerObjective):
    """Tunes `Layer3TCN` (see the module docstring for the search space)."""

    layer = 3
    model_name = "layer3_tcn"

    def load(self) -> dict[str, Any]:
        train = Layer3Windows.load(self.train_data)
        val = Layer3Windows.load(self.val_data)
        # The same scaling train_layer3_tcn fits, to score the validation windows each epoch.
        benign = benign_units(train.labels, None)
        spec = fit_layer3_scaling(train, benign_only=benign)
        return {"train": train, "val": val, "val_data": Layer3Data(val, spec, benign_only=benign)}

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        return {
            "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
            "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128, 256]),
            "channels": trial.suggest_categorical("channels", [16, 32, 64]),
            "num_blocks": trial.suggest_int("num_blocks", 2, 5),
            "kernel_size": trial.suggest_categorical("kernel_size", [2, 3, 5]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        }

    def default_params(self) -> dict[str, Any]:
        return {"learning_rate": 3e-3, "batch_size": 128, "channels": 32, "num_blocks": 4,
                "kernel_size": 3, "dropout": 0.1}

    def base_config(self, **changes: Any) -> TrainingConfig:
        return default_config(**changes)

    def fit(self, params: dict[str, Any], config: TrainingConfig,
            callbacks: list[Any]) -> tuple[Any, dict[str, Any]]:
        return train_layer3_tcn(
            self.data["train"], self.data["val"], config,
            channels=[params["channels"]] * params["num_blocks"],
            kernel_size=params["kernel_size"], dropout=params["dropout"], callbacks=callbacks)

    def val_labels(self) -> np.ndarray:
        return self.data["val_data"].labels()

    def val_scores(self, model: Any) -> np.ndarray:
        return self.data["val_data"].scores(model)
