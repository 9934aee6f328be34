"""Evaluating a model on any layer's units: scores, labels, attack types and times in, metrics out.

    metrics = evaluate_units(layer, model, test_units, threshold)

The layer scores its units (`Layer.score`) and says their labels, attack types and times; the
scores-level evaluation (`training.evaluation.score_metrics`) does the rest. Latency is measured
when the layer's batches are plain tensors (one row per unit), where "one event" means one row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import torch

from training.detectors.base import Detector
from training.evaluation.calibration import Calibration
from training.evaluation.latency import measure_latency
from training.evaluation.result import EvaluationMetrics
from training.evaluation.score_metrics import evaluate_scores
from training.evaluation.training_span import DataSpan, note_overlap
from training.layers.base import Layer


def evaluate_units(layer: Layer, model: Detector, units: Any, threshold: float | None, *,
                   threshold_source: str = "checkpoint sidecar", latency: bool = False,
                   calibration: Calibration | None = None, unlabeled_ok: bool = False,
                   circular: str | None = None, data_span: DataSpan | None = None,
                   trained_model: str | None = None, advice: str = "") -> EvaluationMetrics:
    """Every metric of `model` on `units` (see the module docstring).

    Args:
        calibration: the threshold's calibration (its rule and expected alert rate are
            reported); None for a model saved without one.
        unlabeled_ok: units without any known label give the label-free figures (units,
            alerts, score distribution) instead of an error.
        circular: why labeled figures would be circular, marked in the result and its notes.
        data_span: the time span of the data the model was trained and validated on
            (`LoadedModel.data_span`): units within it are counted (`training_overlap`), and
            warned of in the notes and the log, as `trained_model` (default: its class name);
            `advice` adds a way to evaluate later units to the warning. None: no check (the
            test part of its own run, or a model that records no span).
    """
    times = unit_times(layer, units)
    metrics = evaluate_scores(layer.score(model, units), layer.labels(units),
                              layer.attack_types(units), times, threshold,
                              threshold_source=threshold_source, unlabeled_ok=unlabeled_ok)
    metrics.model_name = type(model).__name__
    note_overlap(metrics, data_span, times, trained_model or metrics.model_name, layer.unit,
                 advice, layer.window_seconds)
    if calibration is not None:
        metrics.threshold_rule = calibration.rule
        metrics.expected_alert_rate = calibration.expected_alert_rate
        metrics.threshold_source = f"{threshold_source}: {calibration.rule}"
    if circular:
        metrics.circular = circular
        metrics.notes.insert(0, f"CIRCULAR: {circular}")
    if latency:
        batch = next(iter(layer.batches(units, 4096)), None)
        if isinstance(batch, torch.Tensor):
            # A quick measurement on one torch thread (benchmarks/bench_scoring_latency.py
            # takes longer): the fastest for one event, and robust on a busy host.
            metrics.latency = measure_latency(model.anomaly_score, batch, single_calls=300,
                                              warmup=30, min_seconds=0.1, num_threads=1)
            metrics.avg_inference_time_ms = metrics.latency["single_event_us"]["mean"] / 1e3
            metrics.throughput_samples_per_sec = metrics.latency["best_events_per_sec"]
    return metrics


def unit_times(layer: Layer, units: Any) -> np.ndarray:
    """Each unit's time as datetime64[us] (NaT where unknown)."""
    time = layer.unit_columns(units)["time"].cast(pa.int64())
    return time.to_numpy(zero_copy_only=False).astype("datetime64[us]")
