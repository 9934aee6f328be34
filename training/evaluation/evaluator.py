"""Evaluating a model on test data (the original `ModelEvaluator` API).

`ModelEvaluator` scores the test rows with the model and hands the scores to the scores-level
evaluation every layer shares (`evaluate_scores`, `evaluate_probabilities`):

* an anomaly model (anything with `anomaly_score(batch) -> (n,)`, higher = more anomalous) is
  judged at an alert threshold that comes from validation data, never from the test set: the
  `threshold` argument, else one calibrated on `val_features`/`val_labels`, else the checkpoint
  sidecar's (when the model is a `LoadedModel` from `training.artifacts.model_files.load_model`); with
  none, the report gives the threshold-free metrics and says where a threshold comes from;
* a classifier (a model whose forward returns class logits or probabilities, shape
  (n, n_classes)) is judged at its most probable class, with macro and per-class metrics.

Reports: `print_report` (terminal), `save_report` (JSON, HTML with figures, text).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training.artifacts.atomic import atomic_write
from training.artifacts.model_files import LoadedModel
from training.detectors.base import model_device
from training.errors import ConfigError, SchemaError
from training.evaluation.latency import BATCH_SIZES, measure_latency
from training.evaluation.report_html import render_html
from training.evaluation.report_text import format_report
from training.evaluation.result import EvaluationMetrics, ScoreData
from training.evaluation.score_metrics import evaluate_probabilities, evaluate_scores
from training.evaluation.thresholds import Threshold, calibrate_threshold
from training.evaluation.training_span import DataSpan, note_overlap

__all__ = ["EvaluationMetrics", "ModelEvaluator", "ScoreData", "evaluate_probabilities",
           "evaluate_scores"]

logger = logging.getLogger(__name__)


def _rows(name: str, values: Any, n: int | None = None, of: str = "test_features"
          ) -> np.ndarray | None:
    if values is None:
        return None
    given = type(values).__name__
    try:
        values = (values.detach().cpu().numpy() if isinstance(values, torch.Tensor)
                  else np.asarray(values))
    except (TypeError, ValueError):  # ragged: a layer's units (graphs) read as rows
        values = np.empty(())
    if values.ndim == 0 or (name.endswith("features") and values.dtype == object):
        raise ConfigError(
            f"{name} must be rows of numbers (layer 1: an (n, 128) array), got {given}; a "
            "layer's units (layer 2's graphs, layer 3's windows) are evaluated with "
            "training.evaluation.units.evaluate_units(layer, model, units, threshold)")
    if n is not None and len(values) != n:
        raise SchemaError(f"{name} has {len(values)} rows, {of} has {n}")
    return values


def _history(history: Any) -> list[dict[str, Any]]:
    """Per-epoch training figures as dicts (from dicts, dataclasses or objects with __dict__)."""
    import dataclasses

    rows = []
    for row in history or []:
        if dataclasses.is_dataclass(row):
            row = dataclasses.asdict(row)
        elif not isinstance(row, dict):
            row = dict(vars(row))
        flat: dict[str, Any] = {}
        for key, value in row.items():  # one level of nesting (e.g. val_metrics) is flattened
            items = value.items() if isinstance(value, dict) else [(key, value)]
            for name, item in items:
                if (isinstance(item, (int, float, str)) or item is None) and name not in flat:
                    flat[name] = item
        rows.append(flat)
    return rows


class ModelEvaluator:
    """Evaluate `model` on test rows.

    Args:
        model: an anomaly model (with `anomaly_score`), a classifier (forward -> (n, n_classes)),
            or a `LoadedModel` (its sidecar's threshold is used when no other is given).
        test_features: model inputs, shape (n, ...) (layer 1: (n, 128)).
        test_labels: is_threat per row (-1 unknown, 0, 1); for a classifier, the class index.
        class_names: a classifier's class names.
        threshold: an anomaly threshold calibrated on validation data (float or `Threshold`).
        val_features, val_labels: validation rows to calibrate the threshold on when none is
            given (`training.evaluation.thresholds.calibrate_threshold`, method "auto").
        attack_types: detailed label per test row, for per-attack-type detection.
        timestamps: datetime64 per test row, for alerts per day; with a `LoadedModel`, rows
            within the time span of the data it was trained and validated on (its sidecar's
            `data_span`) are counted in `training_overlap` and warned of.
        training_history: per-epoch figures (dicts or dataclasses) for the training curves.
        batch_size: rows scored per call.
    """

    def __init__(self, model: nn.Module | LoadedModel, test_features: Any, test_labels: Any,
                 class_names: Sequence[str] | None = None,
                 threshold: float | Threshold | None = None, val_features: Any = None,
                 val_labels: Any = None, attack_types: Any = None, timestamps: Any = None,
                 training_history: Any = None, batch_size: int = 8192) -> None:
        self.sidecar: dict[str, Any] | None = None
        if isinstance(model, LoadedModel):
            self.sidecar = model.sidecar
            model = model.model
        if not isinstance(model, nn.Module):
            raise ConfigError("model must be a torch nn.Module or a LoadedModel, got "
                              f"{type(model).__name__}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        # `trainer.model` after `LayerTrainer(model, loss_fn)`: judged as the user's module is.
        model = getattr(model, "trained_module", model)
        self.model = model
        self.test_features = _rows("test_features", test_features)
        n = len(self.test_features)
        self.test_labels = _rows("test_labels", test_labels, n).reshape(-1)
        self.class_names = list(class_names) if class_names is not None else None
        self.threshold = threshold
        if val_labels is not None and val_features is None:
            raise ConfigError("val_labels was given without val_features")
        self.val_features = _rows("val_features", val_features)
        self.val_labels = (None if val_labels is None else
                           _rows("val_labels", val_labels, len(self.val_features), "val_features"))
        self.attack_types = _rows("attack_types", attack_types, n)
        self.timestamps = _rows("timestamps", timestamps, n)
        self.training_history = _history(training_history if training_history is not None
                                         else (self.sidecar or {}).get("history"))
        self.batch_size = batch_size
        self.is_anomaly_model = callable(getattr(model, "anomaly_score", None))

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def _tensor(self, values: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(values, dtype=np.float32), device=self.device)

    @staticmethod
    def _threshold_source(where: str, how: dict[str, Any]) -> str:
        """"<where>: <the rule in words>" (as `evaluate_units` says it) when the threshold has
        one, else "<where> (best F1 of 450 validation scores)" or "(benign 0.99 quantile of
        ...)" (a sidecar written before rules were kept)."""
        if how.get("rule"):  # a calibration's n_scores counts its reference (benign) scores only
            return f"{where}: {how['rule']}"
        if how.get("method") == "best_f1":
            rule = "best F1"
        elif how.get("method") == "benign_quantile":
            rule = f"benign {how.get('quantile')} quantile"
        else:
            return where
        return f"{where} ({rule} of {how.get('n_scores')} validation scores)"

    def _score_fn(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return self.model.anomaly_score if self.is_anomaly_model else self.model

    def _outputs(self, features: np.ndarray) -> np.ndarray:
        """The model's scores (n,) or class outputs (n, n_classes), in batches, in eval mode."""
        fn = self._score_fn()
        with torch.inference_mode():  # one chunk at a time on the device
            parts = [fn(self._tensor(features[i:i + self.batch_size])).float().cpu()
                     for i in range(0, len(features), self.batch_size)]
        out = torch.cat(parts).numpy() if parts else np.zeros(0, np.float32)
        if self.is_anomaly_model and out.shape != (len(features),):
            raise SchemaError(f"{type(self.model).__name__}.anomaly_score returned shape "
                              f"{out.shape} for {len(features)} rows; it must return one score "
                              "per row")
        return out

    def _resolve_threshold(self) -> tuple[float | Threshold | None, str | None]:
        if self.threshold is not None:
            return self.threshold, "argument"
        if self.val_features is not None:
            found = calibrate_threshold(self._outputs(self.val_features), self.val_labels)
            return found, self._threshold_source("validation data", found.to_dict())
        if self.sidecar and self.sidecar.get("anomaly_threshold") is not None:
            how = self.sidecar.get("threshold")
            return (float(self.sidecar["anomaly_threshold"]),
                    self._threshold_source("checkpoint sidecar", how if isinstance(how, dict) else {}))
        return None, None

    def evaluate(self, compute_roc_auc: bool = True, compute_pr_auc: bool = True,
                 benchmark_latency: bool = True) -> EvaluationMetrics:
        """Score the test rows and compute every metric (see the module docstring)."""
        was_training = self.model.training
        self.model.eval()
        try:
            outputs = self._outputs(self.test_features)
            if self.is_anomaly_model:
                threshold, source = self._resolve_threshold()
                metrics = evaluate_scores(outputs, self.test_labels, self.attack_types,
                                          self.timestamps, threshold, threshold_source=source)
            else:
                metrics = evaluate_probabilities(_probabilities(outputs), self.test_labels,
                                                 self.class_names, self.attack_types, self.timestamps)
            if benchmark_latency and len(self.test_features):
                self._benchmark(metrics)
        finally:
            self.model.train(was_training)
        metrics.model_name = type(self.model).__name__
        metrics.training_history = self.training_history
        if self.sidecar is not None and self.timestamps is not None:  # rows of its own data?
            note_overlap(metrics, DataSpan.from_dict(self.sidecar.get("data_span")),
                         self.timestamps.astype("datetime64[us]"),
                         self.sidecar.get("model_name") or metrics.model_name, "row")
        for flag, key in ((compute_roc_auc, "roc_auc"), (compute_pr_auc, "pr_auc")):
            if not flag:
                setattr(metrics, key, None)
                for row in metrics.per_class_metrics.values():
                    row[key] = None
        return metrics

    def _benchmark(self, metrics: EvaluationMetrics, batch_sizes: Sequence[int] = BATCH_SIZES) -> None:
        x = self._tensor(self.test_features[:4096])
        # A quick measurement (about a second; benchmarks/bench_scoring_latency.py takes
        # longer), on one torch thread: the fastest for one event, and robust on a busy host
        # where more threads than free cores stall each other.
        metrics.latency = measure_latency(self._score_fn(), x, batch_sizes=batch_sizes,
                                          single_calls=300, warmup=30, min_seconds=0.1,
                                          num_threads=1)
        metrics.avg_inference_time_ms = metrics.latency["single_event_us"]["mean"] / 1e3
        metrics.throughput_samples_per_sec = metrics.latency["best_events_per_sec"]

    def print_report(self, metrics: EvaluationMetrics) -> None:
        """Print the terminal report (the one place this module prints: that is its purpose)."""
        print(format_report(metrics), end="")

    def save_report(self, metrics: EvaluationMetrics, path: str | Path,
                    title: str = "Evaluation report") -> dict[str, Path]:
        """Write `<path>.json`, `<path>.html` and `<path>.txt` (a suffix on `path` is dropped).

        Returns:
            {"json": ..., "html": ..., "text": ...}.
        """
        return save_report(metrics, path, title)


def _probabilities(outputs: np.ndarray) -> np.ndarray:
    """Class probabilities from a classifier's outputs: used as they are when every row is a
    probability distribution, else taken as logits (softmax)."""
    if outputs.ndim != 2 or outputs.shape[1] < 2:
        raise SchemaError(f"a classifier must return (n, n_classes >= 2) outputs, got shape "
                          f"{outputs.shape}; an anomaly model needs an anomaly_score method")
    outputs = outputs.astype(np.float64)
    if (outputs >= 0).all() and (outputs <= 1).all() and np.allclose(outputs.sum(axis=1), 1, atol=1e-4):
        return outputs
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def save_report(metrics: EvaluationMetrics, path: str | Path,
                title: str = "Evaluation report") -> dict[str, Path]:
    """Write the JSON, HTML and text reports of `metrics` beside each other, atomically."""
    paths = report_paths(path)
    base = paths["json"].with_suffix("")
    contents = {"json": json.dumps(metrics.to_dict(), indent=2, allow_nan=False) + "\n",
                "html": render_html(metrics, title), "text": format_report(metrics)}
    for kind, target in paths.items():
        with atomic_write(target) as handle:
            handle.write(contents[kind].encode("utf-8"))
    logger.info("evaluation report written to %s.{json,html,txt}", base)
    return paths


def report_paths(path: str | Path) -> dict[str, Path]:
    """The files `save_report(metrics, path)` writes: {"json", "html", "text"} (a suffix of
    theirs on `path` is dropped)."""
    base = Path(path)
    if base.suffix in (".json", ".html", ".txt"):
        base = base.with_suffix("")
    return {"json": base.with_name(base.name + ".json"),
            "html": base.with_name(base.name + ".html"),
            "text": base.with_name(base.name + ".txt")}
