"""Layers whose detector needs each input feature standardized on the training units (layers 2
and 3): the model's FeatureSpec is the data spec plus the fitted standardizers
(`training.features.scaling`), and a layer rebuilt from either spec scores the same units alike.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from training.features.dropped_fields import featurizer_from_spec
from training.features.encoding import FeatureSpec
from training.features.scaling import FITTED_KEY, data_spec
from training.layers.base import Layer


class ScaledLayer(Layer):
    """A layer with fitted scaling (see the module docstring). Subclasses give
    `featurizer_class`, `units_class` and `fit_spec`."""

    def __init__(self, featurizer: Any = None) -> None:
        super().__init__(featurizer)
        self.spec_: FeatureSpec | None = None

    @classmethod
    @abstractmethod
    def units_class(cls) -> type:
        """The class of the units (`save(path)`, `load(path)`), imported on first use."""

    @abstractmethod
    def fit_spec(self, train: Any) -> FeatureSpec:
        """The model spec: the training units' spec with standardizers fitted on the units
        training learns from (see `Layer.fit`)."""

    @classmethod
    def from_spec(cls, spec: FeatureSpec) -> ScaledLayer:
        layer = cls(featurizer_from_spec(cls.featurizer_class(), data_spec(spec)))
        if FITTED_KEY in (spec.fitted or {}):
            layer.spec_ = spec
        return layer

    @property
    def spec(self) -> FeatureSpec:
        return self.spec_ if self.spec_ is not None else self.data_spec

    def featurize(self, events: Any) -> Any:
        return self.featurizer.featurize(events)

    def load_units(self, path: Any) -> Any:
        return self.units_class().load(path)

    def fit_scaling(self, train: Any) -> None:
        self.spec_ = self.fit_spec(train)
