"""The alert-rate check and the score shift, on small hand-made inputs with exact results."""

from __future__ import annotations

import numpy as np
import pytest

from training.errors import ConfigError
from training.evaluation.alert_rate import (
    MIN_REFERENCE_UNITS, ScoreShift, check_alert_rate, reference_shortfall,
)
from training.evaluation.calibration import Calibration


def test_the_binomial_test_weighs_the_excess_by_the_units_scored():
    # 2 alerts among 100 units at a tolerated 0.3%: P(X >= 2) = 1 - P(0) - P(1)
    few = check_alert_rate(2, 100, 0.001, factor=3.0)
    p = 1 - 0.997 ** 100 - 100 * 0.003 * 0.997 ** 99
    assert few.bound == pytest.approx(0.003) and few.p_value == pytest.approx(p, rel=1e-9)
    assert few.observed_rate == 0.02 and not few.exceeded  # p 0.037: no evidence
    many = check_alert_rate(20, 1000, 0.001, factor=3.0)  # the same 2%, on 10x the units
    assert many.observed_rate == 0.02 and many.p_value < 1e-9 and many.exceeded
    assert not check_alert_rate(0, 1000, 0.001).exceeded  # no alert: p 1
    assert check_alert_rate(0, 1000, 0.001).p_value == 1.0
    # at the bound is not past it, however many units
    assert not check_alert_rate(3000, 1_000_000, 0.001).exceeded
    given = check_alert_rate(20, 1000, bound=0.05)
    assert given.bound == 0.05 and given.expected_rate is None and not given.exceeded
    assert many.describe() == ("2.00% of 1,000 units alert; at most 0.30% tolerated "
                               f"(binomial p {many.p_value:.2g})")
    assert check_alert_rate(900, 1000, 0.001).p_text == "p < 1e-300"  # underflows to 0
    # Above the bound is said as such, significant or not; at or below it is "within".
    assert few.significance() == f"but not significantly (binomial p {few.p_value:.2g}, 100 units)"
    assert many.significance() == (f"significantly (binomial p {many.p_value:.2g}, 1,000 "
                                   "units)")
    assert check_alert_rate(3, 1000, 0.001).significance() is None  # 0.3%: at the bound


@pytest.mark.parametrize("kwargs, message", [
    ({"factor": 0.999}, "the alert-rate factor must be >= 1, got 0.999"),
    ({"alpha": 1.0}, "alpha must be in (0, 1), got 1.0"),
    ({"expected_rate": 0.0}, "expected_rate must be in (0, 1], got 0.0"),
    ({"expected_rate": None, "bound": 1.0}, "the maximum alert rate must be in (0, 1), got 1.0"),
    ({"expected_rate": None}, "needs either expected_rate or bound"),
    ({"alerts": 11}, "alerts must be in [0, units=10], got 11"),
])
def test_bad_arguments_are_refused(kwargs, message):
    args = {"alerts": 1, "units": 10, "expected_rate": 0.01, **kwargs}
    with pytest.raises(ConfigError) as error:
        check_alert_rate(args.pop("alerts"), args.pop("units"), args.pop("expected_rate"),
                         **args)
    assert message in str(error.value)
    assert check_alert_rate(1, 10, 0.01, factor=1.0).bound == 0.01  # factor 1: the edge
    # a calibration whose every benign score reached the threshold: nothing can exceed it
    assert not check_alert_rate(10, 10, 1.0).exceeded


def test_the_score_shift_reads_scores_through_the_calibration():
    reference = np.arange(10_000, dtype=np.float64)  # benign validation scores 0..9999
    calibration = Calibration.fit(reference, rule="quantile:0.999")
    alike = ScoreShift(calibration)
    for batch in np.array_split(np.random.default_rng(0).permutation(reference), 7):
        alike.add(batch)  # in batches, as scoring streams
    assert alike.n == 10_000 and alike.distance() < 0.002
    above = ScoreShift(calibration)
    above.add(np.full(50, 1e6))  # every score past the largest benign one
    assert above.distance() == pytest.approx(1.0, abs=1e-3 + 1e-9)  # to a bin: 1/1000
    lower_half = ScoreShift(calibration)
    lower_half.add(reference[:5000])
    assert lower_half.distance() == pytest.approx(0.5, abs=2e-3)
    assert lower_half.distance(alike) == pytest.approx(0.5, abs=2e-3)
    assert ScoreShift(calibration).distance() is None
    assert alike.distance(ScoreShift(calibration)) is None


def test_scores_tied_with_many_benign_scores_do_not_read_as_a_shift():
    """60% of the benign validation scores are exactly 0 (idle windows score alike): new
    scores drawn as they were sit where the calibration expects them, inside the tie too."""
    rng = np.random.default_rng(1)
    draw = lambda n: np.where(rng.random(n) < 0.6, 0.0, rng.exponential(1.0, n))  # noqa: E731
    calibration = Calibration.fit(draw(2000), rule="quantile:0.999")
    alike = ScoreShift(calibration)
    alike.add(draw(5000))
    assert alike.distance() < 0.05  # F(s) put the tie at its top: 0.61
    tied = ScoreShift(calibration)
    tied.add(np.zeros(5000))  # all in the tie: the lowest 60%, not like benign scores
    assert tied.distance() == pytest.approx(0.4, abs=0.02)


def test_a_threshold_on_fewer_than_20_validation_units_is_named_with_its_count():
    assert MIN_REFERENCE_UNITS == 20
    # 20 units: enough, whatever the rule; 19: too few, the threshold past its quantile
    assert reference_shortfall(Calibration.fit(np.arange(20.0), rule="quantile:0.999")) is None
    assert reference_shortfall(Calibration.fit(np.arange(19.0), rule="quantile:0.999"),
                               "window") == (
        "its threshold rests on 19 validation windows, fewer than the 20 a threshold needs (it "
        "is at or just above the largest of their scores, expected alert rate 5.26%)")
    # One unit: the threshold is its score, every benign unit like it alerts
    one = Calibration.fit(np.array([7.5]), np.array([0]), rule="quantile:0.999")
    assert (one.threshold, one.expected_alert_rate) == (7.5, 1.0)
    assert reference_shortfall(one, "window") == (
        "its threshold rests on 1 benign validation window, fewer than the 20 a threshold needs "
        "(it is at or just above that window's score, expected alert rate 100.00%)")
    # A quantile the units support still stands on too few of them: the count alone decides
    half = Calibration.fit(np.arange(10.0), rule="quantile:0.5")
    assert reference_shortfall(half, "edge") == (
        "its threshold rests on 10 validation edges, fewer than the 20 a threshold needs "
        "(expected alert rate 50.00%)")
