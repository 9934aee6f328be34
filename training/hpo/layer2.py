"""Layer 2: the graph autoencoder on window graphs (edges are the scored units).

| hyperparameter | range                 | what it changes                              |
|----------------|-----------------------|----------------------------------------------|
| learning_rate  | 1e-4 .. 1e-2 (log)    | the optimizer's step size                    |
| batch_size     | 8, 16, 32, 64         | windows per training batch                   |
| hidden_dim     | 32, 64, 128           | width of the embeddings and heads            |
| num_layers     | 1 .. 3                | message-passing layers                       |
| conv           | sage, gat             | GraphSAGE, or GATv2 reading the edge features |
| dropout        | 0.0 .. 0.5            | dropout after every layer                    |

Training goes through `train_layer2_gnn` (benign edges only when there are any). The "loss"
metric is the trainer's validation loss (over the validation graphs' benign edges); PR-AUC is
over the validation edges with a known label.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna

from training.features.layer2_graphs import Layer2Graphs
from training.hpo.objectives import LayerObjective, register_objective
from training.layer2_data import Layer2Data, fit_layer2_scaling
from training.train_flags import benign_units
from training.train_layer2_gnn import default_config, train_layer2_gnn
from training.trainer_config import TrainingConfig


@register_objective
class Layer2Objective(LayerObjective):
    """Tunes `Layer2GNN` (see the module docstring for the search space)."""

    layer = 2
    model_name = "layer2_gnn"

    def load(self) -> dict[str, Any]:
        train = Layer2Graphs.load(self.train_data)
        val = Layer2Graphs.load(self.val_data)
        # The same scaling train_layer2_gnn fits, to score the validation edges each epoch.
        benign = benign_units(train.arrays["edge_y"], None)
        spec = fit_layer2_scaling(train, benign_only=benign)
        return {"train": train, "val": val, "val_data": Layer2Data(val, spec, benign_only=benign)}

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        return {
            "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
            "batch_size": trial.suggest_categorical("batch_size", [8, 16, 32, 64]),
            "hidden_dim": trial.suggest_categorical("hidden_dim", [32, 64, 128]),
            "num_layers": trial.suggest_int("num_layers", 1, 3),
            "conv": trial.suggest_categorical("conv", ["sage", "gat"]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        }

    def default_params(self) -> dict[str, Any]:
        return {"learning_rate": 3e-3, "batch_size": 32, "hidden_dim": 64, "num_layers": 2,
                "conv": "sage", "dropout": 0.1}

    def base_config(self, **changes: Any) -> TrainingConfig:
        return default_config(**changes)

    def fit(self, params: dict[str, Any], config: TrainingConfig,
            callbacks: list[Any]) -> tuple[Any, dict[str, Any]]:
        return train_layer2_gnn(
            self.data["train"], self.data["val"], config, hidden_dim=params["hidden_dim"],
            num_layers=params["num_layers"], conv=params["conv"], dropout=params["dropout"],
            callbacks=callbacks)

    def val_labels(self) -> np.ndarray:
        return self.data["val_data"].labels()

    def val_scores(self, model: Any) -> np.ndarray:
        return self.data["val_data"].edge_scores(model)
