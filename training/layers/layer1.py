"""Layer 1 (sensory): one 128-dim vector per event, scored by a VAE's reconstruction error.

`training.features.layer1` documents the vector; `training.layers.vectors` what every per-event
layer shares (units, splits, batches). The default layout is data-free, so `fit` learns no
scaling. Vectors without a FeatureSpec (written by code that passed none) are taken as the
default layout when they have its width, with a warning saying so.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from training.detectors.vae import Layer1VAE
from training.features.encoding import FeatureSpec
from training.features.layer1 import DIM, Layer1Featurizer
from training.features.layer1_names import dim_names
from training.features.layer1_record import featurize_record
from training.layers.registry import register_layer
from training.layers.samples import LayerType
from training.layers.vectors import EventVectorLayer
from training.trainer.config import TrainingConfig

logger = logging.getLogger(__name__)


@register_layer
class Layer1(EventVectorLayer):
    """Events as 128-dim vectors, for the layer-1 VAE (see the module docstring)."""

    name = "layer1"
    layer_type = LayerType.LAYER1_SENSORY
    aliases = (LayerType.LAYER1_SENSORY.value, "sensory", "1")
    model_name = "layer1_vae"
    detector_name = "vae"
    features_file = "layer1_samples.npz"
    min_units = 100
    model_options = {
        "hidden_dim": {"type": int, "default": 96, "help": "width of the hidden layers"},
        "latent_dim": {"type": int, "default": 64, "help": "size of the latent code"},
        "dropout": {"type": float, "default": 0.2, "help": "dropout after every hidden layer"},
        "beta": {"type": float, "default": 0.01, "help": "weight of the KL term"},
        "error_floor": {"type": float, "default": None,
                        "help": "weigh each dim's error by 1 / (its mean benign validation "
                                "error + this), e.g. 0.01 (default: the plain sum)"},
    }

    foreign_width_ = False

    @classmethod
    def featurizer_class(cls) -> type[Layer1Featurizer]:
        return Layer1Featurizer

    @property
    def spec(self) -> FeatureSpec | None:
        """The featurizer's spec; None after fitting on vectors of another width without one
        (no layer-1 layout describes them)."""
        return None if self.foreign_width_ else self.data_spec

    def feature_names(self, units: Any) -> list[str] | None:
        """The layout's dim names (`training.features.layer1_names`)."""
        return dim_names(getattr(units, "spec", None))

    def assumed_spec(self, units: Any) -> FeatureSpec | None:
        """The data-free default layout, for vectors of its width."""
        width = np.shape(self.unit_features(units))[-1]
        return Layer1Featurizer().spec if width == DIM else None

    def record_features(self, record: Any) -> np.ndarray | None:
        """The scalar form of the layer-1 transform (`training.features.layer1_record`)."""
        if type(self.featurizer) is not Layer1Featurizer:
            return None  # a subclass may featurize otherwise
        return featurize_record(self.featurizer, record)

    def fit_scaling(self, train: Any) -> None:
        self.foreign_width_ = train.spec is None and np.shape(train.features)[-1] != DIM
        if train.spec is None and not self.foreign_width_:
            logger.warning("the training vectors carry no FeatureSpec: taken as the data-free "
                           "default layer-1 layout %s", self.data_spec.version)

    def default_detector(self, units: Any, **model_args: Any) -> Layer1VAE:
        return Layer1VAE(input_dim=int(np.shape(units.features)[-1]), **model_args)

    def default_config(self, **changes: Any) -> TrainingConfig:
        return TrainingConfig(model_name=self.model_name, layer_name=self.name,
                              seed=42).replace(**changes)

    def search_space(self, trial: Any) -> dict[str, Any]:
        return {
            "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True),
            "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64, 128]),
            "hidden_dim": trial.suggest_categorical("hidden_dim", [64, 96, 128, 256]),
            "latent_dim": trial.suggest_categorical("latent_dim", [32, 64, 128]),
            "dropout": trial.suggest_float("dropout", 0.1, 0.5),
            # Around the default: at 1 and above the code collapses (BENCHMARKS.md, issue 21).
            "beta": trial.suggest_float("beta", 1e-3, 1.0, log=True),
        }

    def explain(self, model: Any, units: Any, rows: np.ndarray,
                events: Any = None) -> list[list[Any]]:
        """Per-field reconstruction error terms (`training.layers.layer1_reasons`)."""
        from training.layers.layer1_reasons import explain_vectors

        rows = np.asarray(rows, np.int64)
        chosen = None if events is None else events.take(rows)
        return explain_vectors(model, np.asarray(units.features)[rows], chosen,
                               robust=bool(getattr(self.featurizer, "robust", False)),
                               layout=self.data_spec.version,  # unfitted l1.v4 is l1.v3
                               label_fields=self.featurizer.label_fields,
                               numbers_in_text=getattr(self.featurizer, "numbers_in_text",
                                                       False),
                               behaviour_only=getattr(self.featurizer, "behaviour_only_extras",
                                                      False))

    def validation_loss(self, metrics: dict[str, float]) -> float:
        # The VAE's reconstruction term, which is what it scores by. Its training loss weighs
        # KL by each model's beta, so it cannot compare two models; the full negative ELBO
        # (beta = 1) can, but rewards the collapsed code that scores poorly (issue 21). A
        # classical detector has no such term: its own loss (its mean score) is the one.
        return metrics["val_recon"] if "val_recon" in metrics else metrics["val_loss"]
