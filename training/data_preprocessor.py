"""Turning events into model inputs for each layer (the original module name; the code lives in
`training.features` and `training.layers`; the original per-layer preprocessors in
`training.compat.layer_preprocessors`)."""

from training.compat.layer_preprocessors import (
    Layer1Preprocessor, Layer2Preprocessor, Layer3Preprocessor, LayerPreprocessor,
)
from training.features.preprocessor import DataPreprocessor
from training.features.vectors import LayerArrays
from training.layers.samples import LayerType, PreprocessedSample

__all__ = ["DataPreprocessor", "Layer1Preprocessor", "Layer2Preprocessor", "Layer3Preprocessor",
           "LayerArrays", "LayerPreprocessor", "LayerType", "PreprocessedSample"]
