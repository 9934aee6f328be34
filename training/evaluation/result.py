"""`EvaluationMetrics`: everything one evaluation found, JSON-able through `to_dict`."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ScoreData:
    """The per-row outputs behind the metrics, kept for the report's figures (not in JSON).

    Attributes:
        scores: anomaly scores, shape (n,); for a classifier, the probability of the last class
            when it has two classes, else None.
        labels: the labels as given (-1 unknown included), shape (n,).
        probabilities: a classifier's class probabilities, shape (n, n_classes), else None.
        attack_types: str, shape (n,), or None.
    """

    scores: np.ndarray | None
    labels: np.ndarray
    probabilities: np.ndarray | None = None
    attack_types: np.ndarray | None = None


@dataclass
class EvaluationMetrics:
    """The results of one evaluation (names of the original API first).

    For an anomaly model, `accuracy`, `precision`, `recall`, `f1_score` and `confusion_matrix`
    are those of the threat class at the threshold (None without a threshold), and `roc_auc`,
    `pr_auc` those of the threat class; `per_class_metrics` has both classes. For a classifier
    they are macro averages over the classes (one-vs-rest AUCs), and `per_class_metrics` has
    each class. `confusion_matrix[i][j]` counts rows of true class i predicted as class j.

    Attributes (beyond the original ones):
        model_kind: "anomaly" or "classifier".
        model_name: the model's class name, when a model was evaluated.
        class_names: names of the confusion matrix's rows, in order.
        n_samples: rows with a known label (the ones measured).
        n_unknown_excluded: rows with label -1, left out of every metric.
        n_units: every row scored, labeled or not.
        threshold: the alert threshold (score >= threshold alerts), or None.
        threshold_source: where it came from ("argument", "checkpoint sidecar", "validation
            data (...)"); or, when None, where one would come from.
        threshold_rule: how the threshold was set, in words (from its calibration).
        n_alerts, alert_rate: rows (all of them) at or above the threshold, and their share.
        expected_alert_rate: the share of benign validation units above the threshold (from
            its calibration): what `alert_rate` would be on traffic like the validation part.
        circular: why the labeled figures are circular (the labels come from events that
            are also the model's input), or None.
        training_overlap: how many units lie within the time span of the data the model was
            trained and validated on, before and after it (`training.evaluation.training_span`),
            or None (no span recorded, or units without times).
        detection_at_fpr: {"0.01": {...}, "0.001": {...}}, see metrics.detection_at_fpr.
        alerts: alert volume per day at the threshold (metrics.alerts_per_day), or None.
        per_attack_type: detection per attack type (metrics.per_attack_type).
        latency: model-only latency and throughput (latency.measure_latency), or None.
        training_history: per-epoch training figures for the report's training curves.
        notes: what the reader should know (metrics left out and why).
        data: the per-row outputs for the figures; not part of `to_dict`.
    """

    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1_score: float | None = None
    roc_auc: float | None = None
    pr_auc: float | None = None
    confusion_matrix: list[list[int]] | None = None
    per_class_metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    avg_inference_time_ms: float | None = None
    throughput_samples_per_sec: float | None = None
    model_kind: str = "anomaly"
    model_name: str | None = None
    class_names: list[str] = field(default_factory=lambda: ["benign", "threat"])
    n_samples: int = 0
    n_unknown_excluded: int = 0
    n_units: int = 0
    threshold: float | None = None
    threshold_source: str | None = None
    threshold_rule: str | None = None
    n_alerts: int | None = None
    alert_rate: float | None = None
    expected_alert_rate: float | None = None
    circular: str | None = None
    training_overlap: dict[str, Any] | None = None
    detection_at_fpr: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts: dict[str, Any] | None = None
    per_attack_type: dict[str, dict[str, Any]] = field(default_factory=dict)
    latency: dict[str, Any] | None = None
    training_history: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: ScoreData | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Every field but `data`, as plain JSON types (NaN and inf become None)."""
        return {f.name: _plain(getattr(self, f.name))
                for f in dataclasses.fields(self) if f.name != "data"}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
