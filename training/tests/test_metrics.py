"""Detection metrics against values computed by hand (the arithmetic is in the comments).

The fixture: 10 scores, 4 threats (T) and 6 benign (B), with two ties that straddle the
classes (0.80: T and B; 0.50: B and T) and one tie inside a class (0.20: B and B).

    row    0     1     2     3     4     5     6     7     8     9
    score  0.95  0.80  0.80  0.70  0.50  0.50  0.40  0.30  0.20  0.20
    label  T     T     B     T     B     T     B     B     B     B
"""

from __future__ import annotations

import numpy as np
import pytest

from training.errors import ConfigError, SchemaError
from training.evaluation import metrics as M
from training.evaluation.report_text import format_report
from training.evaluation.score_metrics import evaluate_probabilities, evaluate_scores
from training.evaluation.thresholds import calibrate_threshold

SCORES = np.array([0.95, 0.80, 0.80, 0.70, 0.50, 0.50, 0.40, 0.30, 0.20, 0.20])
LABELS = np.array([1, 1, 0, 1, 0, 1, 0, 0, 0, 0])
ATTACKS = np.array(["scan", "c2", "", "scan", "", "c2", "", "", "", ""])
HOUR = np.timedelta64(1, "h")
TIMES = np.datetime64("2026-01-01T00:00") + np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 48]) * HOUR


def test_roc_auc_by_hand():
    # ROC-AUC = P(threat score > benign score) + 1/2 P(tie), over 4 x 6 = 24 pairs:
    #   T 0.95 beats all 6 benign                                   -> 6
    #   T 0.80 ties B 0.80 (1/2), beats 0.5 0.4 0.3 0.2 0.2          -> 5.5
    #   T 0.70 loses to B 0.80, beats 0.5 0.4 0.3 0.2 0.2            -> 5
    #   T 0.50 ties B 0.50 (1/2), beats 0.4 0.3 0.2 0.2              -> 4.5
    # (6 + 5.5 + 5 + 4.5) / 24 = 21 / 24 = 0.875
    y = LABELS == 1
    assert M.roc_auc(SCORES, y) == pytest.approx(21 / 24, abs=1e-12)
    # The benign class's ROC-AUC is the same number (negated scores, swapped classes).
    assert M.roc_auc(-SCORES, ~y) == pytest.approx(21 / 24, abs=1e-12)


def test_pr_auc_by_hand():
    # Threat class: distinct thresholds from the top (a tie is one threshold):
    #   >= 0.95: TP 1, flagged 1 -> P 1,   R 1/4
    #   >= 0.80: TP 2, flagged 3 -> P 2/3, R 2/4
    #   >= 0.70: TP 3, flagged 4 -> P 3/4, R 3/4
    #   >= 0.50: TP 4, flagged 6 -> P 4/6, R 4/4   (lower thresholds add no recall)
    # AP = 1/4 (1 + 2/3 + 3/4 + 2/3) = 1/4 * 37/12 = 37/48
    y = LABELS == 1
    assert M.pr_auc(SCORES, y) == pytest.approx(37 / 48, abs=1e-12)
    # Benign class, lowest scores first (score <= t):
    #   <= 0.20: B 2, flagged 2 -> P 1,   R 2/6
    #   <= 0.30: B 3, flagged 3 -> P 1,   R 3/6
    #   <= 0.40: B 4, flagged 4 -> P 1,   R 4/6
    #   <= 0.50: B 5, flagged 6 -> P 5/6, R 5/6
    #   <= 0.70: B 5 (no new recall)
    #   <= 0.80: B 6, flagged 9 -> P 6/9, R 6/6
    # AP = 2/6 + 1/6 + 1/6 + (1/6)(5/6) + (1/6)(6/9) = 24/36 + 5/36 + 4/36 = 33/36 = 11/12
    assert M.pr_auc(-SCORES, ~y) == pytest.approx(11 / 12, abs=1e-12)


