"""`retrain`'s decision: champion and challenger measured on the same test split, judged by
the rule the split's labels allow, then the rule every gate shares.

    decision, measured = retrain_decision(layer, test, challenger, champion, config)

`config.comparison_metric` "auto" is `pr_auc` when the test split has at least
`gate.MIN_CLASS_UNITS` (5) benign and threat units each, else `val_loss` (the reason names the
counts): with labels the floors and the paired bootstrap of `gate.labeled_decision`, without
them the alert rate within the calibration's promise and a lower validation loss
(`unlabeled_gate.unlabeled_decision`); another metric goes through `gate.decide`. Whatever the
rule, a challenger whose threshold rests on too few validation units is not deployed
(`gate.thin_calibration`, as in the pipeline's promotion).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from training.layers.base import Layer
from training.layers.registry import layer_for_spec
from training.registry.registry import RegisteredModel
from training.retraining import gate
from training.retraining.unlabeled_gate import unlabeled_decision, window_figures

if TYPE_CHECKING:
    from training.retraining.continuous import RetrainingConfig

__all__ = ["LARGER_VALIDATION", "retrain_decision", "with_test_loss"]

# How a retrain's user gets a larger validation part: the splits are `split`'s.
LARGER_VALIDATION = "a larger validation split (split --val-ratio)"
# retrain featurizes as the champion was trained: its window length is the model's
SHORTER_WINDOWS = ("a model of windows shorter than {seconds:g} s (retrain keeps the model's; "
                   "train one with pipeline {flag})")


def retrain_decision(layer: Layer, test: Any, challenger: Any,
                     champion: RegisteredModel | None, config: RetrainingConfig
                     ) -> tuple[dict[str, Any], dict[str, float]]:
    """The decision on `challenger` (a loaded model) against `champion` on the `test` units (a
    dict with deploy, rule, reason, the test split's fingerprint and row count and the
    champion's figures there), and the challenger's figures there."""
    metric, labels = config.comparison_metric, layer.labels(test)
    if metric == "auto":  # too few labels count as none
        metric = "pr_auc" if gate.has_both_labels(labels) else "val_loss"
    new_scores = layer_for_spec(challenger.feature_spec).score(challenger.model, test)
    new = gate.evaluate_model(layer, challenger.model, challenger.threshold, test, new_scores)
    old_scores = old = None
    if champion is not None:
        old_scores = layer_for_spec(champion.feature_spec).score(champion.model, test)
        old = gate.evaluate_model(layer, champion.model, champion.threshold, test, old_scores)
    if metric in gate.BOOTSTRAP_METRICS:  # it refuses to judge on too few labels
        decision = gate.labeled_decision(
            metric, labels, new_scores, old_scores,
            improvement=config.improvement_threshold, floor=config.floor(metric),
            thresholds=None if champion is None else (challenger.threshold,
                                                      champion.threshold))
    elif metric == "val_loss":  # no labels to judge by: the unlabeled rule
        decision = _without_labels(labels, unlabeled_decision(
            window_figures(layer, challenger, test, new_scores),
            None if champion is None else window_figures(layer, champion, test, old_scores),
            improvement=config.improvement_threshold,
            ceiling=config.floor(metric), factor=config.alert_rate_factor))
        # The losses it compared (every unit counted: nobody knows which are attacks) are
        # the ones recorded; the labeled loss counts benign-labeled units, maybe none.
        new["val_loss"] = decision.challenger
        if old is not None:
            old["val_loss"] = decision.champion
    else:
        decision = gate.decide(metric, new, old, floor=config.floor(metric),
                               improvement=config.improvement_threshold)
    # The challenger's own layer: its window length is the one its spec was made with.
    judged = gate.thin_calibration(layer_for_spec(challenger.feature_spec), challenger,
                                   decision.to_dict(), larger_validation=LARGER_VALIDATION,
                                   shorter_windows=SHORTER_WINDOWS)
    return {**judged, "test_fingerprint": gate.split_fingerprint(layer, test),
            "test_rows": len(labels), "champion_metrics": with_test_loss(old)}, new


def with_test_loss(metrics: dict[str, float] | None) -> dict[str, float] | None:
    """The gate's figures of a model on the test split with its loss there named `test_loss`:
    `val_loss` in the registry is the kept epoch's validation loss, which registration takes
    from the model's sidecar, so that `registry compare` ranks every version on the same
    kind of loss, however it was registered."""
    if metrics is None:
        return None
    named = {name: value for name, value in metrics.items() if name != "val_loss"}
    if "val_loss" in metrics:
        named["test_loss"] = metrics["val_loss"]
    return named


def _without_labels(labels: np.ndarray, decision: gate.Decision) -> gate.Decision:
    """The unlabeled rule's decision, saying why the test labels there were not used."""
    shortfall = gate.label_shortfall(labels)
    if shortfall is None or not (labels >= 0).any():  # labels enough, or none to speak of
        return decision
    return replace(decision, reason=f"{decision.reason} ({shortfall}, so judged without them)",
                   figures={**decision.figures, "label_shortfall": shortfall})
