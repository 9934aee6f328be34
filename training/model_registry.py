"""The model registry (the original module name; the code lives in `training.registry`)."""

from training.registry.history import Transition
from training.registry.metadata import ModelMetadata
from training.registry.registry import ModelRegistry, RegisteredModel

__all__ = ["ModelMetadata", "ModelRegistry", "RegisteredModel", "Transition"]