def test_detection_at_fpr_never_splits_ties():
    # 6 benign rows: FPR <= 1% allows floor(0.06) = 0 false positives, FPR <= 0.1% allows
    # floor(0.006) = 0. The lowest threshold with 0 benign at or above it is 0.95 (at 0.80 the
    # benign row tied with the threat would alert): 1 threat of 4 -> 0.25 at both rates.
    # A rule that cut inside the 0.80 tie with the threat first would claim 2/4.
    y = LABELS == 1
    for target in (0.01, 0.001):
        point = M.detection_at_fpr(SCORES, y, target)
        assert point == {"max_fpr": target, "detection_rate": 0.25, "threshold": 0.95,
                         "fpr": 0.0, "false_positives": 0, "allowed_false_positives": 0}
    # At FPR <= 1/3 (2 false positives allowed) the threshold goes down to 0.50: B 0.80 and
    # B 0.50 alert (2 = allowed) and all 4 threats are caught.
    assert M.detection_at_fpr(SCORES, y, 1 / 3)["detection_rate"] == 1.0
    assert M.detection_at_fpr(SCORES, y, 1 / 3)["threshold"] == 0.5
    # 1 false positive allowed (1/6 <= f < 2/6): 0.80 qualifies (B 0.80 alone), 0.50 does
    # not (B 0.80 and B 0.50), so T 0.95, T 0.80, T 0.70 -> 3/4.
    assert M.detection_at_fpr(SCORES, y, 0.2)["detection_rate"] == 0.75


def test_detection_at_fpr_when_the_top_score_is_benign():
    # The highest score is benign and alone: no threshold has 0 false positives; nothing alerts.
    scores = np.array([0.9, 0.5, 0.4, 0.1])
    point = M.detection_at_fpr(scores, np.array([False, True, False, True]), 0.01)
    assert (point["detection_rate"], point["threshold"], point["fpr"]) == (0.0, None, 0.0)


def test_calibrated_threshold_by_hand():
    # Both classes present -> best F1 over the distinct thresholds, F1 = 2 TP / (flagged + 4):
    #   >= 0.95: 2*1/(1+4) = 0.4     >= 0.80: 2*2/(3+4) = 0.571   >= 0.70: 2*3/(4+4) = 0.75
    #   >= 0.50: 2*4/(6+4) = 0.8     >= 0.40: 2*4/(7+4) = 0.727   (lower: smaller still)
    t = calibrate_threshold(SCORES, LABELS, method="best_f1")
    assert (t.value, t.method) == (0.5, "best_f1")
    # "auto" takes best F1 only with 5 units of each class (`MIN_CLASS_UNITS`); with 4 threats
    # it is the benign quantile below (with one threat, best F1 sits at that threat's score).
    assert calibrate_threshold(SCORES, LABELS).method == "benign_quantile"
    # Benign 99th percentile ("higher" rule): sorted benign 0.2 0.2 0.3 0.4 0.5 0.8, position
    # 0.99 * (6 - 1) = 4.95 -> rounded up to index 5 -> 0.8. The median: 2.5 -> index 3 -> 0.4.
    assert calibrate_threshold(SCORES, LABELS, method="quantile").value == 0.8
    assert calibrate_threshold(SCORES, LABELS, method="quantile", quantile=0.5).value == 0.4


def test_metrics_at_the_calibrated_threshold_by_hand():
    # Threshold 0.5: rows 0-5 alert. TP = rows 0 1 3 5 = 4, FP = rows 2 4 = 2, FN = 0,
    # TN = rows 6-9 = 4. Threat: precision 4/6, recall 4/4, F1 2(2/3)(1)/(2/3 + 1) = 0.8.
    # Benign: precision TN/(TN+FN) = 4/4, recall TN/6 = 4/6, F1 0.8. Accuracy 8/10.
    m = evaluate_scores(SCORES, LABELS, ATTACKS, TIMES,
                        calibrate_threshold(SCORES, LABELS, method="best_f1"))
    assert m.confusion_matrix == [[4, 2], [0, 4]]
    assert (m.accuracy, m.precision, m.recall) == (0.8, pytest.approx(4 / 6), 1.0)
    assert m.f1_score == pytest.approx(0.8)
    benign = m.per_class_metrics["benign"]
    assert (benign["precision"], benign["recall"]) == (1.0, pytest.approx(4 / 6))
    assert benign["pr_auc"] == pytest.approx(11 / 12) and m.pr_auc == pytest.approx(37 / 48)
    assert m.threshold == 0.5 and m.threshold_source == "best_f1 (10 scores)"
    # Timestamps span 48 h = 2 days; 6 alerts -> 3 a day, 2 of them benign -> 1 false a day.
    assert m.alerts == {"span_days": 2.0, "n_alerts": 6, "alerts_per_day": 3.0,
                        "false_alerts_per_day": 1.0}
    # Per attack type: both c2 (rows 1, 5) and both scans (0, 3) alert at 0.5; at the FPR-1%
    # operating point (threshold 0.95) only scan row 0 does.
    assert m.per_attack_type == {
        "c2": {"count": 2, "detected_threshold": 2, "rate_threshold": 1.0,
               "detected_fpr_0.01": 0, "rate_fpr_0.01": 0.0},
        "scan": {"count": 2, "detected_threshold": 2, "rate_threshold": 1.0,
                 "detected_fpr_0.01": 1, "rate_fpr_0.01": 0.5}}


