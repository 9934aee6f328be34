"""One calibration per model: the distribution of its benign validation scores, and the
threshold, tail probabilities and percentiles that all come from it.

    calibration = Calibration.fit(val_scores, val_labels, reference=fit_mask, times=val_times,
                                  rule="quantile:0.999")
    calibration.threshold                      # a score >= it alerts
    calibration.tail_probability(scores)       # P(benign score >= s): a p-value per score
    calibration.percentile(scores)             # where s sits among benign scores, 0..100
    calibration.rule                           # "unlabeled: threshold at the 99.9th percentile
                                               #  of validation scores"

The reference scores are the validation units treated as benign: every unit of unlabeled data
(assumed benign, as training assumed), or the benign ones (is_threat 0) when training learnt
from the benign units only. They are kept as a fixed set of quantiles (`LEVELS`, finer in the
upper tail), so the sidecar stays small whatever the size of the validation part.

Threshold rules (`training.evaluation.threshold_rules.parse_rule`; the same text on the command
line and in TOML):

| rule | threshold |
|---|---|
| `quantile[:Q]` (default Q 0.999) | the Q-quantile of the reference scores: a share 1 - Q of benign units alerts |
| `alerts-per-day:N` | the quantile that gives N alerts a day at the validation part's rate of units; needs validation spanning at least a day |
| `best-f1` | the score with the best F1 on validation units of both classes (needs labels) |
| `auto` | best F1 when the validation units have at least 5 of each class (`thresholds.MIN_CLASS_UNITS`), else the 0.99-quantile of the benign ones, else the 0.999-quantile of all (the trainer's default) |

A quantile that falls in a run of tied scores (many identical validation units, common in real
logs) makes every one of them alert; when that is more than twice the budget (and one unit),
the threshold moves to the next score above the tie, or just above the largest score, where
the rate to expect is the conformal 1 / (n + 1): a new benign unit beats all n that often.

Tail probability: with F(s-) the share of reference scores strictly below s (interpolated
between the stored quantiles) and n their number, p(s) = (1 + n (1 - F(s-))) / (n + 1): the
conformal p-value, counting the scores tied with s as at or above it, 1 below every reference
score. Above the largest one, m, it would stay at 1 / (n + 1)
however far a score goes, so that units far out and units just past m tie, and a fused score
could not tell them apart. There it goes on as an exponential tail, the peaks-over-threshold
model with a shape of 0: p(s) = exp(-(s - m) / beta) / (n + 1), beta the mean excess of the
reference scores over their 0.9-quantile (from the stored quantiles), when at least
`MIN_TAIL_SCORES` reference scores lie above that quantile: a scale from fewer (a validation
part of a few windows) would send every later unit far into the tail. It never reaches 0.
Without that tail, p still falls beyond m, but by at most half: p(s) = (1 + 1 / (1 + (s - m) /
w)) / 2 / (n + 1), w the width of the reference scores (m minus the smallest), so that units
past m keep their order (a fused score of one layer ranks as the layer does) and none claims
more than twice the evidence the floor grants.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from training.errors import ConfigError, SchemaError
from training.evaluation.threshold_rules import (
    DEFAULT_QUANTILE, ThresholdRule, ordinal_percentile, parse_rule,
)
from training.evaluation.thresholds import (
    Threshold, best_f1_rule, best_f1_threshold, labels_decide,
)

FORMAT = "maximus.calibration.v1"
AUTO_BENIGN_QUANTILE = 0.99  # the trainer's rule before calibrations existed
SECONDS_PER_DAY = 86_400.0
TAIL_FROM = 0.9  # the exponential tail's scale is the mean excess over this quantile
# Reference scores above TAIL_FROM that the scale needs, else the floor stays: the scale is
# their mean excess, whose relative standard error is 1 / sqrt(k), 0.32 at 10.
MIN_TAIL_SCORES = 10
# Every percent, then every 0.1%, 0.01% and 0.001% of the upper tail: 128 levels.
LEVELS: tuple[float, ...] = tuple(sorted({round(float(x), 6) for x in np.concatenate([
    np.linspace(0.0, 0.99, 100), np.linspace(0.991, 0.999, 9), np.linspace(0.9991, 0.9999, 9),
    np.linspace(0.99991, 0.99999, 9), [1.0]])}))
REFERENCES = {
    "all": "validation scores",
    "benign": "benign validation scores",
    "not_threat": "validation scores of benign and unlabeled units",
    "subset": "validation scores of the units training learnt from",
}


@dataclass(frozen=True)
class Calibration:
    """The benign validation score distribution of one model, with its threshold.

    Attributes:
        levels, values: the distribution as quantiles: values[i] is the levels[i]-quantile of
            the reference scores (non-decreasing).
        n_scores: how many reference scores there were.
        threshold: a score >= it alerts.
        method: "quantile" (of all scores, unlabeled), "benign_quantile" (of benign-labeled
            ones), "alerts_per_day" or "best_f1".
        quantile: the level of the threshold among the reference scores (None for best_f1).
        alerts_per_day: the alert budget (alerts_per_day rule), else None.
        reference: which validation units the distribution is of (a key of `REFERENCES`).
        span_days: the time the reference units span, when they have times.
        expected_alert_rate: the share of reference scores at or above the threshold (1 / (n +
            1) above them all): the rate of alerts to expect on benign traffic like the
            validation part.
        n_benign, n_threat: labeled validation units (best_f1 uses both).
        tail: "exponential" (fitted since the tail existed) or "floor" (read from a file
            written before: its p-values, and any threshold set on them, stay as they were).
    """

    levels: tuple[float, ...]
    values: tuple[float, ...]
    n_scores: int
    threshold: float
    method: str
    quantile: float | None
    alerts_per_day: float | None
    reference: str
    span_days: float | None
    expected_alert_rate: float
    n_benign: int = 0
    n_threat: int = 0
    tail: str = "floor"

    def __post_init__(self) -> None:
        if len(self.levels) != len(self.values) or len(self.levels) < 2:
            raise SchemaError(f"a calibration needs as many quantile values as levels (>= 2), "
                              f"got {len(self.levels)} levels and {len(self.values)} values")
        values = np.asarray(self.values, dtype=np.float64)
        if not np.isfinite(values).all() or (np.diff(values) < 0).any() \
                or (np.diff(np.asarray(self.levels)) <= 0).any():
            raise SchemaError("a calibration's quantiles must be finite and non-decreasing, "
                              "at increasing levels")
        if self.n_scores < 1 or not math.isfinite(self.threshold):
            raise SchemaError(f"a calibration needs at least one score and a finite threshold, "
                              f"got {self.n_scores} scores, threshold {self.threshold}")
        if self.tail not in ("exponential", "floor"):
            raise SchemaError(f"calibration tail must be exponential or floor, got {self.tail!r}")
        if self.reference not in REFERENCES:
            raise SchemaError(f"calibration reference must be one of {', '.join(REFERENCES)}, "
                              f"got {self.reference!r}")

    # -- fitting ---------------------------------------------------------------------------

    @classmethod
    def fit(cls, scores: np.ndarray, labels: np.ndarray | None = None, *,
            reference: np.ndarray | None = None, times: np.ndarray | None = None,
            rule: str | ThresholdRule = "auto") -> Calibration:
        """Calibrate on validation `scores` (higher = more anomalous).

        Args:
            scores: (n,) validation scores; non-finite ones are left out.
            labels: (n,) is_threat (-1/0/1), or None (every unit unlabeled).
            reference: (n,) bool, the units treated as benign (those training learnt from);
                None: the benign-labeled units when there are any, else all of them.
            times: (n,) datetime64 of each unit, for alerts-per-day (NaT where unknown).
            rule: see `parse_rule`.

        Raises:
            ConfigError: no reference score, mismatched lengths, best-f1 without both
                classes, alerts-per-day on validation data spanning less than a day.
        """
        rule = parse_rule(rule)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        n = len(scores)
        labels = np.full(n, -1, np.int64) if labels is None else np.asarray(labels).reshape(-1)
        if len(labels) != n:
            raise ConfigError(f"labels has {len(labels)} entries for {n} scores")
        if reference is None:
            reference = labels == 0 if (labels == 0).any() else np.ones(n, bool)
        reference = np.asarray(reference, dtype=bool).reshape(-1)
        if len(reference) != n:
            raise ConfigError(f"reference has {len(reference)} entries for {n} scores")
        finite = np.isfinite(scores)
        kind = _reference_kind(reference, labels)
        ref = np.sort(scores[reference & finite])
        if not len(ref):
            raise ConfigError(
                f"no finite validation score to calibrate a threshold on: the validation part "
                f"has {n} units, none of them {REFERENCES[kind].replace(' scores', '')}; give "
                "the run more data (a longer capture, a larger val_ratio) or train on every "
                "unit (no benign-only filter)")
        known = finite & (labels >= 0)
        n_benign, n_threat = int((labels[known] == 0).sum()), int((labels[known] == 1).sum())
        span = _span_days(times, reference & finite, n)
        method, level, budget = "quantile", None, None
        if rule.kind == "auto":
            if labels_decide(n_benign, n_threat):
                rule = ThresholdRule("best-f1", None)
            elif n_benign and kind in ("benign", "all"):  # the benign units, as before
                rule, method = ThresholdRule("quantile", AUTO_BENIGN_QUANTILE), "benign_quantile"
            else:
                rule = ThresholdRule("quantile", DEFAULT_QUANTILE)
        if rule.kind == "best-f1":
            if not (n_benign and n_threat):
                raise ConfigError(
                    "the best-f1 threshold rule needs validation units of both classes; got "
                    f"{n_benign} benign and {n_threat} threat; use the rule quantile (or "
                    "alerts-per-day:N) for unlabeled data")
            method = "best_f1"
            threshold = best_f1_threshold(scores[known], labels[known])
        else:
            if rule.kind == "alerts-per-day":
                if span is None or span < 1.0:
                    spanned = "no known time" if span is None else f"{span * 24:.3g} hours"
                    raise ConfigError(
                        f"the alerts-per-day threshold rule needs validation data spanning at "
                        f"least a day; it spans {spanned}; use a longer capture or the rule "
                        "quantile:Q (e.g. quantile:0.999: 0.1% of units alert)")
                method, budget = "alerts_per_day", float(rule.value)
                level = max(0.0, 1.0 - budget * span / len(ref))
            else:
                level = float(rule.value)
                if method != "benign_quantile" and kind == "benign":
                    method = "benign_quantile"
            threshold = _above_a_tie(ref, float(np.quantile(ref, level, method="higher")),
                                     1.0 - level)
        values = np.quantile(ref, LEVELS, method="linear")
        values = np.maximum.accumulate(values)  # float rounding must not make it decrease
        return cls(LEVELS, tuple(float(v) for v in values), len(ref), float(threshold), method,
                   level, budget, kind, span,
                   max(float((ref >= threshold).mean()), 1.0 / (len(ref) + 1)), n_benign,
                   n_threat, tail="exponential")

    # -- using it --------------------------------------------------------------------------

    def cdf(self, scores: np.ndarray) -> np.ndarray:
        """F(s): the share of reference scores at or below each score, interpolated."""
        return self._share(scores, "right")

    def share_below(self, scores: np.ndarray) -> np.ndarray:
        """The share of reference scores strictly below each score, interpolated: F(s) less
        the scores tied with s. Real logs tie often (4% of a validation part at one value), and
        a score in a tie is as common as its tie, not beyond it."""
        return self._share(scores, "left")

    def _share(self, scores: np.ndarray, side: str) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        values, levels = np.asarray(self.values), np.asarray(self.levels)
        k = np.searchsorted(values, s, side=side)  # values[:k] <= s ("right") or < s ("left")
        inner = (k > 0) & (k < len(values))
        lo = np.clip(k - 1, 0, len(values) - 1)
        hi = np.clip(k, 0, len(values) - 1)
        width = values[hi] - values[lo]
        step = np.where(inner & (width > 0), (s - values[lo]) / np.where(width > 0, width, 1), 0)
        out = np.where(k == 0, 0.0, np.where(k >= len(values), 1.0,
                                             levels[lo] + step * (levels[hi] - levels[lo])))
        return np.where(np.isnan(s), np.nan, out)

    def tail_probability(self, scores: np.ndarray) -> np.ndarray:
        """P(a benign score >= s) for each score: the conformal p-value, with an exponential
        tail above the largest reference score, or a fall of at most half there (module
        docstring)."""
        s = np.asarray(scores, dtype=np.float64)
        n, largest, scale = self.n_scores, self.values[-1], self.tail_scale
        p = (1.0 + n * (1.0 - self.share_below(s))) / (n + 1.0)
        with np.errstate(invalid="ignore"):  # NaN scores stay NaN
            beyond = np.maximum(s - largest, 0.0)
        if scale > 0:
            return np.maximum(p * np.exp(-beyond / scale), np.finfo(np.float64).tiny)
        width = largest - self.values[0]
        if width > 0 and self.tail == "exponential":  # a file from before the tail keeps the
            # floor; here the floor falls by half at most: ties broken, no evidence claimed
            p = p * (1.0 + 1.0 / (1.0 + beyond / width)) / 2.0
        return p

    @property
    def tail_scale(self) -> float:
        """The exponential tail's scale: the mean excess of the reference scores over their
        `TAIL_FROM`-quantile, integrated over the stored quantiles (0: no spread there, or
        fewer than `MIN_TAIL_SCORES` scores above it, or a calibration from before the tail)."""
        levels, values = np.asarray(self.levels), np.asarray(self.values)
        upper = levels >= TAIL_FROM
        if upper.sum() < 2 or levels[-1] < 1.0:  # no stored upper tail: no extrapolation
            return 0.0
        enough = round(MIN_TAIL_SCORES / (1.0 - TAIL_FROM))  # scores, for that many above
        if self.tail != "exponential" or self.n_scores < enough:
            return 0.0
        excess, at = values[upper] - values[upper][0], levels[upper]
        area = np.sum(np.diff(at) * (excess[1:] + excess[:-1])) / 2.0  # the trapezoid rule
        return float(area / (1.0 - TAIL_FROM))

    def percentile(self, scores: np.ndarray) -> np.ndarray:
        """Where each score sits among the benign validation scores, 0..100: the share of them
        below it, so that 100 - percentile is the share at or above it (a score tied with the
        largest 4% reads 96, not 100), as the tail probability counts."""
        return 100.0 * self.share_below(scores)

    @property
    def rule(self) -> str:
        """How the threshold was set, in words (for sidecars, the registry and reports)."""
        of = REFERENCES[self.reference]
        prefix = {"all": "unlabeled", "benign": "benign labels"}.get(self.reference,
                                                                      "filtered labels")
        if self.method == "best_f1":
            return best_f1_rule(self.n_benign, self.n_threat)
        at = f"the {ordinal_percentile(self.quantile)} percentile of {of}"
        if self.n_scores * (1.0 - self.quantile) < 1.0:  # fewer scores than the quantile needs
            at += (f" - {self.n_scores:,} of them cannot support that percentile, so the "
                   f"threshold is at or just above the largest (expected alert rate "
                   f"{self.expected_alert_rate:.2%})")
        if self.method == "alerts_per_day":
            return f"{prefix}: threshold for {self.alerts_per_day:g} alerts per day ({at})"
        return f"{prefix}: threshold at {at}"

    def to_threshold(self) -> Threshold:
        """The threshold as the trainer has always reported it (with the rule)."""
        return Threshold(self.threshold, self.method, self.quantile, self.n_scores, self.rule)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self), "levels": list(self.levels),
                "values": list(self.values), "rule": self.rule}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "the calibration") -> Calibration:
        """Read `to_dict` output back.

        Raises:
            SchemaError: another format, a missing field or values that break the rules.
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise SchemaError(f"{where}: format {found!r}, expected {FORMAT!r}")
        names = [f for f in cls.__dataclass_fields__]
        missing = [f for f in names if f not in data and f not in ("n_benign", "n_threat", "tail")]
        if missing:
            raise SchemaError(f"{where}: missing {', '.join(missing)}")
        values = {f: data[f] for f in names if f in data}
        values["levels"], values["values"] = tuple(data["levels"]), tuple(data["values"])
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"{where}: {exc}") from None


