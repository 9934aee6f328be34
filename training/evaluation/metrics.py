"""Detection metrics on (scores, labels): pure functions of numpy arrays.

Conventions, the same for every layer (DESIGN.md principle 5):

* A score is higher for more anomalous units; a unit alerts when `score >= threshold`
  (the rule of `training.evaluation.thresholds`).
* Labels are is_threat: 1 threat, 0 benign, -1 unknown. Unknown rows are left out of every
  metric and counted (`KnownScores.n_unknown`), never treated as benign.
* ROC-AUC is the probability that a random threat outscores a random benign unit, a tie
  counting one half (the trapezoidal area under the ROC curve, as sklearn computes it).
* PR-AUC is average precision, `sum_k (R_k - R_{k-1}) P_k` over the distinct score values from
  the highest down (sklearn's step-wise definition, no interpolation). For the benign class the
  scores are negated: lower scores are "more benign".
* Detection rate at a false-positive rate `f` (`detection_at_fpr`): the fraction of threats
  flagged by the lowest threshold, taken among the distinct scores, that flags at most
  `floor(f * n_benign)` benign units. Tied scores are never split: a threshold flags every unit
  at its value or flags none of them, so the false-positive rate achieved is at most `f`, and a
  threat tied with a benign unit counts as caught only when that benign unit may also alert.
  With fewer than `1 / f` benign units the only admissible operating point has zero false
  positives. No interpolation between ROC points (that would assume a coin flip on ties).
* Precision with no alerts, and recall of a class with no rows, are 0 (sklearn's
  `zero_division=0`); AUCs of a test set with one class only are None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from training.errors import SchemaError

FPR_TARGETS = (0.01, 0.001)


@dataclass(frozen=True)
class KnownScores:
    """Scores of the rows with a known label, and how many rows were left out.

    Attributes:
        scores: float64, shape (n_known,).
        is_threat: bool, shape (n_known,).
        keep: bool mask over the original rows (True for the rows kept), shape (n,).
        n_unknown: rows with label -1, left out.
    """

    scores: np.ndarray
    is_threat: np.ndarray
    keep: np.ndarray
    n_unknown: int

    @property
    def n_threat(self) -> int:
        return int(self.is_threat.sum())

    @property
    def n_benign(self) -> int:
        return int(len(self.is_threat) - self.is_threat.sum())

    @property
    def has_both(self) -> bool:
        return self.n_threat > 0 and self.n_benign > 0


def known_scores(scores: np.ndarray, labels: np.ndarray) -> KnownScores:
    """Check `scores` and `labels` and keep the rows with a known label.

    Raises:
        SchemaError: different lengths, labels other than -1/0/1, or a non-finite score
            (a model that returns NaN or inf is broken; dropping those rows would hide it).
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if len(scores) != len(labels):
        raise SchemaError(f"labels has {len(labels)} entries for {len(scores)} scores")
    bad_label = ~np.isin(labels, (-1, 0, 1))
    if bad_label.any():
        at = int(np.flatnonzero(bad_label)[0])
        raise SchemaError(f"labels must be -1 (unknown), 0 (benign) or 1 (threat); row {at} "
                          f"is {labels[at:at + 1].tolist()[0]!r} ({int(bad_label.sum())} such rows)")
    bad_score = ~np.isfinite(scores)
    if bad_score.any():
        at = int(np.flatnonzero(bad_score)[0])
        raise SchemaError(f"{int(bad_score.sum())} scores are not finite (first: row {at}, "
                          f"{scores[at]}); the model's anomaly_score must return finite values")
    keep = labels >= 0
    return KnownScores(scores[keep], labels[keep] == 1, keep, int((~keep).sum()))


def roc_auc(scores: np.ndarray, is_threat: np.ndarray) -> float | None:
    """Area under the ROC curve of the threat class (ties count one half); None with one class."""
    if is_threat.all() or not is_threat.any():
        return None
    return float(roc_auc_score(is_threat, scores))


def pr_auc(scores: np.ndarray, is_positive: np.ndarray) -> float | None:
    """Average precision of the positive class for `scores` (higher = more positive)."""
    if is_positive.all() or not is_positive.any():
        return None
    return float(average_precision_score(is_positive, scores))


def confusion(scores: np.ndarray, is_threat: np.ndarray, threshold: float) -> np.ndarray:
    """[[TN, FP], [FN, TP]]: rows are the true class (benign, threat), columns the alert."""
    alert = scores >= threshold
    return np.array([[int((~is_threat & ~alert).sum()), int((~is_threat & alert).sum())],
                     [int((is_threat & ~alert).sum()), int((is_threat & alert).sum())]])


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def class_report(matrix: np.ndarray) -> dict[str, dict[str, float | int | None]]:
    """Precision, recall, F1 and support per class from a square confusion matrix.

    A class without a row (support 0) has none of the three: its recall is 0/0, and every
    prediction of it is wrong by construction, so a precision or F1 of 0 would say nothing
    about the model (and would rank it); they are None, as ROC-AUC is with one class.

    Returns:
        {class index as str: {"precision", "recall", "f1_score", "support"}}.
    """
    out: dict[str, dict[str, float | int | None]] = {}
    for c in range(len(matrix)):
        tp, support = matrix[c, c], int(matrix[c].sum())
        if not support:
            out[str(c)] = {"precision": None, "recall": None, "f1_score": None, "support": 0}
            continue
        precision = _ratio(tp, matrix[:, c].sum())
        recall = _ratio(tp, support)
        f1 = _ratio(2 * precision * recall, precision + recall)
        out[str(c)] = {"precision": precision, "recall": recall, "f1_score": f1,
                       "support": support}
    return out


def accuracy(matrix: np.ndarray) -> float:
    return _ratio(np.trace(matrix), matrix.sum())


