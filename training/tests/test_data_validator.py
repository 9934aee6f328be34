"""DataValidator: the original expectations, exact figures on hand-made data, reports."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from training.datasets.validator import DataValidator, ValidationResult, ValidationSeverity
from training.errors import ConfigError, SchemaError


def _by_name(result: ValidationResult, name: str) -> list:
    return [i for i in result.issues if i.check_name == name]


def test_original_expectations():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(100, 10))
    features[0, 0] = np.nan
    features[1, 1] = np.inf
    features[2:5, 2] = 1000.0
    features[:, 3] = 5.0
    labels = np.array([0] * 90 + [1] * 5 + [2] * 5)
    result = DataValidator(features, labels).validate()
    names = set(result.issue_names())
    assert {"missing_values", "outliers", "labels", "constant_features"} <= names
    assert not result.passed  # an infinite value is an error
    assert result.statistics["labels"]["imbalance_ratio"] == 18.0
    assert result.statistics["outliers"]["per_feature"][2] == 3


def test_missing_values_exact():
    features = np.array([[1.0, 0.0], [2.0, np.nan], [3.0, 0.0], [np.inf, 1.0]])
    result = DataValidator(features, np.array([0, 1, 0, 1])).validate(
        check_outliers=False, check_distributions=False, missing_threshold=0.3)
    nan, inf = _by_name(result, "missing_values")
    assert nan.severity is ValidationSeverity.WARNING  # 25% missing <= 30%
    assert nan.details == {"kind": "nan", "per_feature": {"feature_1": 1}, "max_share": 0.25}
    assert inf.severity is ValidationSeverity.ERROR and inf.details["per_feature"] == {"feature_0": 1}
    assert result.statistics["missing"] == {"nan": 1, "inf": 1}
    assert result.statistics["features"]["mean"] == [2.0, 1 / 3]  # over the finite values
    strict = DataValidator(features).validate(missing_threshold=0.2)
    assert _by_name(strict, "missing_values")[0].severity is ValidationSeverity.ERROR


def test_outliers_exact():
    # 19 zeros and one 100: mean 5, std sqrt(475); z(100) = 4.36, z(0) = 0.23
    column = np.array([0.0] * 19 + [100.0])
    features = np.column_stack([column, np.arange(20.0)])
    (issue,) = _by_name(DataValidator(features).validate(), "outliers")
    assert issue.severity is ValidationSeverity.WARNING  # 5% of feature_0 > 1%
    assert issue.details["per_feature"] == {"feature_0": 1} and issue.details["max_share"] == 0.05
    assert not _by_name(DataValidator(features).validate(outlier_threshold=4.5), "outliers")
    std = DataValidator(features).validate().statistics["features"]["std"][0]
    assert std == pytest.approx(np.sqrt(475.0))


@pytest.mark.parametrize("labels, messages", [
    ([0] * 10 + [1], []),  # exactly 10:1 is not called imbalanced
    ([0] * 11 + [1], ["imbalanced 11.0:1"]),
    ([0] * 5 + [-1] * 3, ["one class only (0)", "3 row(s) have no known label"]),
    ([-1] * 4, ["no row has a known label", "4 row(s) have no known label"]),
])
def test_label_checks(labels, messages):
    features = np.arange(len(labels), dtype=float)[:, None]
    issues = _by_name(DataValidator(features, np.array(labels)).validate(), "labels")
    assert len(issues) == len(messages)
    for issue, text in zip(issues, messages):
        assert text in issue.message


def test_constant_features_and_scales():
    features = np.column_stack([np.full(50, 7.0), np.linspace(0, 1, 50), np.linspace(0, 1e4, 50)])
    result = DataValidator(features, feature_names=["flag", "ratio", "bytes"]).validate()
    (constant,) = _by_name(result, "constant_features")
    assert constant.details == {"features": {"flag": 7.0}}
    (scale,) = _by_name(result, "distributions")
    assert "1e+04-fold" in scale.message
    assert result.passed  # warnings only


def test_a_cut_list_of_features_says_how_many_it_leaves_out(datasets, tmp_path, capsys):
    """`validate` on a real capture's layer-1 features (a 50-flow port scan: 98 of its dims
    hold one value) lists 20 of them and says so, as it did not ("... ['...', ...]")."""
    from training.cli.main import main
    from training.layers.layer1 import Layer1
    from training.tests.conftest import collect

    events = collect("zeek_logs", datasets / "slips_portscan_zeek/vertical_conn.log")[0]
    path = Layer1().featurize(events).save(tmp_path / "layer1_samples.npz")
    assert main(["validate", "--data", str(path)]) == 0
    (line,) = [t for t in capsys.readouterr().out.splitlines() if "constant_features" in t]
    assert line.startswith("  WARNING constant_features: 98 feature(s) hold a single value "
                           "(zero variance) and carry no information: ['event_type=network', ")
    assert line.endswith("'] and 78 more") and line.count("', '") == 19  # 20 names


def test_drift_check_on_a_shifted_copy():
    rng = np.random.default_rng(5)
    reference = rng.random((2000, 4))
    current = rng.random((2000, 4)) + np.array([0.5, 0.5, 0.5, 0.0])
    result = DataValidator(current, reference_features=reference).validate(check_drift=True)
    (drift,) = _by_name(result, "drift")
    assert drift.severity is ValidationSeverity.WARNING
    assert drift.details["features"] == ["feature_0", "feature_1", "feature_2"]
    assert drift.message == ("the data drifted: 3 of 4 features that vary (75%): "
                             "['feature_0', 'feature_1', 'feature_2']")  # all: no "and N more"
    assert result.statistics["drift"]["share"] == 0.75
    calm = DataValidator(rng.random((2000, 4)), reference_features=reference).validate(check_drift=True)
    assert not _by_name(calm, "drift") and calm.statistics["drift"]["drifted"] is False
    few = DataValidator(current[:10], reference_features=reference).validate(check_drift=True)
    assert "drift not assessed" in _by_name(few, "drift")[0].message


def test_arguments_are_checked():
    features = np.zeros((5, 2))
    with pytest.raises(ConfigError, match="check_drift needs reference_features"):
        DataValidator(features).validate(check_drift=True)
    with pytest.raises(ConfigError, match="outlier_threshold must be > 0, got 0"):
        DataValidator(features).validate(outlier_threshold=0)
    with pytest.raises(ConfigError, match="missing_threshold must be in \\[0, 1\\], got 1.5"):
        DataValidator(features).validate(missing_threshold=1.5)
    with pytest.raises(ConfigError, match="feature_names must name 2 features, got 1"):
        DataValidator(features, feature_names=["a"])
    with pytest.raises(ConfigError, match="reference_features must be \\(rows, 2\\)"):
        DataValidator(features, reference_features=np.zeros((5, 3)))
    with pytest.raises(ConfigError, match="numeric matrix"):
        DataValidator(np.zeros(5))
    with pytest.raises(SchemaError, match="labels must be integers"):
        DataValidator(features, np.array(list("abcde")))


def test_reports_as_text_and_json(tmp_path):
    features = np.array([[1.0, np.nan], [2.0, 1.0], [3.0, 1.0]])
    result = DataValidator(features, np.array([0, 1, 1])).validate()
    out = io.StringIO()
    DataValidator.print_report(result, file=out)
    text = out.getvalue()
    assert text.startswith("Data validation FAILED: 3 rows x 2 features")
    assert "ERROR   missing_values: 1 NaN value(s) in 1 feature(s)" in text
    saved = DataValidator.save_report(result, tmp_path / "report.json")
    data = json.loads(saved.read_text())
    assert data["passed"] is False and data["issues"][0]["severity"] == "error"
    assert data["statistics"]["features"]["min"] == [1.0, 1.0]
    assert DataValidator.save_report(result, tmp_path / "report.txt").read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.txt"]