def test_unknown_labels_are_left_out_and_counted():
    scores = np.r_[SCORES, 5.0, 0.0, 0.85]  # unknown rows at extreme places change nothing
    labels = np.r_[LABELS, -1, -1, -1]
    m = evaluate_scores(scores, labels, threshold=0.5)
    assert (m.n_samples, m.n_unknown_excluded) == (10, 3)
    assert m.roc_auc == pytest.approx(0.875) and m.confusion_matrix == [[4, 2], [0, 4]]
    # ... but they do alert, so they count in the alert volume.
    times = np.r_[TIMES, TIMES[:3]]
    assert evaluate_scores(scores, labels, timestamps=times, threshold=0.5).alerts["n_alerts"] == 8


def test_without_a_threshold_only_threshold_free_metrics():
    m = evaluate_scores(SCORES, LABELS, timestamps=TIMES)
    assert m.threshold is None and m.confusion_matrix is None and m.accuracy is None
    assert m.alerts is None and m.roc_auc == pytest.approx(0.875)
    assert any("checkpoint sidecar" in note and "calibrate_threshold" in note for note in m.notes)


def test_one_class_gives_no_auc_and_no_figures_of_the_missing_class():
    m = evaluate_scores(SCORES[LABELS == 0], np.zeros(6, int), threshold=0.5)
    assert m.roc_auc is None and m.pr_auc is None
    assert m.detection_at_fpr["0.01"]["detection_rate"] is None
    # No threat row: the threat class's figures are undefined, not 0 (2 alerts, both false).
    assert m.confusion_matrix == [[4, 2], [0, 0]] and m.accuracy == pytest.approx(4 / 6)
    assert (m.precision, m.recall, m.f1_score) == (None, None, None)
    assert m.per_class_metrics["threat"] == {"support": 0, "roc_auc": None, "pr_auc": None,
                                             "precision": None, "recall": None,
                                             "f1_score": None}
    assert m.per_class_metrics["benign"]["recall"] == pytest.approx(4 / 6)
    assert m.to_dict()["f1_score"] is None
    assert ("The test part has one class: 6 benign and 0 threat units (only benign), so "
            "ROC-AUC, PR-AUC, detection rates and the threat class's precision, recall and F1 "
            "are not defined; the rest is shown.") in m.notes
    assert "accuracy 0.6667   precision n/a   recall n/a   F1 n/a   (threat class)" in \
        format_report(m)
    # Threats only: recall is defined (all 4 alert); precision and F1 are not, though their
    # formulas give 1: with no benign unit no alert can be false (trial H, D4: "perfect").
    m = evaluate_scores(SCORES[LABELS == 1], np.ones(4, int), threshold=0.5)
    assert (m.precision, m.recall, m.f1_score) == (None, 1.0, None)
    assert m.per_class_metrics["benign"]["precision"] is None
    assert ("ROC-AUC, PR-AUC, detection rates and the benign class's precision, recall and F1, "
            "and the threat class's precision and F1 (with no benign unit no alert can be "
            "false) are not defined") in m.notes[0]
    assert "precision n/a   recall 1.0000   F1 n/a" in format_report(m)


def test_a_class_without_rows_is_left_out_of_the_macro_averages():
    # Labels 0 0 1 1, no row of class 2; predictions 0 2 1 1: class 2 is predicted once.
    p = np.array([[0.8, 0.1, 0.1], [0.2, 0.2, 0.6], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1]])
    m = evaluate_probabilities(p, np.array([0, 0, 1, 1]), ["a", "b", "c"])
    assert m.per_class_metrics["c"]["precision"] is None and m.recall == pytest.approx(0.75)
    # a: P 1 R 1/2 F1 2/3; b: P 1 R 1 F1 1.
    assert m.precision == 1.0 and m.f1_score == pytest.approx((2 / 3 + 1) / 2)


