"""Which registered versions a metric can rank.

A model's validation loss is its own training objective: a VAE's weighs the KL term by its
`beta`, a fitted detector's is its mean anomaly score. Two versions whose detector classes
differ, or whose loss-defining settings (`Detector.loss_args`) differ, report losses on
different scales, and the lower one is not the better model. `compare_models` checks this
before it names a best on a loss, and refuses otherwise, saying which metrics measure every
version alike.

A metric is measured on one of a version's splits (PR-AUC, ROC-AUC, `test_loss` on its test
split, `val_loss` on its validation split: `measured_on`), whose fingerprint the registry
records (`dataset_fingerprints`). Figures of two versions on two data sets do not rank them (a
model trained on one capture and tested on it may score higher than a better one tested on a
harder capture): `check_same_data` refuses, naming the data each was measured on and how to
measure them on the same data.
"""

from __future__ import annotations

import json
from typing import Any

from training.errors import ConfigError
from training.registry.metadata import HIGHER_IS_BETTER

UNKNOWN = "unknown (registered without a sidecar)"

# The split each metric is measured on, where it is not the test split: the kept epoch's
# validation loss on the validation split, the training loss on the training split; speed
# (None) no data decides.
MEASURED_ON = {"val_loss": "val", "best_val_loss": "val", "train_loss": "train",
               "avg_inference_time_ms": None, "throughput_samples_per_sec": None}
_SPLIT_NAMES = {"test": "test", "val": "validation", "train": "training"}


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


def measured_on(metric: str) -> str | None:
    """The split `metric` is measured on ("test", "val", "train"), as `dataset_fingerprints`
    names it; None for a metric no data decides (speed)."""
    return MEASURED_ON.get(metric, "test")


def check_same_data(model_name: str, metric: str, split: str, values: dict[str, float],
                    fingerprints: dict[str, str | None], registry_dir: str) -> None:
    """Raise unless every version in `values` (version -> its `metric`) that recorded the
    fingerprint of its `split` (`fingerprints`: version -> it; None when not recorded, as by
    `registry register --metrics`) was measured on the same data.

    Raises:
        ConfigError: two recorded fingerprints differ; the message names the data of each
            version with its value, and how to measure them on the same data.
    """
    groups: dict[str, list[str]] = {}
    for version in values:
        groups.setdefault(fingerprints.get(version) or "", []).append(version)
    if len([data for data in groups if data]) < 2:
        return
    name = f"{_SPLIT_NAMES.get(split, split)} data"
    listed = "; ".join(
        (f"{name} {data[:12]}" if data else f"{name} not recorded") + ": "
        + ", ".join(f"{v} {values[v]:.4g}" for v in versions)
        for data, versions in groups.items())
    gate = (" (a version `retrain` registered also keeps its gate's figures of the production "
            "model it challenged, on its own test data: registry show --json, "
            "details.decision.champion_metrics)") if split == "test" else ""
    largest = max((versions for data, versions in groups.items() if data), key=len)
    alike = (f", or compare only versions measured on the same {name} (e.g. versions "
             f"{' '.join(largest)})" if len(largest) > 1 else "")
    raise ConfigError(
        f"{metric} cannot rank these versions of {model_name}: they were measured on different "
        f"{name} ({listed}), and a figure on one data set says nothing of a model on another; "
        f"measure each version on one test split: maximus-train evaluate --registry-dir "
        f"{registry_dir} --model {model_name} --version V --data TEST.npz{gate}{alike}")
