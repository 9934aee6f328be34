"""Is a model alerting more than its calibration promised? The alert-rate check and the score
shift that the promotion gate and the scoring guard share.

    check = check_alert_rate(alerts=530, units=1000, expected_rate=0.001, factor=3.0)
    check.exceeded          # True: 53% is significantly above 0.1% x 3
    shift = ScoreShift(calibration)
    shift.add(scores)       # any number of batches
    shift.distance()        # 0 (scores like the benign validation ones) .. 1

The calibration (`training.evaluation.calibration`) says which share of benign units like the
validation part reach the threshold (`expected_alert_rate`, 0.1% under the default rule). A
model is past its bound when it alerts on more than `expected_rate × factor` of the units **and**
a one-sided binomial test says that excess is significant for the number of units (p-value of
`alerts` or more under the bound below `alpha`): 2 alerts among 100 units are no evidence of a
rate above 0.3%, 20 among 1,000 are.

The shift of a score distribution is read through the calibration: each score becomes its
position among the benign validation scores (`Calibration.cdf`, 0..1). Scores like the
validation ones give uniform positions; `ScoreShift.distance()` is the Kolmogorov-Smirnov
distance of the positions from uniform, and `distance(other)` between two models' positions on
the same units (each through its own calibration, so models with different score scales
compare). Positions are kept as a 1,000-bin histogram, so memory stays flat on any stream.

A calibration of fewer than `MIN_REFERENCE_UNITS` benign validation units cannot stand for a
threshold at all (`reference_shortfall` says why): the pipeline does not promote such a model
and the scoring guard warns of it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import binom

from training.errors import ConfigError
from training.evaluation.calibration import Calibration

DEFAULT_FACTOR = 3.0
DEFAULT_ALPHA = 0.01
BINS = 1000
# The benign validation units a threshold needs (`reference_shortfall`). With n of them no
# threshold can promise fewer than one alert in n + 1 benign units (a new one beats all n that
# often), so under 20 the promise is worse than 5%, and percentiles, tail probabilities and the
# alert-rate check stand on a handful of points: on one, the threshold is that unit's score and
# the expected rate 100%, which no alert rate can exceed. Layers 2 and 3 train on 20 units too.
MIN_REFERENCE_UNITS = 20


@dataclass(frozen=True)
class AlertRateCheck:
    """Observed alerts against a bound on the alert rate (see the module docstring).

    Attributes:
        units, alerts: how many units were scored, how many alerted.
        expected_rate: the calibration's expected alert rate (None: the bound was given).
        bound: the highest tolerated alert rate.
        p_value: P(at least `alerts` alerts among `units` at the rate `bound`).
        alpha: the significance level.
    """

    units: int
    alerts: int
    expected_rate: float | None
    bound: float
    p_value: float
    alpha: float

    @property
    def observed_rate(self) -> float:
        return self.alerts / self.units if self.units else 0.0

    @property
    def exceeded(self) -> bool:
        """The observed rate is above the bound, significantly for this many units."""
        return self.observed_rate > self.bound and self.p_value < self.alpha

    @property
    def p_text(self) -> str:
        """"p 0.037", or "p < 1e-300" where the p-value underflows."""
        return "p < 1e-300" if self.p_value == 0 else f"p {self.p_value:.2g}"

    def describe(self) -> str:
        """"53.12% of 1,234 units alert; at most 0.30% tolerated (binomial p < 1e-300)"."""
        return (f"{self.observed_rate:.2%} of {self.units:,} units alert; at most "
                f"{self.bound:.2%} tolerated (binomial {self.p_text})")

    def significance(self) -> str | None:
        """Above the bound: "but not significantly (binomial p 0.21, 11 units)" or
        "significantly (binomial p 1e-05, 1,234 units)", to follow "above <the bound>"; None
        at or below it."""
        if self.observed_rate <= self.bound:
            return None
        how = "significantly" if self.exceeded else "but not significantly"
        return f"{how} (binomial {self.p_text}, {self.units:,} units)"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "observed_rate": self.observed_rate, "exceeded": self.exceeded}


def check_alert_rate(alerts: int, units: int, expected_rate: float | None = None, *,
                     factor: float = DEFAULT_FACTOR, bound: float | None = None,
                     alpha: float = DEFAULT_ALPHA) -> AlertRateCheck:
    """`alerts` among `units` against `expected_rate × factor`, or against `bound` when given.

    Raises:
        ConfigError: neither or both of expected_rate and bound, a factor below 1, a rate or
            alpha outside (0, 1), or counts that do not fit.
    """
    if (expected_rate is None) == (bound is None):
        raise ConfigError("check_alert_rate needs either expected_rate or bound, got "
                          f"expected_rate={expected_rate!r}, bound={bound!r}")
    validate_bounds(factor, bound, alpha)
    if expected_rate is not None and not 0 < expected_rate <= 1:
        raise ConfigError(f"expected_rate must be in (0, 1], got {expected_rate!r}")
    if not 0 <= alerts <= units:
        raise ConfigError(f"alerts must be in [0, units={units}], got {alerts}")
    limit = min(1.0, expected_rate * factor) if bound is None else bound
    p_value = float(binom.sf(alerts - 1, units, limit)) if alerts else 1.0
    return AlertRateCheck(int(units), int(alerts), expected_rate, float(limit), p_value,
                          float(alpha))


def reference_shortfall(calibration: Calibration, unit: str = "unit") -> str | None:
    """Why `calibration` holds too few benign validation units to set a threshold on (fewer
    than `MIN_REFERENCE_UNITS`), in words naming the count and the rate it then promises
    ("its threshold rests on 1 validation window, fewer than the 20 a threshold needs (it is at
    or just above that window's score, expected alert rate 100.00%)"), or None when it holds
    enough."""
    n = calibration.n_scores
    if n >= MIN_REFERENCE_UNITS:
        return None
    which = "benign validation" if calibration.reference == "benign" else "validation"
    units = f"{n:,} {which} {unit}{'' if n == 1 else 's'}"
    at = ""
    q = calibration.quantile
    if q is not None and n * (1.0 - q) < 1.0:  # the quantile lies past the largest score
        at = (f"it is at or just above that {unit}'s score, " if n == 1 else
              "it is at or just above the largest of their scores, ")
    return (f"its threshold rests on {units}, fewer than the {MIN_REFERENCE_UNITS} a threshold "
            f"needs ({at}expected alert rate {calibration.expected_alert_rate:.2%})")


def validate_bounds(factor: float = DEFAULT_FACTOR, max_rate: float | None = None,
                    alpha: float = DEFAULT_ALPHA) -> None:
    """Refuse a factor below 1, or a maximum rate or alpha outside (0, 1).

    Raises:
        ConfigError: naming the parameter, the rule and the value.
    """
    if not (math.isfinite(factor) and factor >= 1):
        raise ConfigError(f"the alert-rate factor must be >= 1, got {factor!r}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha!r}")
    if max_rate is not None and not 0 < max_rate < 1:
        raise ConfigError(f"the maximum alert rate must be in (0, 1), got {max_rate!r} "
                          "(a share: 0.01 is 1%)")


class ScoreShift:
    """Positions of scores among a calibration's benign validation scores, as a histogram."""

    def __init__(self, calibration: Calibration) -> None:
        self.calibration = calibration
        self.counts = np.zeros(BINS, dtype=np.int64)
        self._rng = np.random.default_rng(0)  # seeded: a run repeats its figures

    def add(self, scores: np.ndarray) -> None:
        """Count `scores` (non-finite ones are left out). A score tied with reference scores
        lands anywhere in their share at random (the randomised probability integral
        transform): benign scores in a large tie (idle windows, repeated flows) are then as
        uniform as the rest, where F(s) would put them all at its top."""
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        below, upto = self.calibration.share_below(scores), self.calibration.cdf(scores)
        positions = below + self._rng.random(len(scores)) * (upto - below)
        positions = positions[np.isfinite(positions)]
        bins = np.minimum((positions * BINS).astype(np.int64), BINS - 1)
        self.counts += np.bincount(bins, minlength=BINS)

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def distance(self, other: ScoreShift | None = None) -> float | None:
        """KS distance of the positions from uniform (`other` None) or from `other`'s
        positions; None when either has no score."""
        if not self.n or (other is not None and not other.n):
            return None
        mine = np.cumsum(self.counts) / self.n
        theirs = (np.arange(1, BINS + 1) / BINS if other is None
                  else np.cumsum(other.counts) / other.n)
        return float(np.abs(mine - theirs).max())