def test_bad_input_is_refused_with_the_reason():
    with pytest.raises(SchemaError, match="not finite .*row 2"):
        evaluate_scores([0.1, 0.2, np.nan], [0, 1, 0])
    with pytest.raises(SchemaError, match="row 1 is 2"):
        evaluate_scores([0.1, 0.2], [0, 2])
    with pytest.raises(SchemaError, match="3 entries for 2 scores"):
        evaluate_scores([0.1, 0.2], [0, 1, 1])
    with pytest.raises(SchemaError, match="all 2 rows are unknown"):
        evaluate_scores([0.1, 0.2], [-1, -1])
    with pytest.raises(SchemaError, match="attack_types has 1 entries"):
        evaluate_scores([0.1, 0.2], [0, 1], attack_types=["x"])
    with pytest.raises(ConfigError, match="fpr_targets must be in"):
        evaluate_scores([0.1, 0.2], [0, 1], fpr_targets=(0.0,))
    with pytest.raises(ConfigError, match="threshold must be a finite"):
        evaluate_scores([0.1, 0.2], [0, 1], threshold=float("inf"))


def test_classifier_metrics_by_hand():
    # Three classes, 6 rows; predictions (argmax): 0 0 1 1 2 1 for labels 0 0 1 1 2 2.
    p = np.array([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.1, 0.8, 0.1],
                  [0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.1, 0.6, 0.3]])
    y = np.array([0, 0, 1, 1, 2, 2])
    m = evaluate_probabilities(np.r_[p, [[1.0, 0, 0]]], np.r_[y, -1], class_names=["a", "b", "c"])
    assert (m.n_samples, m.n_unknown_excluded) == (6, 1)
    assert m.confusion_matrix == [[2, 0, 0], [0, 2, 0], [0, 1, 1]]
    # a: P 2/2 R 2/2; b: P 2/3 R 2/2 F1 0.8; c: P 1/1 R 1/2 F1 2/3. Macro F1 (1 + 0.8 + 2/3) / 3.
    assert m.per_class_metrics["b"]["precision"] == pytest.approx(2 / 3)
    assert m.per_class_metrics["c"]["recall"] == 0.5
    assert m.f1_score == pytest.approx((1 + 0.8 + 2 / 3) / 3)
    assert m.accuracy == pytest.approx(5 / 6)
    # One-vs-rest ROC-AUC of c: c scores 0.8, 0.3 against 0.1 0.2 0.1 0.3 -> pairs (2 x 4):
    # 0.8 beats 4; 0.3 beats 3 and ties 1 (1/2) -> 7.5 / 8.
    assert m.per_class_metrics["c"]["roc_auc"] == pytest.approx(7.5 / 8)


def test_a_capture_of_minutes_gives_its_alert_count_and_span_not_a_rate_per_day(datasets):
    # CTU-SME-11's first 5,000 packets: 8 minutes of conn records, whose 2 alerts the report
    # extrapolated to "alerts per day 1730.6 ... over 0.00 days".
    from training.tests.conftest import collect

    events, _ = collect("zeek_logs",
                        datasets / "slips_ctu_sme_11_labeled_zeek/zeek-labeled/conn.log.labeled")
    times = events["timestamp"].to_numpy()
    labels = np.asarray(events["is_threat"].to_numpy(zero_copy_only=False), np.int64)
    scores = np.zeros(len(times))
    scores[:2] = 1.0  # two alerts
    m = evaluate_scores(scores, labels, None, times, 0.5)
    minutes = (times.max() - times.min()) / np.timedelta64(1, "m")
    assert 7 < minutes < 9
    assert m.alerts == {"span_days": pytest.approx(minutes / 1440), "n_alerts": 2,
                        "alerts_per_day": None, "false_alerts_per_day": None}
    text = format_report(m)
    assert f"  2 alerts over {minutes:.1f} minutes (under an hour: no per-day rate)" in text
    assert "alerts per day" not in text
    # An hour and more keeps the rate (2 alerts over exactly 1 h: 48 a day).
    hour = np.array([0, 3600], "datetime64[s]").astype("datetime64[us]")
    assert M.alerts_per_day(np.array([True, True]), np.array([True, False]), hour) == {
        "span_days": 1 / 24, "n_alerts": 2, "alerts_per_day": 48.0, "false_alerts_per_day": 24.0}
