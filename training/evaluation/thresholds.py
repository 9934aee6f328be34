"""Alert thresholds calibrated on validation scores, never on the test set.

Two rules, as detection engineers set them: a quantile of the benign scores (default the 99th
percentile, i.e. about 1% of benign traffic alerts), or, when the validation data holds both
benign and threat labels, the threshold with the best F1 on it. Unknown labels (-1) never count
as benign. A score alerts when it is >= the threshold.

Models calibrate through `training.evaluation.calibration.Calibration`, which keeps the benign
validation score distribution with the threshold and offers more rules (alerts per day, the
99.9th percentile of unlabeled validation scores); this module keeps the two rules it builds on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from training.errors import ConfigError

METHODS = ("auto", "quantile", "best_f1")
# Known units of each class that labels need before they decide anything: "auto" takes best F1
# only with this many threats and benign units (with one threat best F1 puts the threshold at
# that threat's score, wherever the benign scores are: 24% of units alerted in trial Q), and
# the promotion gate's labeled rule needs as many for its bootstrap intervals
# (`training.retraining.gate`). Fewer count as none.
MIN_CLASS_UNITS = 5


def labels_decide(n_benign: int, n_threat: int) -> bool:
    """Whether validation labels of these counts are enough for "auto" to take best F1."""
    return min(n_benign, n_threat) >= MIN_CLASS_UNITS


@dataclass(frozen=True)
class Threshold:
    """A calibrated threshold and how it was found (JSON-able through `to_dict`)."""

    value: float
    method: str  # "benign_quantile", "best_f1", "quantile" or "alerts_per_day"
    quantile: float | None
    n_scores: int
    rule: str | None = None  # in words, when it came from a `Calibration`

    def to_dict(self) -> dict:
        return asdict(self)


def calibrate_threshold(scores: np.ndarray, labels: np.ndarray | None = None, *,
                        method: str = "auto", quantile: float = 0.99) -> Threshold:
    """The alert threshold for `scores` (higher = more anomalous).

    Args:
        scores: validation scores, shape (n,).
        labels: is_threat per score (-1 unknown, 0 benign, 1 threat), or None (all treated as
            benign, as in semi-supervised training on benign traffic).
        method: "quantile" (of benign scores), "best_f1" (needs both classes), or "auto"
            (best F1 when both classes have `MIN_CLASS_UNITS` units, else the benign
            quantile).
        quantile: the benign-score quantile, in (0, 1).

    Raises:
        ConfigError: an unknown method, a quantile outside (0, 1), mismatched lengths, no finite
            score, or no benign score to take a quantile of.
    """
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not 0.0 < quantile < 1.0:
        raise ConfigError(f"quantile must be in (0, 1), got {quantile}")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.zeros(len(scores), np.int8) if labels is None else np.asarray(labels).reshape(-1)
    if len(labels) != len(scores):
        raise ConfigError(f"labels has {len(labels)} entries for {len(scores)} scores")
    keep = np.isfinite(scores) & (labels >= 0)
    scores, labels = scores[keep], labels[keep]
    has_both = bool((labels == 0).any() and (labels == 1).any())
    enough = labels_decide(int((labels == 0).sum()), int((labels == 1).sum()))
    if method == "best_f1" or (method == "auto" and enough):
        if not has_both:
            raise ConfigError("best_f1 needs validation scores of both benign (0) and threat (1) "
                              f"rows; got {int((labels == 0).sum())} benign, "
                              f"{int((labels == 1).sum())} threat")
        return Threshold(best_f1_threshold(scores, labels), "best_f1", None, len(scores),
                         best_f1_rule(int((labels == 0).sum()), int((labels == 1).sum())))
    benign = scores[labels == 0]
    if not len(benign):
        raise ConfigError("no finite benign validation score to calibrate a threshold on")
    value = float(np.quantile(benign, quantile, method="higher"))
    return Threshold(value, "benign_quantile", quantile, len(scores))


def best_f1_rule(n_benign: int, n_threat: int) -> str:
    """The best-F1 rule in words with the validation units it was chosen on, both classes (one
    wording for sidecars, the registry, `train` and the evaluator)."""
    return (f"labeled: threshold with the best F1 on validation units ({n_benign} benign, "
            f"{n_threat} threat)")


def best_f1_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The score, among the distinct scores, whose `>=` rule maximises F1 (on ties the highest: fewer alerts)."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], (labels[order] == 1)
    last_of_run = np.r_[s[1:] != s[:-1], True]  # cut only between distinct scores
    tp = np.cumsum(y)[last_of_run]
    flagged = np.flatnonzero(last_of_run) + 1
    f1 = 2 * tp / (flagged + y.sum())
    best = int(np.argmax(f1))  # first maximum: the highest threshold among equal F1
    return float(s[last_of_run][best])
