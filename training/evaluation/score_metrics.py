"""The scores-level evaluation every layer uses: scores (or class probabilities) and labels in,
`EvaluationMetrics` out. No model is involved; `training.evaluation.evaluator.ModelEvaluator` produces the
scores and calls these.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix

from training.errors import ConfigError, SchemaError
from training.evaluation import metrics as M
from training.evaluation.result import EvaluationMetrics, ScoreData
from training.evaluation.thresholds import Threshold

NO_THRESHOLD = (
    "No threshold, so the figures at a threshold (accuracy, precision, recall, F1, confusion "
    "matrix, alerts per day) are left out; the rest does not need one. A threshold comes from "
    "validation data, never from the test set: the checkpoint sidecar's anomaly_threshold, "
    "calibrated at training time (load the model with training.artifacts.model_files.load_model(path) and "
    "pass that), or training.evaluation.thresholds.calibrate_threshold on validation scores (99th "
    "percentile of benign scores, or best F1 with 5 validation units of each class; "
    "ModelEvaluator does this when given val_features and val_labels)."
)


def _fpr_key(fpr: float) -> str:
    return f"{fpr:g}"


def _check_rows(name: str, values: np.ndarray | None, n: int) -> np.ndarray | None:
    if values is None:
        return None
    values = np.asarray(values).reshape(-1)
    if len(values) != n:
        raise SchemaError(f"{name} has {len(values)} entries for {n} scores")
    return values


def _operating_figures(m: EvaluationMetrics, scores: np.ndarray, labels: np.ndarray,
                       alert: np.ndarray | None, attack_types: np.ndarray | None,
                       timestamps: np.ndarray | None, fpr_targets: Sequence[float]) -> None:
    """Detection at fixed FPRs, alerts per day and per-attack-type detection, into `m`.

    Args:
        scores: threat scores of every row, shape (n,); labels: -1/0/1, shape (n,).
        alert: the alerts at the model's decision rule for every row, or None.
    """
    known = M.known_scores(scores, labels)
    alert_sets: dict[str, np.ndarray] = {}
    if alert is not None:
        alert_sets["threshold"] = alert[known.keep]
    for i, target in enumerate(fpr_targets):
        point = M.detection_at_fpr(known.scores, known.is_threat, target)
        m.detection_at_fpr[_fpr_key(target)] = point
        if known.n_benign and target * known.n_benign < 1:
            m.notes.append(f"{known.n_benign} benign rows: at FPR {target:g} no false positive is "
                           "allowed, so that detection rate is the one at zero false positives.")
        if i == 0 and point["detection_rate"] is not None:
            cut = point["threshold"]
            alert_sets[f"fpr_{_fpr_key(target)}"] = (
                known.scores >= cut if cut is not None else np.zeros(len(known.scores), bool))
    if alert is not None and timestamps is not None:
        m.alerts = M.alerts_per_day(alert, labels == 0, timestamps)
        if m.alerts is not None and not len(known.scores):
            m.alerts["false_alerts_per_day"] = None  # no label says which alerts are false
        if m.alerts is None:
            m.notes.append("Alerts per day: fewer than two distinct timestamps are known.")
    if attack_types is not None and known.n_threat:
        m.per_attack_type = M.per_attack_type(alert_sets, known.is_threat,
                                              np.asarray(attack_types)[known.keep])


def evaluate_scores(scores: np.ndarray, labels: np.ndarray, attack_types: np.ndarray | None = None,
                    timestamps: np.ndarray | None = None,
                    threshold: float | Threshold | None = None, *,
                    threshold_source: str | None = None,
                    fpr_targets: Sequence[float] = M.FPR_TARGETS,
                    unlabeled_ok: bool = False) -> EvaluationMetrics:
    """Evaluate anomaly scores (higher = more anomalous) against is_threat labels.

    Args:
        scores: one per unit (event, edge, window), shape (n,).
        labels: is_threat per unit (-1 unknown, left out and counted; 0 benign; 1 threat).
        attack_types: detailed label per unit, for per-attack-type detection rates.
        timestamps: datetime64 per unit, for alerts per day.
        threshold: the alert threshold calibrated on validation data (a unit alerts when its
            score is >= it), or None for the threshold-free figures only.
        threshold_source: where the threshold came from, for the report (default "argument",
            or the method of a `Threshold`).
        fpr_targets: false-positive rates for `detection_at_fpr`.
        unlabeled_ok: with no known label, report what needs none (units, alerts at the
            threshold, alerts per day, the score distribution) instead of raising.

    Every unit counts in `n_units`, `n_alerts` and `alert_rate` (unknown labels included:
    they alert in production too).

    Raises:
        SchemaError: mismatched lengths, bad labels, non-finite scores, no known label
            (unless `unlabeled_ok`).
        ConfigError: a non-finite threshold or an FPR target outside (0, 1).
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    known = M.known_scores(scores, labels)
    if not len(known.scores) and not unlabeled_ok:
        raise SchemaError(f"no row with a known label (0 or 1) to evaluate; all {len(scores)} "
                          "rows are unknown (-1): for the label-free figures (alerts at the "
                          "threshold, the score distribution) call evaluate_scores or "
                          "training.evaluation.units.evaluate_units with unlabeled_ok=True")
    for target in fpr_targets:
        if not 0.0 < target < 1.0:
            raise ConfigError(f"fpr_targets must be in (0, 1), got {target}")
    if isinstance(threshold, Threshold):
        threshold_source = threshold_source or f"{threshold.method} ({threshold.n_scores} scores)"
        threshold = threshold.value
    if threshold is not None and not np.isfinite(threshold):
        raise ConfigError(f"threshold must be a finite number, got {threshold}")
    attack_types = _check_rows("attack_types", attack_types, len(scores))
    timestamps = _check_rows("timestamps", timestamps, len(scores))

    s, y = known.scores, known.is_threat
    m = EvaluationMetrics(model_kind="anomaly", n_samples=len(s),
                          n_unknown_excluded=known.n_unknown, n_units=len(scores))
    m.roc_auc, m.pr_auc = M.roc_auc(s, y), M.pr_auc(s, y)
    m.per_class_metrics = {
        "benign": {"support": known.n_benign, "roc_auc": m.roc_auc, "pr_auc": M.pr_auc(-s, ~y)},
        "threat": {"support": known.n_threat, "roc_auc": m.roc_auc, "pr_auc": m.pr_auc},
    }
    if not len(s):
        m.notes.append(f"No test unit has a benign or threat label (all {len(scores):,} are "
                       "unknown): the figures shown need none (units, alerts at the threshold, "
                       "the score distribution); ROC-AUC, PR-AUC, detection rates and the "
                       "confusion matrix need labeled test units.")
    elif not known.has_both:
        only, other = ("benign", "threat") if known.n_benign else ("threat", "benign")
        undefined = "ROC-AUC, PR-AUC and detection rates" if threshold is None else (
            f"ROC-AUC, PR-AUC, detection rates and the {other} class's precision, recall and "
            "F1" + (", and the threat class's precision and F1 (with no benign unit no alert "
                    "can be false)" if only == "threat" else ""))
        m.notes.append(f"The test part has one class: {known.n_benign} benign and "
                       f"{known.n_threat} threat units (only {only}), so {undefined} are not "
                       "defined; the rest is shown.")
    alert = None
    if threshold is None:
        m.notes.append(NO_THRESHOLD)
    else:
        m.threshold, m.threshold_source = float(threshold), threshold_source or "argument"
        alert = scores >= m.threshold
        m.n_alerts = int(alert.sum())
        m.alert_rate = m.n_alerts / len(scores) if len(scores) else None
    if threshold is not None and len(s):
        matrix = M.confusion(s, y, m.threshold)
        m.confusion_matrix = matrix.tolist()
        per_class = M.class_report(matrix)
        for index, name in enumerate(("benign", "threat")):
            m.per_class_metrics[name].update(
                {k: v for k, v in per_class[str(index)].items() if k != "support"})
        threat = m.per_class_metrics["threat"]
        m.accuracy = M.accuracy(matrix)
        if not known.n_benign:  # every alert a true one: a precision of 1 would say nothing
            threat["precision"] = threat["f1_score"] = None
        m.precision, m.recall, m.f1_score = threat["precision"], threat["recall"], threat["f1_score"]
    _operating_figures(m, scores, labels, alert, attack_types, timestamps, fpr_targets)
    m.data = ScoreData(scores, labels, attack_types=attack_types)
    return m


