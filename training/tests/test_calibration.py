"""The calibration object: the benign validation score distribution, with the threshold, tail
probabilities and percentiles that come from it; the rules; models saved before it existed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from training.errors import ConfigError, SchemaError
from training.evaluation.calibration import LEVELS, Calibration
from training.evaluation.threshold_rules import ThresholdRule, ordinal_percentile, parse_rule

START = np.datetime64("2024-06-01T00:00:00", "us")
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "v0_1"


def test_the_quantile_rule_on_hand_made_scores():
    # 1000 scores 0.000 .. 0.999: the 0.999-quantile ("higher") is the last one, 0.999; one
    # score of the 1000 is at or above it.
    scores = np.arange(1000) / 1000
    c = Calibration.fit(scores, rule="quantile")
    assert (c.threshold, c.method, c.quantile, c.n_scores) == (0.999, "quantile", 0.999, 1000)
    assert c.reference == "all" and c.expected_alert_rate == 0.001
    assert c.rule == "unlabeled: threshold at the 99.9th percentile of validation scores"
    assert c.to_threshold().to_dict() == {"value": 0.999, "method": "quantile",
                                          "quantile": 0.999, "n_scores": 1000, "rule": c.rule}
    # 0.5-quantile of 0 .. 9: positions 4.5 -> "higher" -> index 5
    assert Calibration.fit(np.arange(10.0), rule="quantile:0.5").threshold == 5.0


def test_tail_probability_and_percentile_by_hand():
    # Scores 0..100: the quantiles are the identity (linear interpolation), so F(s) = s / 100.
    c = Calibration.fit(np.arange(101.0), rule="quantile:0.99")
    assert len(c.levels) == len(c.values) == len(LEVELS) == 128
    np.testing.assert_allclose(c.percentile([-1, 0, 25.5, 50, 99.5, 100, 1e9]),
                               [0, 0, 25.5, 50, 99.5, 100, 100])
    # p(s) = (1 + n (1 - F(s))) / (n + 1) with n = 101; above the largest score (100) an
    # exponential tail whose scale is the mean excess over the 0.9-quantile: 5 for 90..100
    assert c.tail_scale == pytest.approx(5.0)
    np.testing.assert_allclose(c.tail_probability([-1, 50, 100, 110, 1e9]),
                               [1.0, (1 + 101 * 0.5) / 102, 1 / 102, np.exp(-2) / 102,
                                np.finfo(np.float64).tiny])
    # higher scores are never more likely under benign traffic, and far ones are told apart
    p = c.tail_probability(np.linspace(-5, 150, 300))
    assert (np.diff(p) <= 1e-12).all() and (np.diff(p[p < 1 / 102]) < 0).all()


def test_too_few_scores_above_the_tails_start_keep_the_floor():
    # 99 scores leave fewer than MIN_TAIL_SCORES (10) above the 0.9-quantile: a scale from so
    # few would push every later unit far into the tail (a validation part of a few windows),
    # so past the largest score p falls from 1 / (n + 1), as conformal, by half at most: the
    # order kept, no more evidence claimed. 100 are enough.
    few = Calibration.fit(np.arange(99.0), rule="quantile:0.99")
    assert few.tail_scale == 0.0
    p = few.tail_probability([98, 110, 1e9])
    assert p[0] == 1 / 100 and 1 / 200 < p[2] < p[1] < 1 / 100
    np.testing.assert_allclose(p[1:], [(1 + 1 / (1 + 12 / 98)) / 200, 1 / 200], rtol=1e-6)
    assert Calibration.fit(np.arange(100.0), rule="quantile:0.99").tail_scale > 0


def test_a_calibration_saved_before_the_tail_keeps_the_floor():
    # Its p-values, and a fused threshold set on them, must not move when read back.
    saved = Calibration.fit(np.arange(101.0), rule="quantile:0.99").to_dict()
    del saved["tail"]
    old = Calibration.from_dict(saved)
    assert old.tail == "floor" and old.tail_scale == 0.0
    np.testing.assert_allclose(old.tail_probability([100, 110]), [1 / 102] * 2)
    with pytest.raises(SchemaError, match="tail must be"):
        Calibration.from_dict({**saved, "tail": "gamma"})


def test_the_exponential_tail_follows_exponential_scores():
    rng = np.random.default_rng(0)
    c = Calibration.fit(rng.exponential(2.0, 100_000), rule="quantile:0.99")
    assert c.tail_scale == pytest.approx(2.0, rel=0.03)
    # P(X >= m + 4) for an exponential with mean 2 is P(X >= m) e**-2: so is the tail's
    far = c.values[-1] + 4.0
    assert c.tail_probability([far])[0] == pytest.approx(np.exp(-2.0) / 100_001, rel=0.1)
    flat = Calibration.fit(np.ones(50), rule="quantile:0.9")  # no spread: the floor stays
    assert flat.tail_scale == 0.0 and flat.tail_probability([5.0])[0] == 1 / 51


def test_ties_and_nan_do_not_break_the_distribution():
    scores = np.array([1.0] * 50 + [2.0] * 50 + [np.nan, np.inf])
    c = Calibration.fit(scores, rule="quantile:0.9")
    # The 0.9-quantile, 2.0, is tied with half the scores: a threshold there would alert on
    # 50% of units like these, not 10%, so it moves just above the largest score, where a
    # new benign unit alerts at the conformal rate 1 / (n + 1) (one float32 step above, as
    # models score in float32).
    assert c.n_scores == 100 and c.threshold == np.nextafter(np.float32(2.0), np.float32(3.0))
    assert c.expected_alert_rate == 1 / 101
    assert c.cdf(np.array([0.5, 1.0, 1.5, 2.0, 3.0])).tolist()[0] == 0.0
    assert c.cdf(np.array([2.0]))[0] == 1.0 and np.isnan(c.cdf(np.array([np.nan]))[0])


def test_a_score_in_a_tie_is_as_common_as_its_tie():
    # A user's IoT-23 run: 4% of the benign validation scores tied at the largest (NTP flows
    # the model reconstructs alike), and 25% of a new capture's flows on that same score. Each
    # read as past every benign score (percentile 100, p = 1 / (n + 1)), and thirty of them in
    # an hour outranked the real C&C alerts as an incident. Tied, they are as common as the
    # tie: about 4% of benign scores are at or above them.
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(0.0, 1.0, 960), np.full(40, 6.27)])
    c = Calibration.fit(scores, np.zeros(1000, int), rule="quantile:0.999")
    assert c.threshold > 6.27  # the tie holds more than the budget: it does not alert
    tail, percentile = c.tail_probability([6.27])[0], c.percentile([6.27])[0]
    assert 0.02 < tail < 0.06 and 94 < percentile < 98
    assert tail == pytest.approx(1 - percentile / 100, abs=1 / 1001)  # one count of both
    # past the tie, the conformal floor and the tail as before; without ties nothing moves
    assert c.tail_probability([6.28])[0] < 1 / 1001 and c.percentile([6.28])[0] == 100
    smooth = Calibration.fit(rng.normal(0.0, 1.0, 1000), np.zeros(1000, int))
    s = np.linspace(-4, 4, 50)
    np.testing.assert_allclose(smooth.percentile(s), 100 * smooth.cdf(s))


def test_a_threshold_in_a_tie_that_holds_more_than_the_budget_moves_past_it():
    # 45 identical units at the 0.9-quantile (as repeated benign DNS queries score): the
    # threshold goes to the next score above them, and 5% alert, within the 10% asked.
    scores = np.array([1.0] * 50 + [2.0] * 45 + [3.0, 4.0, 5.0, 6.0, 7.0])
    c = Calibration.fit(scores, rule="quantile:0.9")
    assert (c.threshold, c.expected_alert_rate) == (3.0, 0.05)
    # A tie that keeps the alerts within twice the budget (and one unit) stays where it is.
    c = Calibration.fit(np.array([1.0] * 89 + [2.0] * 11), rule="quantile:0.9")
    assert (c.threshold, c.expected_alert_rate) == (2.0, 0.11)


def test_a_threshold_above_a_tie_at_the_largest_score_is_above_it_in_float32_too():
    # A user's IoT-23 44-1 run: 16 of 48 benign validation scores tied at the largest, 27.0048.
    # One float64 ulp above it read as equal to the float32 scores (numpy compares a float32
    # array with a float in float32): the run's alerts file had 32 alerts, its figures 1.
    tied = np.float32(27.004802703857422)
    scores = np.concatenate([np.linspace(20, 26, 32, dtype=np.float32), np.full(16, tied)])
    c = Calibration.fit(scores, np.zeros(48, int), rule="quantile:0.999")
    assert c.threshold > tied and np.float32(c.threshold) == c.threshold
    assert not (scores >= c.threshold).any()  # float32 compare
    assert not (scores.astype(np.float64) >= c.threshold).any()
    assert c.expected_alert_rate == 1 / 49


def test_reference_units_are_the_benign_ones_or_all():
    scores = np.array([0.1, 0.2, 0.3, 0.4, 9.0, 8.0])
    labels = np.array([0, 0, 0, 0, 1, -1])
    benign = Calibration.fit(scores, labels, reference=labels == 0, rule="quantile:0.5")
    assert (benign.reference, benign.n_scores, benign.threshold) == ("benign", 4, 0.3)
    assert benign.rule == ("benign labels: threshold at the 50th percentile of benign "
                           "validation scores")
    everything = Calibration.fit(scores, labels, reference=np.ones(6, bool), rule="quantile:0.5")
    assert (everything.reference, everything.n_scores, everything.threshold) == ("all", 6, 0.4)
    assert Calibration.fit(scores, labels, reference=labels != 1).reference == "not_threat"
    # Every validation unit labeled benign: the rule says benign labels, not "unlabeled".
    all_benign = Calibration.fit(scores[:4], labels[:4], reference=np.ones(4, bool),
                                 rule="quantile:0.5")
    assert all_benign.rule.startswith("benign labels: ")


def test_auto_is_the_trainers_old_rule():
    scores = np.array([0.95, 0.80, 0.80, 0.70, 0.50, 0.50, 0.40, 0.30, 0.20, 0.20])
    labels = np.array([1, 1, 0, 1, 0, 1, 0, 0, 0, 0])
    best = Calibration.fit(scores, labels, rule="best-f1")  # best F1 at 0.5 (see test_metrics)
    assert (best.method, best.threshold, best.n_benign, best.n_threat) == ("best_f1", 0.5, 6, 4)
    assert best.rule == ("labeled: threshold with the best F1 on validation units (6 benign, 4 "
                         "threat)")
    # "auto" takes best F1 with at least 5 units of each class (trial Q: on one threat it put
    # the threshold at that threat's score, and 24% of the units alerted); with 4, the benign
    # 0.99-quantile.
    four = Calibration.fit(scores, labels)
    assert (four.method, four.quantile, four.threshold) == ("benign_quantile", 0.99, 0.8)
    five = Calibration.fit(np.r_[scores, 0.9], np.r_[labels, 1])
    assert (five.method, five.n_benign, five.n_threat) == ("best_f1", 6, 5)
    benign_only = Calibration.fit(scores[labels == 0], np.zeros(6, int))
    assert (benign_only.method, benign_only.quantile, benign_only.threshold) == (
        "benign_quantile", 0.99, 0.8)
    unlabeled = Calibration.fit(scores, np.full(10, -1))
    assert (unlabeled.method, unlabeled.quantile, unlabeled.reference) == ("quantile", 0.999, "all")


def test_alerts_per_day_on_validation_spanning_two_days():
    # 2,000 units over two days = 1,000 a day; 5 alerts a day -> share 0.005 -> the
    # 0.995-quantile of 0 .. 1999, "higher": position 1989.005 -> 1990.
    times = START + (np.arange(2000) * (2 * 86_400e6 / 1999)).astype("timedelta64[us]")
    c = Calibration.fit(np.arange(2000.0), times=times, rule="alerts-per-day:5")
    assert c.method == "alerts_per_day" and c.alerts_per_day == 5.0
    assert c.span_days == pytest.approx(2.0) and c.quantile == pytest.approx(0.995)
    assert c.threshold == 1990.0 and c.expected_alert_rate == 0.005
    assert c.rule == ("unlabeled: threshold for 5 alerts per day (the 99.5th percentile of "
                      "validation scores)")


@pytest.mark.parametrize("kwargs, message", [
    ({"rule": "alerts-per-day:5", "times": START + np.arange(10) * np.timedelta64(1, "h")},
     r"needs validation data spanning at least a day; it spans 9 hours; use a longer capture "
     r"or the rule quantile:Q"),
    ({"rule": "alerts-per-day:5"}, r"it spans no known time"),
    ({"rule": "best-f1", "labels": np.zeros(10, int)},
     r"needs validation units of both classes; got 10 benign and 0 threat; use the rule "
     r"quantile"),
    ({"reference": np.zeros(10, bool)},
     r"no finite validation score to calibrate a threshold on: .* give the run more data"),
])
def test_calibration_errors_say_what_to_do(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Calibration.fit(np.arange(10.0), **kwargs)


@pytest.mark.parametrize("text, rule", [
    ("quantile", ThresholdRule("quantile", 0.999)),
    ("quantile:0.99", ThresholdRule("quantile", 0.99)),
    ("alerts_per_day:12", ThresholdRule("alerts-per-day", 12.0)),
    ("best_f1", ThresholdRule("best-f1", None)), ("AUTO", ThresholdRule("auto", None)),
])
def test_rules_read_the_same_in_flags_and_toml(text, rule):
    assert parse_rule(text) == rule and parse_rule(str(rule)) == rule


@pytest.mark.parametrize("text, message", [
    ("quantile:0", r"in \(0, 1\), got 0.0"), ("quantile:1", r"in \(0, 1\), got 1.0"),
    ("quantile:x", r"'x' is not a number"), ("alerts-per-day", r"needs the number of alerts"),
    ("alerts-per-day:0", r"number of alerts > 0, got 0.0"), ("best-f1:3", "takes no number"),
    ("top10", r"must be one of quantile\[:Q\], alerts-per-day:N, best-f1 or auto"),
])
def test_bad_rules_are_refused_with_the_forms(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_rule(text)


def test_round_trip_and_a_damaged_calibration():
    c = Calibration.fit(np.arange(100.0), rule="quantile:0.95")
    data = json.loads(json.dumps(c.to_dict()))
    assert Calibration.from_dict(data) == c and data["rule"] == c.rule
    with pytest.raises(SchemaError, match="format 'x'"):
        Calibration.from_dict({**data, "format": "x"})
    with pytest.raises(SchemaError, match="missing threshold"):
        Calibration.from_dict({k: v for k, v in data.items() if k != "threshold"})
    with pytest.raises(SchemaError, match="non-decreasing"):
        Calibration.from_dict({**data, "values": data["values"][::-1]})


def test_ordinal_percentiles():
    assert [ordinal_percentile(q) for q in (0.999, 0.99, 0.5, 0.01, 0.02, 0.9995, 0.11)] == [
        "99.9th", "99th", "50th", "1st", "2nd", "99.95th", "11th"]


def test_a_model_saved_before_calibrations_loads_with_its_threshold(tmp_path):
    """The 0.1.0 checkpoint's sidecar has no calibration: it loads, keeps its threshold and
    says it has no calibration (test_compat_v0_1 checks its scores)."""
    from training.artifacts.model_files import load_model

    shutil.copytree(FIXTURES / "quickstart" / "checkpoints", tmp_path, dirs_exist_ok=True)
    loaded = load_model(tmp_path / "layer1_vae_best.pt")
    assert "calibration" not in loaded.sidecar and loaded.calibration is None
    assert loaded.threshold == loaded.sidecar["anomaly_threshold"] is not None
    assert loaded.threshold_rule is None


def test_the_evaluator_names_a_calibrated_thresholds_rule():
    from training.evaluation.evaluator import ModelEvaluator

    c = Calibration.fit(np.arange(1000.0), rule="quantile")
    assert ModelEvaluator._threshold_source("checkpoint sidecar", c.to_threshold().to_dict()) == (
        "checkpoint sidecar: unlabeled: threshold at the 99.9th percentile of validation scores")


def test_a_validation_part_too_small_for_the_quantile_says_so_in_the_rule():
    # 6 scores and the 99.9th percentile (the trial's layer 2 on zeek_zat): the threshold is
    # the largest score, and one unit in 6 like them alerts, not one in 1,000.
    small = Calibration.fit(np.arange(6.0), rule="quantile:0.999")
    assert small.threshold == 5.0 and small.expected_alert_rate == pytest.approx(1 / 6)
    assert small.rule == ("unlabeled: threshold at the 99.9th percentile of validation scores "
                          "- 6 of them cannot support that percentile, so the threshold is at "
                          "or just above the largest (expected alert rate 16.67%)")
    big = Calibration.fit(np.arange(1000.0), rule="quantile:0.999")  # 1 score above: enough
    assert big.rule == "unlabeled: threshold at the 99.9th percentile of validation scores"
