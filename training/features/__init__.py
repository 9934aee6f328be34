"""Featurizers: canonical events in, model inputs out (one module per layer)."""

from training.features.encoding import FeatureSpec
from training.features.layer1 import Layer1Featurizer
from training.features.layer2 import Layer2GraphBuilder
from training.features.layer2_graphs import Layer2Graphs
from training.features.layer3 import Layer3WindowBuilder
from training.features.layer3_windows import Layer3Windows

__all__ = ["FeatureSpec", "Layer1Featurizer", "Layer2GraphBuilder", "Layer2Graphs",
           "Layer3WindowBuilder", "Layer3Windows"]
