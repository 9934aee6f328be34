"""Bootstrap metrics (training/evaluation/bootstrap.py): the evaluator's definitions exactly,
stratified resamples, and paired intervals."""

from __future__ import annotations

import numpy as np
import pytest

from training.evaluation.bootstrap import (
    bootstrap_draws, paired_interval, resample_counts, weighted_metrics,
)
from training.evaluation.metrics import detection_at_fpr, pr_auc, roc_auc


def test_unit_weights_give_the_evaluators_metrics_on_tied_scores():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(4, 80))
        y = rng.random(n) < rng.uniform(0.05, 0.95)
        if y.all() or not y.any():
            continue
        scores = rng.integers(0, int(rng.integers(2, 12)), n).astype(np.float64)  # many ties
        got = weighted_metrics(scores, y, np.ones((1, n), np.int64))
        assert got["roc_auc"][0] == pytest.approx(roc_auc(scores, y), abs=1e-15)
        assert got["pr_auc"][0] == pytest.approx(pr_auc(scores, y), abs=1e-15)
        assert got["dr_at_fpr"][0] == pytest.approx(
            detection_at_fpr(scores, y, 0.01)["detection_rate"], abs=1e-15)


def test_counts_weigh_units_like_repeated_rows():
    scores = np.array([0.9, 0.8, 0.8, 0.3, 0.1])
    y = np.array([True, False, True, False, False])
    counts = np.array([[2, 1, 0, 3, 1]])
    repeated = np.repeat(np.arange(5), counts[0])
    got = weighted_metrics(scores, y, counts)
    assert got["roc_auc"][0] == pytest.approx(roc_auc(scores[repeated], y[repeated]))
    assert got["pr_auc"][0] == pytest.approx(pr_auc(scores[repeated], y[repeated]))


def test_resamples_keep_each_class_size():
    y = np.array([True] * 3 + [False] * 7)
    counts = resample_counts(y, 50, np.random.default_rng(1))
    assert (counts[:, y].sum(1) == 3).all() and (counts[:, ~y].sum(1) == 7).all()


def test_paired_interval_of_a_method_against_itself_is_zero():
    rng = np.random.default_rng(2)
    labels = (rng.random(200) < 0.3).astype(np.int64)
    labels[:5] = -1  # unknown units are left out
    a, b = rng.random((3, 200)), rng.random((3, 200))
    point, draws = bootstrap_draws({"a": a, "b": b, "a again": a.copy()}, labels, 100,
                                   np.random.default_rng(3))
    assert paired_interval(draws, "a", "a again", "roc_auc") == [0.0, 0.0]
    assert point["a"]["roc_auc"]["per_seed"] == pytest.approx(
        [roc_auc(s[5:], labels[5:] == 1) for s in a], abs=1e-12)
    low, high = paired_interval(draws, "a", "b", "roc_auc")
    assert low < point["a"]["roc_auc"]["mean"] - point["b"]["roc_auc"]["mean"] < high
