"""Which registered versions a loss can rank.

A model's validation loss is its own training objective: a VAE's weighs the KL term by its
`beta`, a fitted detector's is its mean anomaly score. Two versions whose detector classes
differ, or whose loss-defining settings (`Detector.loss_args`) differ, report losses on
different scales, and the lower one is not the better model. `compare_models` checks this
before it names a best on a loss, and refuses otherwise, saying which metrics measure every
version alike.
"""

from __future__ import annotations

import json
from typing import Any

from training.errors import ConfigError
from training.registry.metadata import HIGHER_IS_BETTER

UNKNOWN = "unknown (registered without a sidecar)"


def is_loss(metric: str) -> bool:
    """A metric that is some model's own loss (`val_loss`, `test_loss`, ...)."""
    return metric == "loss" or metric.endswith("_loss")


def loss_recipe(sidecar: dict[str, Any] | None) -> str:
    """What a version's loss measures, in words: its detector class and the values of the
    class's `loss_args` ("Layer1VAE (beta=0.01, reconstruction='mse')"); UNKNOWN without a
    sidecar."""
    from training.detectors.base import detector_class

    if sidecar is None:
        return UNKNOWN
    name, init_args = sidecar["model_class"], sidecar.get("init_args") or {}
    try:
        names = detector_class(name).loss_args
    except ConfigError:  # a class this release does not know: all its arguments count
        names = tuple(sorted(init_args))
    settings = ", ".join(f"{k}={json.dumps(init_args[k], sort_keys=True)}"
                         for k in names if k in init_args)
    return f"{name} ({settings})" if settings else name


def check_comparable(model_name: str, metric: str, recipes: dict[str, str],
                     metrics: dict[str, dict[str, float]]) -> None:
    """Raise unless every version in `recipes` (version -> `loss_recipe`, for the versions that
    recorded the loss `metric`) measures its loss alike.

    Args:
        metrics: version -> its recorded metrics (every version asked about), to name the
            metrics the message suggests instead.

    Raises:
        ConfigError: two recipes differ; the message lists the versions of each and the
            metrics to compare on instead.
    """
    kinds: dict[str, list[str]] = {}
    for version, recipe in recipes.items():
        kinds.setdefault(recipe, []).append(version)
    if len(kinds) < 2:
        return
    groups = "; ".join(f"{', '.join(versions)}: {recipe}" for recipe, versions in kinds.items())
    shared = set.intersection(*(set(m) for m in metrics.values())) if metrics else set()
    instead = sorted(m for m in shared if m in HIGHER_IS_BETTER or m.endswith("_auc"))
    if instead:
        hint = f"compare on a metric every one of them records alike: {', '.join(instead)}"
    else:
        hint = ("they record no labeled metric in common (pr_auc, roc_auc: a pipeline run or "
                "retrain on labeled test data records them)")
    largest = max(kinds.values(), key=len)
    raise ConfigError(
        f"{metric} cannot rank these versions of {model_name}: a loss is the model's own "
        f"training objective, on one scale only between versions of one detector class with "
        f"the same loss settings, and these differ ({groups}); {hint}, or compare the "
        f"versions of one kind (e.g. versions {' '.join(largest)})")
