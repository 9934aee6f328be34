"""Layer 1: the VAE on 128-dim event vectors, with the original tuner's search space.

| hyperparameter | range                 | what it changes                           |
|----------------|-----------------------|-------------------------------------------|
| learning_rate  | 1e-5 .. 1e-2 (log)    | the optimizer's step size                 |
| batch_size     | 16, 32, 64, 128       | rows per training batch                   |
| hidden_dim     | 64, 96, 128, 256      | width of the encoder and decoder layers   |
| latent_dim     | 32, 64, 128           | size of the latent code                   |
| dropout        | 0.1 .. 0.5            | dropout after every hidden layer          |
| beta           | 0.1 .. 10 (log)       | weight of the KL term in the training loss |

Training goes through `train_layer1_vae` (benign rows only when the training labels have both
classes, as the train script does). The "loss" metric is the validation negative ELBO with
beta = 1 (reconstruction + KL): the training loss weighs KL by the trial's beta, so comparing
it across trials would favour a small beta for its own sake.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
import torch

from training.hpo.objectives import LayerObjective, register_objective
from training.train_layer1_vae import default_config, read_split, train_layer1_vae
from training.trainer_config import TrainingConfig

SCORE_BATCH = 4096


@register_objective
class Layer1Objective(LayerObjective):
    """Tunes `Layer1VAE` (see the module docstring for the search space)."""

    layer = 1
    model_name = "layer1_vae"

    def load(self) -> dict[str, Any]:
        train_x, train_y, spec = read_split(self.train_data)
        val_x, val_y, val_spec = read_split(self.val_data)
        if spec is not None and val_spec is not None:
            spec.require(val_spec, f"validation split {self.val_data}")
        return {"train_x": train_x, "train_y": train_y, "val_x": val_x,
                "val_y": np.asarray(val_y), "spec": spec}

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        return {
            "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True),
            "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64, 128]),
            "hidden_dim": trial.suggest_categorical("hidden_dim", [64, 96, 128, 256]),
            "latent_dim": trial.suggest_categorical("latent_dim", [32, 64, 128]),
            "dropout": trial.suggest_float("dropout", 0.1, 0.5),
            "beta": trial.suggest_float("beta", 0.1, 10.0, log=True),
        }

    def default_params(self) -> dict[str, Any]:
        return {"learning_rate": 1e-3, "batch_size": 32, "hidden_dim": 96, "latent_dim": 64,
                "dropout": 0.2, "beta": 1.0}

    def base_config(self, **changes: Any) -> TrainingConfig:
        return default_config(**changes)

    def fit(self, params: dict[str, Any], config: TrainingConfig,
            callbacks: list[Any]) -> tuple[Any, dict[str, Any]]:
        d = self.data
        return train_layer1_vae(
            d["train_x"], d["train_y"], d["val_x"], d["val_y"], config, beta=params["beta"],
            hidden_dim=params["hidden_dim"], latent_dim=params["latent_dim"],
            dropout=params["dropout"], feature_spec=d["spec"], callbacks=callbacks)

    def loss_value(self, metrics: dict[str, float]) -> float:
        return metrics["val_recon"] + metrics["val_kl"]

    def val_labels(self) -> np.ndarray:
        return self.data["val_y"]

    @torch.no_grad()
    def val_scores(self, model: Any) -> np.ndarray:
        model.eval()
        device = next(model.parameters()).device
        x = torch.from_numpy(self.data["val_x"])
        scores = [model.anomaly_score(x[i:i + SCORE_BATCH].to(device))
                  for i in range(0, len(x), SCORE_BATCH)]
        return torch.cat(scores).float().cpu().numpy()