def operating_points(scores: np.ndarray, is_threat: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, false positives, true positives) at each distinct score, highest first.

    Threshold k flags every unit with `score >= thresholds[k]`; ties are never split.
    """
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], is_threat[order]
    last_of_run = np.r_[s[1:] != s[:-1], True]
    tp = np.cumsum(y)[last_of_run]
    fp = np.cumsum(~y)[last_of_run]
    return s[last_of_run], fp, tp


def detection_at_fpr(scores: np.ndarray, is_threat: np.ndarray, max_fpr: float
                     ) -> dict[str, float | int | None]:
    """Detection rate at false-positive rate <= `max_fpr` (the rule in the module docstring).

    Returns:
        {"max_fpr", "detection_rate", "threshold" (None: no threshold qualifies, nothing is
        flagged), "fpr" (achieved), "false_positives", "allowed_false_positives"}; the rates
        are None when there is no threat or no benign unit.
    """
    n_threat, n_benign = int(is_threat.sum()), int(len(is_threat) - is_threat.sum())
    allowed = math.floor(max_fpr * n_benign + 1e-9)  # the epsilon absorbs 0.07 * 100 = 7.000...1
    result: dict[str, float | int | None] = {
        "max_fpr": max_fpr, "detection_rate": None, "threshold": None, "fpr": None,
        "false_positives": None, "allowed_false_positives": allowed}
    if not n_threat or not n_benign:
        return result
    thresholds, fp, tp = operating_points(scores, is_threat)
    ok = np.flatnonzero(fp <= allowed)
    if not len(ok):  # even the highest score has too many benign units: alert on nothing
        result.update(detection_rate=0.0, fpr=0.0, false_positives=0)
        return result
    k = int(ok[-1])  # fp grows as the threshold falls: the last admissible one catches most
    result.update(detection_rate=float(tp[k] / n_threat), threshold=float(thresholds[k]),
                  fpr=float(fp[k] / n_benign), false_positives=int(fp[k]))
    return result


# The shortest span a per-day rate is drawn from: a capture of minutes (an 8-minute one gave
# "1730.6 alerts per day") extrapolates one burst to a day, so below an hour only the count
# and the span are given.
MIN_RATE_DAYS = 1.0 / 24.0


def alerts_per_day(alert: np.ndarray, is_benign: np.ndarray, timestamps: np.ndarray
                   ) -> dict[str, float | int | None] | None:
    """Alert volume per day over the time the rows span.

    Every row counts, unknown labels included (they alert in production too); false alerts are
    the benign rows that alert. Rows without a timestamp (NaT) are left out. Over a span
    shorter than `MIN_RATE_DAYS` (an hour) the per-day rates are None: the count and the span
    stand alone.

    Args:
        alert: bool, shape (n,).
        is_benign: bool, shape (n,): label 0.
        timestamps: datetime64, shape (n,).

    Returns:
        {"span_days", "n_alerts", "alerts_per_day", "false_alerts_per_day"} (the rates None
        under an hour), or None when fewer than two distinct timestamps are known.
    """
    ts = np.asarray(timestamps).astype("datetime64[us]")
    known = ~np.isnat(ts)
    if known.sum() < 2:
        return None
    t = ts[known].astype(np.int64)
    span_days = float(t.max() - t.min()) / 86_400e6
    if span_days <= 0:
        return None
    n_alerts = int(alert[known].sum())
    false_alerts = int((alert & is_benign)[known].sum())
    if span_days < MIN_RATE_DAYS:
        return {"span_days": span_days, "n_alerts": n_alerts, "alerts_per_day": None,
                "false_alerts_per_day": None}
    return {"span_days": span_days, "n_alerts": n_alerts,
            "alerts_per_day": n_alerts / span_days, "false_alerts_per_day": false_alerts / span_days}


def per_attack_type(alert_sets: dict[str, np.ndarray], is_threat: np.ndarray,
                    attack_types: np.ndarray) -> dict[str, dict[str, float | int]]:
    """Detection rate of each attack type among the threat rows.

    Args:
        alert_sets: name -> bool alerts of every known row, e.g. {"at_threshold": ...,
            "at_fpr_0.01": ...}; each gives a `detected_<name>` count and `rate_<name>`.
        is_threat: bool, shape (n,).
        attack_types: str, shape (n,); an empty type is reported as "(unnamed)".

    Returns:
        {attack type: {"count", "detected_<name>", "rate_<name>", ...}}, largest count first.
    """
    types = np.asarray(attack_types, dtype=str)[is_threat]
    types = np.where(types == "", "(unnamed)", types)
    names, inverse, counts = np.unique(types, return_inverse=True, return_counts=True)
    out: dict[str, dict[str, float | int]] = {}
    for i in np.argsort(-counts, kind="stable"):
        row: dict[str, float | int] = {"count": int(counts[i])}
        for key, alert in alert_sets.items():
            hits = int(alert[is_threat][inverse == i].sum())
            row[f"detected_{key}"] = hits
            row[f"rate_{key}"] = hits / int(counts[i])
        out[str(names[i])] = row
    return out


def class_probability_metrics(probabilities: np.ndarray, labels: np.ndarray
                              ) -> dict[str, dict[str, float | None]]:
    """One-vs-rest ROC-AUC and PR-AUC of each class from class probabilities.

    Args:
        probabilities: shape (n, n_classes).
        labels: class index per row, shape (n,).

    Returns:
        {class index as str: {"roc_auc", "pr_auc"}} (None for a class absent or alone).
    """
    out = {}
    for c in range(probabilities.shape[1]):
        positive = labels == c
        out[str(c)] = {"roc_auc": roc_auc(probabilities[:, c], positive),
                       "pr_auc": pr_auc(probabilities[:, c], positive)}
    return out
