"""The evidence of an incident: how unlikely its units' tail probabilities are for benign units.

The tests and why they were chosen are in `training.scoring.incidents`' docstring; batch and
live incidents (`training.scoring.live_incidents`) both score with these.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln
from scipy.stats import chi2

from training.evaluation.threshold_rules import DEFAULT_QUANTILE

QUIET_RATE = 1.0 - DEFAULT_QUANTILE  # an incident without alerts: as rare as one alert


def layer_evidence(log_p_sum: np.ndarray, n: np.ndarray, log_p_min: np.ndarray) -> np.ndarray:
    """-log10 of the p-value of the stronger of Fisher's and Sidak's tests (`training.scoring.incidents`' docstring)
    over n units of one layer, from the sum and the minimum of their ln p. Shapes: (k,) each."""
    half = -np.asarray(log_p_sum, np.float64)  # the statistic over 2: -sum ln p
    log_tail = chi2.logsf(2.0 * half, 2.0 * n)
    # Far in the tail logsf underflows to -inf (the evidence would print as null): there the
    # regularized upper incomplete gamma function is about x**(n-1) e**-x / Gamma(n) times
    # x / (x - n + 1) (within 3e-4 decades of mpmath where logsf underflows; x is then far
    # above n).
    with np.errstate(divide="ignore", invalid="ignore"):
        far = ((n - 1) * np.log(half) - half - gammaln(np.maximum(n, 1))
               + np.log(half / (half - n + 1)))
    fisher = -np.where(np.isneginf(log_tail), far, log_tail) / math.log(10.0)
    with np.errstate(divide="ignore"):  # p = 1: log1p(-1) is -inf, and the evidence 0
        sidak = -np.log10(-np.expm1(n * np.log1p(-np.exp(log_p_min))))
    return np.maximum(fisher, sidak) + 0.0  # + 0.0: no -0.0 where there is no evidence


def quiet_incidents(evidence: np.ndarray, layers: np.ndarray, alerts: np.ndarray) -> np.ndarray:
    """Which (entity, window)s without an alert are incidents all the same: those whose
    evidence, summed over their `layers` layers, is as unlikely for benign units as one alert
    at the default threshold (Fisher's method over the layers' p-values: the chance that k
    independent layers' evidence sums to that much is at most `QUIET_RATE`)."""
    with np.errstate(divide="ignore"):
        tail = chi2.logsf(2.0 * math.log(10.0) * evidence, 2.0 * np.maximum(layers, 1))
    return (alerts == 0) & (tail <= math.log(QUIET_RATE))
