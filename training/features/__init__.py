"""Featurizers: canonical events in, model inputs out (one module per layer).

Layers 2 and 3 are imported on first use: they need torch-geometric, whose import costs seconds
that layer-1 work (and every command that only loads a layer-1 model) should not pay.
"""

from importlib import import_module

from training.features.encoding import FeatureSpec
from training.features.layer1 import Layer1Featurizer

_LAZY = {"Layer2GraphBuilder": "layer2", "Layer2Graphs": "layer2_graphs",
         "Layer3WindowBuilder": "layer3", "Layer3Windows": "layer3_windows"}

__all__ = ["FeatureSpec", "Layer1Featurizer", *_LAZY]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(import_module(f"training.features.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'training.features' has no attribute {name!r}")
