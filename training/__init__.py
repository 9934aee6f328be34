"""MAXIMUS training pipeline: security telemetry in, trained and versioned detectors out.

The original package's top-level names (`from training import DataCollector`, ...) are here,
imported on first use, so `import training.errors` (or any one stage) stays as fast as that
module alone.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> the module that defines it (the original package's `training/__init__` re-exports).
_EXPORTS = {
    "DataCollector": "training.data_collection",
    "DataSource": "training.data_collection",
    "DataSourceType": "training.data_collection",
    "CollectedEvent": "training.data_collection",
    "DataPreprocessor": "training.data_preprocessor",
    "LayerPreprocessor": "training.data_preprocessor",
    "PreprocessedSample": "training.data_preprocessor",
    "LayerType": "training.data_preprocessor",
    "DatasetBuilder": "training.dataset_builder",
    "DatasetSplit": "training.dataset_builder",
    "SplitStrategy": "training.dataset_builder",
    "PyTorchDatasetWrapper": "training.dataset_builder",
    "DataValidator": "training.data_validator",
    "ValidationResult": "training.data_validator",
    "ValidationIssue": "training.data_validator",
    "ValidationSeverity": "training.data_validator",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'training' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