def evaluate_probabilities(probabilities: np.ndarray, labels: np.ndarray,
                           class_names: Sequence[str] | None = None,
                           attack_types: np.ndarray | None = None,
                           timestamps: np.ndarray | None = None, *,
                           fpr_targets: Sequence[float] = M.FPR_TARGETS) -> EvaluationMetrics:
    """Evaluate a classifier's class probabilities against class-index labels.

    The prediction is the most probable class; with two classes it is class 1 (threat) when
    its probability is >= 0.5, and the threat probability also gets the anomaly figures
    (detection at fixed FPRs, alerts per day, per-attack-type detection). Top-level precision,
    recall, F1, ROC-AUC and PR-AUC are macro averages over the classes (one-vs-rest AUCs).

    Args:
        probabilities: shape (n, n_classes), rows summing to 1.
        labels: class index per row, or -1 (unknown: left out and counted).
        class_names: one per class (default benign/threat for two classes, else class_<i>).
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] < 2:
        raise SchemaError("probabilities must have shape (n, n_classes >= 2), got "
                          f"{probabilities.shape}")
    n, n_classes = probabilities.shape
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != n:
        raise SchemaError(f"labels has {len(labels)} entries for {n} rows of probabilities")
    if not np.isin(labels, np.arange(-1, n_classes)).all():
        raise SchemaError(f"labels must be class indices 0..{n_classes - 1} or -1 (unknown), "
                          f"found {sorted(set(labels.tolist()) - set(range(-1, n_classes)))[:5]}")
    if not np.isfinite(probabilities).all():
        raise SchemaError("probabilities hold NaN or inf values")
    names = list(class_names) if class_names is not None else (
        ["benign", "threat"] if n_classes == 2 else [f"class_{i}" for i in range(n_classes)])
    if len(names) != n_classes:
        raise ConfigError(f"class_names has {len(names)} names for {n_classes} classes")
    keep = labels >= 0
    if not keep.any():
        raise SchemaError(f"no row with a known label to evaluate; all {n} rows are -1")
    p, y = probabilities[keep], labels[keep]
    predicted = (p[:, 1] >= 0.5).astype(int) if n_classes == 2 else p.argmax(axis=1)
    matrix = confusion_matrix(y, predicted, labels=np.arange(n_classes))
    per_class = M.class_report(matrix)
    aucs = M.class_probability_metrics(p, y)
    m = EvaluationMetrics(model_kind="classifier", class_names=names, n_samples=int(keep.sum()),
                          n_unknown_excluded=int((~keep).sum()), confusion_matrix=matrix.tolist(),
                          accuracy=M.accuracy(matrix))
    m.per_class_metrics = {names[c]: {**per_class[str(c)], **aucs[str(c)]} for c in range(n_classes)}
    rows = list(m.per_class_metrics.values())
    # Macro averages over the classes where each is defined (a class without rows has none).
    for key in ("precision", "recall", "f1_score", "roc_auc", "pr_auc"):
        defined = [r[key] for r in rows if r[key] is not None]
        setattr(m, key, float(np.mean(defined)) if defined else None)
    threat_scores = None
    if n_classes == 2:
        threat_scores = probabilities[:, 1]
        _operating_figures(m, threat_scores, labels, threat_scores >= 0.5,
                           _check_rows("attack_types", attack_types, n),
                           _check_rows("timestamps", timestamps, n), fpr_targets)
    m.data = ScoreData(threat_scores, labels, probabilities=probabilities,
                       attack_types=None if attack_types is None else np.asarray(attack_types))
    return m
