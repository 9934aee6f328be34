"""Turning events into model inputs for each layer (the original module name; the code lives in
`training.features` and `training.layers`)."""

from training.features.preprocessor import DataPreprocessor
from training.features.vectors import LayerArrays
from training.layers.samples import LayerType, PreprocessedSample

__all__ = ["DataPreprocessor", "LayerArrays", "LayerType", "PreprocessedSample"]
