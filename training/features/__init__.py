"""Featurizers: canonical events in, model inputs out (one module per layer)."""

from training.features.encoding import FeatureSpec
from training.features.layer1 import Layer1Featurizer

__all__ = ["FeatureSpec", "Layer1Featurizer"]
