"""The split files a retraining run reads: their one FeatureSpec, their validation, and the
production model's transform they must share.

    splits, spec = common_spec(layer, {"train": ..., "val": ..., "test": ...})
    problems = validate_splits(layer, splits)          # ERROR-level findings, in words
    require_model_transform(champion, spec, registry_dir)
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from training.datasets.validator import DataValidator
from training.errors import SchemaError
from training.features.encoding import FeatureSpec
from training.layers.base import Layer
from training.layers.registry import layer_for_spec
from training.registry.registry import RegisteredModel

logger = logging.getLogger(__name__)


def common_spec(layer: Layer, splits: dict[str, Any]) -> tuple[dict[str, Any], FeatureSpec]:
    """The splits (each with a spec) and their one FeatureSpec.

    Splits saved from bare arrays carry none; when all three lack it and the layer's default
    layout is data-free and fits them (layer 1's 128-dim vectors), that layout is assumed,
    with a warning saying so.

    Raises:
        SchemaError: some split lacks its spec and none can be assumed (the message says why
            and how to write splits that carry it), or the splits' specs differ.
    """
    specs = {name: s.spec for name, s in splits.items()}
    missing = [name for name, spec in specs.items() if spec is None]
    assumed = layer.assumed_spec(splits["train"]) if len(missing) == len(specs) else None
    if assumed is not None:
        logger.warning("the split files carry no FeatureSpec (they were saved from bare "
                       "arrays): taken as the data-free default %s layout %s, fingerprint "
                       "%s; save splits from the featurized file (DatasetBuilder.from_file) "
                       "to record it", layer.name, assumed.version, assumed.fingerprint[:12])
        splits = {name: replace(s, spec=assumed) for name, s in splits.items()}
        return splits, assumed
    if missing:
        raise SchemaError(
            f"the {', '.join(missing)} split file(s) carry no FeatureSpec: they were saved "
            "from bare arrays (e.g. DatasetBuilder(features=np.load(...)['features'], ...)), "
            "which do not say how the features were made"
            + ("" if len(missing) == len(specs) else ", while the other splits do")
            + f", and {layer.name} has no data-free layout to assume for them; build the "
            "splits with DatasetBuilder.from_file(<features>.npz) or `maximus-train split`, "
            "which keep the FeatureSpec")
    for name in ("val", "test"):
        specs["train"].require(specs[name], f"the {name} split")
    return splits, specs["train"]


def validate_splits(layer: Layer, splits: dict[str, Any]) -> list[str]:
    """ERROR-level findings of the data validator on each split's unit features."""
    problems = []
    for name, split in splits.items():
        result = DataValidator(layer.unit_features(split), layer.labels(split)).validate(
            check_outliers=False, check_distributions=name == "train")
        problems += [f"{name}: {issue.message}" for issue in result.issues
                     if issue.severity.value == "error"]
    return problems


def require_model_transform(champion: RegisteredModel, spec: FeatureSpec,
                            registry_dir: str | Path) -> None:
    """Raise unless the splits' transform `spec` is the one the production model `champion`
    featurizes with: the gate compares the two models on the same test units.

    Raises:
        SchemaError: another transform (the message names both and the commands that make
            splits with the model's: `preprocess --model`, then `split`), or a model whose
            transform cannot be rebuilt.
    """
    name, version = champion.metadata.model_name, champion.metadata.version
    model = layer_for_spec(champion.feature_spec, f"the production {name} {version}").data_spec
    if model.fingerprint == spec.fingerprint:
        return
    raise SchemaError(
        f"the production {name} {version} featurizes with another transform ({model.layer} "
        f"{model.version}, fingerprint {model.fingerprint[:12]}) than these splits were made "
        f"with ({spec.layer} {spec.version}, {spec.fingerprint[:12]}), so the two models "
        "cannot be compared on them; featurize the new events with the model's transform: "
        f"`maximus-train preprocess --source ... --model {name} --registry-dir {registry_dir}`"
        ", then `maximus-train split --data <its file>` and retrain on those splits (or, to "
        "move to the new transform, promote a model trained on it by hand)")