def _above_a_tie(ref: np.ndarray, threshold: float, budget: float) -> float:
    """`threshold`, or the next of the sorted `ref` above it when the scores at or above it
    are more than twice the budget share of them, and one unit."""
    if (ref >= threshold).sum() <= 2.0 * budget * len(ref) + 1.0:
        return threshold
    above = ref[ref > threshold]
    if len(above):
        return float(above[0])
    # Just above the largest score, on the float32 grid when it lies there: models score in
    # float32, and a float32 score compared with a float64 threshold one ulp above it (numpy
    # compares in float32) would read as equal and alert.
    if np.float32(threshold) == threshold:
        return float(np.nextafter(np.float32(threshold), np.float32(np.inf)))
    return float(np.nextafter(threshold, np.inf))


def _reference_kind(reference: np.ndarray, labels: np.ndarray) -> str:
    if np.array_equal(reference, labels == 0):  # every unit, when all are labeled benign
        return "benign"
    if reference.all():  # every unit, labeled or not: nothing was chosen by label
        return "all"
    if np.array_equal(reference, labels != 1):
        return "not_threat"
    return "subset"


def _span_days(times: np.ndarray | None, rows: np.ndarray, n: int) -> float | None:
    if times is None:
        return None
    times = np.asarray(times).reshape(-1)
    if len(times) != n:
        raise ConfigError(f"times has {len(times)} entries for {n} scores")
    known = times[rows].astype("datetime64[us]")
    known = known[~np.isnat(known)]
    if len(known) < 2:
        return None
    return float((known.max() - known.min()) / np.timedelta64(1, "s")) / SECONDS_PER_DAY
