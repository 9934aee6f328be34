"""The deployment gate: champion and challenger measured on the same test split, then a floor
and a minimum relative improvement on one metric whose direction is known.

    metrics = evaluate_model(layer, model, threshold, test)   # the same test units for both
    decision = decide("pr_auc", challenger_metrics, champion_metrics, floor=0.85,
                      improvement=0.02)

Metrics of a model on a split (`evaluate_model`):

* `val_loss`: the model's validation loss (`validation_step`, eval mode) averaged over the
  test units (weighted as the trainer weighs them): the label-free comparison;
* with both benign and threat labels: the threat class's `pr_auc` and `roc_auc`, and at the
  model's stored threshold `precision`, `recall`, `f1_score`, `accuracy`
  (`training.evaluation.score_metrics.evaluate_scores`, unknown labels left out).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from training.detectors.base import Detector, to_device
from training.layers.base import Layer
from training.evaluation.score_metrics import evaluate_scores
from training.registry.metadata import metric_direction

LABELED_METRICS = ("pr_auc", "roc_auc", "precision", "recall", "f1_score", "accuracy")


def has_both_labels(labels: np.ndarray) -> bool:
    return bool((labels == 0).any() and (labels == 1).any())


def split_fingerprint(layer: Layer, units: Any) -> str:
    """sha256 of the units' FeatureSpec fingerprint, features, labels and unit names: two
    evaluations with the same fingerprint saw exactly the same units."""
    digest = hashlib.sha256()
    spec = getattr(units, "spec", None)
    digest.update((spec.fingerprint if spec is not None else "no spec").encode())
    names = layer.unit_columns(units)["unit"].to_numpy(zero_copy_only=False).astype(str)
    for array in (layer.unit_features(units), layer.labels(units), names):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@torch.inference_mode()
def evaluate_model(layer: Layer, model: Detector, threshold: float | None, units: Any
                   ) -> dict[str, float]:
    """The gate's metrics of `model` on `units` of `layer` (see the module docstring)."""
    model.eval()
    total = weight = 0.0
    for batch in layer.batches(units, layer.score_batch):
        batch = to_device(batch, next(model.parameters()).device)
        n = model.batch_size_of(batch)
        total += float(model.validation_step(batch)["loss"]) * n
        weight += n
    metrics = {"val_loss": total / max(weight, 1)}
    labels = layer.labels(units)
    if has_both_labels(labels):
        evaluated = evaluate_scores(layer.score(model, units), labels, threshold=threshold)
        metrics.update({name: float(getattr(evaluated, name)) for name in LABELED_METRICS
                        if getattr(evaluated, name) is not None})
    return metrics


@dataclass(frozen=True)
class Decision:
    """Whether the challenger may replace the champion, and why (JSON-able via `to_dict`)."""

    deploy: bool
    reason: str
    metric: str
    direction: str
    challenger: float | None
    champion: float | None
    floor: float | None
    relative_improvement: float | None
    required_improvement: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def relative_improvement(new: float, old: float, direction: str) -> float:
    """(new - old) / |old| for a "max" metric, (old - new) / |old| for a "min" one; positive
    means better (|old| is floored at 1e-12, so the result stays finite and JSON-able)."""
    gain = new - old if direction == "max" else old - new
    return gain / max(abs(old), 1e-12)


def decide(metric: str, challenger: dict[str, float], champion: dict[str, float] | None, *,
           floor: float | None, improvement: float) -> Decision:
    """Deploy when the challenger's `metric` passes `floor` (a minimum for "max" metrics, a
    maximum for "min" ones; None: no floor) and, if there is a champion, beats it by at least
    `improvement` (relative)."""
    direction = metric_direction(metric)
    new = challenger.get(metric)
    old = None if champion is None else champion.get(metric)

    def result(deploy: bool, reason: str, gain: float | None = None) -> Decision:
        return Decision(deploy, reason, metric, direction, new, old, floor, gain, improvement)

    if new is None:
        return result(False, f"the challenger has no {metric} on the test split")
    if floor is not None and (new < floor if direction == "max" else new > floor):
        side = "below the floor" if direction == "max" else "above the ceiling"
        return result(False, f"challenger {metric} {new:.4g} is {side} {floor:.4g}")
    if champion is None:
        return result(True, f"no production model; challenger {metric} {new:.4g} passes the floor")
    if old is None:
        return result(False, f"the champion has no {metric} on the test split to compare with")
    gain = relative_improvement(new, old, direction)
    verdict = (f"challenger {metric} {new:.4g} vs champion {old:.4g}: "
               f"{gain:+.2%} ({'higher' if direction == 'max' else 'lower'} is better; "
               f"at least {improvement:+.2%} needed)")
    return result(gain >= improvement, verdict, gain)
