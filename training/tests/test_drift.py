"""Drift statistics: exact figures on hand-made samples, the dataset verdict, the guards, and a
real feature matrix against a shifted copy and an independent resample."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.datasets.drift import drift_report
from training.errors import ConfigError
from training.data_preprocessor import DataPreprocessor, LayerType
from training.tests.conftest import collect


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sum(p * np.log(p / q)))


def test_categorical_feature_exact_figures():
    # 2,000 rows of 0/1 (large reference, 2 values: Jensen-Shannon decides).
    reference = np.repeat([0.0, 1.0], 1000)[:, None]
    current = np.repeat([0.0, 1.0], [1500, 500])[:, None]
    report = drift_report(reference, current)
    f = report.features[0]
    # bins: value 0, value 1, values the reference lacks; counts smoothed by +0.5
    p = np.array([1000.5, 1000.5, 0.5]) / 2001.5
    q = np.array([1500.5, 500.5, 0.5]) / 2001.5
    m = (p + q) / 2
    js = np.sqrt((_kl(p, m) + _kl(q, m)) / 2 / np.log(2))
    assert f.method == "jensenshannon" and f.threshold == 0.1
    assert f.statistic == pytest.approx(js, rel=1e-12) and f.drifted == (js > 0.1)
    assert f.psi == pytest.approx(float(np.sum((q - p) * np.log(q / p))), rel=1e-12)
    assert f.kl_divergence == pytest.approx(_kl(q, p), rel=1e-12)
    assert f.wasserstein == pytest.approx(0.25 / 0.5)  # a quarter of the mass moves by 1; std 0.5


def test_continuous_feature_wasserstein_in_reference_stds():
    grid = np.arange(2000) / 2000.0
    std = grid.std()
    near = drift_report(grid[:, None], grid[:, None] + 0.01)
    far = drift_report(grid[:, None], grid[:, None] + 0.1)
    assert near.features[0].method == "wasserstein"
    assert near.features[0].statistic == pytest.approx(0.01 / std, rel=1e-9)
    assert far.features[0].statistic == pytest.approx(0.1 / std, rel=1e-9)
    assert not near.features[0].drifted and far.features[0].drifted
    assert far.features[0].psi > near.features[0].psi > 0


def test_small_reference_uses_the_ks_test():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(300, 2))
    current = np.column_stack([rng.normal(size=400), rng.normal(size=400) + 0.5])
    report = drift_report(reference, current)
    same, moved = report.features
    assert same.method == moved.method == "ks" and same.threshold == 0.05
    assert not same.drifted and moved.drifted and moved.statistic < 1e-6
    assert report.share == 0.5 and report.drifted  # at least half of the features drifted
    assert not drift_report(reference, current, drift_share=0.75).drifted
    assert report.drifted_features == ["feature_1"]


def test_guards_and_features_without_enough_values():
    rng = np.random.default_rng(1)
    with pytest.raises(ConfigError, match="at least 30 rows of current data, got 29"):
        drift_report(rng.random((100, 2)), rng.random((29, 2)))
    with pytest.raises(ConfigError, match="same features"):
        drift_report(rng.random((100, 2)), rng.random((100, 3)))
    with pytest.raises(ConfigError, match="drift_share must be in"):
        drift_report(rng.random((100, 2)), rng.random((100, 2)), drift_share=0)
    current = rng.random((100, 2)) + np.array([0.0, 5.0])
    current[:80, 0] = np.nan  # 20 finite values: below the minimum
    report = drift_report(rng.random((100, 2)), current)
    assert report.features[0].method == "not_assessed" and not report.features[0].drifted
    assert report.share == 1.0 and report.drifted  # one assessed feature, and it drifted
    json.dumps(report.to_dict(), allow_nan=False)


def test_a_feature_constant_and_equal_on_both_sides_is_left_out_of_the_share():
    """One value, the same on both sides (an unused slot): it cannot drift, so it neither
    drifts nor counts. Constant on both sides but another value is a drift like any other."""
    rng = np.random.default_rng(5)
    reference = np.column_stack([np.zeros(100), np.ones(100), rng.random(100)])
    current = np.column_stack([np.zeros(100), np.full(100, 2.0), rng.random(100)])
    report = drift_report(reference, current)
    assert [f.method for f in report.features] == ["constant", "ks", "ks"]
    assert [f.drifted for f in report.features] == [False, True, False]
    assert (report.counted, report.constant, report.share) == (2, 1, 0.5) and report.drifted
    assert report.to_dict()["counted"] == 2 and report.to_dict()["constant"] == 1


def test_subsampling_keeps_the_verdicts():
    rng = np.random.default_rng(2)
    reference = rng.random((20_000, 3))
    current = rng.random((20_000, 3)) + np.array([0.0, 0.0, 0.2])
    report = drift_report(reference, current, max_rows=2_000)
    assert [f.drifted for f in report.features] == [False, False, True]


# ---- real data ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_layer1(datasets) -> np.ndarray:
    """Layer-1 features of the 9,048 flows of a real labeled Zeek conn log."""
    table, _ = collect("zeek_logs", datasets / "stratosphere/011-zeek-mixed/data/conn.log.labeled")
    return DataPreprocessor().featurize(table, LayerType.LAYER1_SENSORY).arrays["features"]


def test_real_features_resample_does_not_drift_and_shifted_copy_does(real_layer1):
    rng = np.random.default_rng(3)
    order = rng.permutation(len(real_layer1))
    half_a, half_b = real_layer1[order[::2]], real_layer1[order[1::2]]
    same = drift_report(half_a, half_b)
    assert same.n_reference == 4524 and not same.drifted and same.share < 0.1
    shifted = drift_report(half_a, half_b + 0.05)
    assert shifted.drifted and shifted.share == 1.0
    # a shift in the byte and duration features only is seen there, not everywhere
    partial = half_b.copy()
    moved = np.flatnonzero(half_a.std(axis=0) > 0.05)[:10]
    partial[:, moved] += 0.05
    report = drift_report(half_a, partial)
    assert set(np.flatnonzero([f.drifted for f in report.features])) >= set(moved)
    assert not report.drifted


def test_another_network_drifts_once_the_unused_dims_are_left_out(real_layer1, datasets):
    """CTU-SME-11's flows against 011's: 57 of layer 1's 128 dims are unused slots, constant
    and equal on both sides; counted, they held the share at 41 of 128 (32%, no drift; trial
    D3). Of the 71 features that vary, 41 drift. 008, from 011's network, does not drift."""
    table, _ = collect("zeek_logs", datasets / "slips_ctu_sme_11_labeled_zeek/zeek-labeled/"
                                               "conn.log.labeled")
    other = DataPreprocessor().featurize(table, LayerType.LAYER1_SENSORY).arrays["features"]
    report = drift_report(real_layer1, other)
    assert (len(report.drifted_features), report.counted, report.constant) == (41, 71, 57)
    assert report.share == pytest.approx(41 / 71) and report.drifted
    both = np.vstack([real_layer1, other])
    one_value = np.flatnonzero(both.min(axis=0) == both.max(axis=0))
    assert [j for j, f in enumerate(report.features) if f.method == "constant"] == list(one_value)
    table, _ = collect("zeek_logs", datasets / "stratosphere/008-zeek-mixed/data/conn.log.labeled")
    near = DataPreprocessor().featurize(table, LayerType.LAYER1_SENSORY).arrays["features"]
    assert not drift_report(real_layer1, near).drifted


def test_real_nsl_kdd_small_reference(datasets):
    path = datasets / "nsl_kdd/KDDTrain+_20Percent.txt"
    rows = [line.split(",") for line in path.read_text().splitlines()]
    numeric = np.array([[float(v) for i, v in enumerate(r[:41]) if i not in (1, 2, 3)]
                        for r in rows[:6000]])
    rng = np.random.default_rng(4)
    order = rng.permutation(len(numeric))
    reference, current = numeric[order[:800]], numeric[order[800:]]
    same = drift_report(reference, current)
    assert {f.method for f in same.features} == {"ks", "constant"} and not same.drifted
    # land, num_outbound_cmds and is_host_login are 0 in all 6,000 rows: left out
    assert [f.name for f in same.features if f.method == "constant"] == [
        "feature_3", "feature_16", "feature_17"]
    shifted = drift_report(reference, current + current.std(axis=0))
    assert shifted.drifted and shifted.share == 1.0 and shifted.counted == 35
