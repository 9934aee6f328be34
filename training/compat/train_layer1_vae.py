"""The original `train_layer1_vae(train_features, train_labels, val_features, val_labels,
config, beta)`: arrays in, (model, results) out, on top of `training.layers.training`.

Vectors given without a FeatureSpec are taken as the data-free default layer-1 layout when they
have its width (the layer says so in a warning); then the checkpoint can be scored by
`maximus-train score`. Vectors of another width train a VAE of that width with no spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from training.datasets.split import DatasetSplit
from training.detectors.vae import Layer1VAE
from training.errors import SchemaError
from training.features.encoding import FeatureSpec
from training.layers.layer1 import Layer1
from training.layers.training import seed_keywords, train_layer
from training.trainer.callbacks import Callback
from training.trainer.config import TrainingConfig


@seed_keywords(Layer1, "training.detectors.vae.Layer1VAE", sizes=("input_dim",))
def train_layer1_vae(train_features: np.ndarray, train_labels: np.ndarray | None = None,
                     val_features: np.ndarray | None = None,
                     val_labels: np.ndarray | None = None,
                     config: TrainingConfig | None = None, beta: float = 0.01, *,
                     hidden_dim: int | list[int] = 96, latent_dim: int = 64,
                     dropout: float = 0.2, model_args: dict[str, Any] | None = None,
                     feature_spec: FeatureSpec | None = None, benign_only: bool | None = None,
                     resume: bool | str | Path = False, callbacks: list[Callback] | None = None,
                     ) -> tuple[Layer1VAE, dict[str, Any]]:
    """Train a Layer1VAE; returns (model with the best epoch's weights, results).

    Args:
        train_features, train_labels: (n, d) features (d = 128 for the default layout);
            labels -1/0/1, or None for unlabeled rows.
        val_features, val_labels: the validation split (best epoch, threshold), or None.
        config: TrainingConfig; default `Layer1().default_config()` (checkpoints layer1_vae_*).
        beta: weight of the KL term (the seed's default was 1.0; see `training.detectors.vae`).
        hidden_dim, latent_dim, dropout: the model's sizes (hidden_dim may be a list).
        model_args: further Layer1VAE arguments (num_hidden_layers, reconstruction, score).
        feature_spec: the FeatureSpec of the features, written into the sidecar.
        benign_only: None = the benign rows when there are any (unknown is never benign), else
            every row; True/False force it.
        resume, callbacks: as `training.layers.training.train_layer`.

    Returns:
        (model, results) as `train_layer` (`train_units`: rows learnt from).
    """
    train = vectors("train", train_features, train_labels, feature_spec)
    val = (vectors("val", val_features, val_labels, feature_spec)
           if val_features is not None else None)
    width = train.features.shape[1]
    if val is not None and val.features.shape[1] != width:
        raise SchemaError(f"val_features must have shape (rows, {width}) as train_features, "
                          f"got {val.features.shape}")
    args = {"hidden_dim": hidden_dim, "latent_dim": latent_dim, "dropout": dropout,
            "beta": beta, **(model_args or {})}
    return train_layer(Layer1(), train, val, config, model_args=args, benign_only=benign_only,
                       resume=resume, callbacks=callbacks)


def vectors(name: str, features: np.ndarray, labels: np.ndarray | None,
             spec: FeatureSpec | None) -> DatasetSplit:
    """Arrays as a split named `name` (labels None: every row unknown), checked."""
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or not len(features):
        raise SchemaError(f"{name}_features must have shape (rows, dims) with rows, got "
                          f"{features.shape}")
    n = len(features)
    labels = np.full(n, -1, np.int8) if labels is None else np.asarray(labels)
    if labels.shape != (n,):
        raise SchemaError(f"{name}_features: {len(labels)} labels for {n} rows")
    return DatasetSplit(name, features, labels, np.arange(n).astype(str), np.arange(n), spec=spec)


def read_split(path: str | Path) -> tuple[np.ndarray, np.ndarray, FeatureSpec | None]:
    """(features float32 (n, d), labels (n,), FeatureSpec or None) of a split file."""
    split = DatasetSplit.load(path)
    return split.features, split.labels, split.spec
