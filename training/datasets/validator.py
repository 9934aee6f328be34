"""Data checks before training: the mistakes that quietly ruin detectors (the original API).

    validator = DataValidator(features, labels, reference_features=train_features)
    result = validator.validate(check_drift=True)
    result.print_report()

| check | name | severity |
|---|---|---|
| NaN values | missing_values | ERROR when a feature's NaN share > missing_threshold, else WARNING |
| +-Inf values | missing_values | ERROR |
| values with abs(z-score) > outlier_threshold | outliers | WARNING when a feature has > 1% of them, else INFO |
| labels: none known, one class, imbalance > 10:1, unknown rows | labels | WARNING (unknown rows: INFO) |
| features with one value only | constant_features | WARNING |
| feature scales apart by more than 1000x | distributions | WARNING |
| drift against the reference (`training.datasets.drift`) | drift | WARNING when the dataset drifts, INFO when some features do |
| a feature whose few values separate the labels (`training.datasets.leaks`) | label_leak | WARNING, one per field |

`passed` is False when any ERROR was found. Statistics are computed in one chunked pass per
check, so millions of rows validate in seconds.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TextIO

import numpy as np

from training.artifacts.atomic import atomic_write
from training.datasets.drift import MIN_SAMPLES, drift_report
from training.datasets.leaks import Leak, feature_leaks
from training.datasets.split import as_labels
from training.datasets.summary import CHUNK_ROWS, Moments, moments
from training.errors import ConfigError

IMBALANCE_RATIO = 10.0  # majority:minority above which the labels are called imbalanced
OUTLIER_SHARE = 0.01  # a feature with more outliers than this is worth a warning
SCALE_RATIO = 1e3  # std of the widest feature / std of the narrowest (non-constant) one
LISTED = 20  # features named in an issue's message and details


class ValidationSeverity(str, Enum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass
class ValidationIssue:
    """One finding: how bad, which check, what, and the figures behind it."""

    severity: ValidationSeverity
    check_name: str
    message: str
    details: dict = field(default_factory=dict)


@dataclass
class ValidationResult:
    """The verdict (no ERROR issue), the issues, and the statistics computed on the way."""

    passed: bool
    issues: list[ValidationIssue] = field(default_factory=list)
    statistics: dict = field(default_factory=dict)

    def issue_names(self) -> list[str]:
        return [issue.check_name for issue in self.issues]

    def format_report(self) -> str:
        """The result as text: the verdict, then one line per issue."""
        s = self.statistics
        lines = [f"Data validation {'PASSED' if self.passed else 'FAILED'}: "
                 f"{s.get('n_samples')} rows x {s.get('n_features')} features, "
                 f"{len(self.issues)} issue(s)"]
        lines += [f"  {i.severity.value.upper():7} {i.check_name}: {i.message}"
                  for i in self.issues]
        return "\n".join(lines) + "\n"

    def print_report(self, file: TextIO | None = None) -> None:
        """Print `format_report()` (to stdout by default), as the original result did."""
        (file or sys.stdout).write(self.format_report())

    def save_report(self, path: str | Path) -> Path:
        """Write the result atomically: JSON when `path` ends in .json, text otherwise."""
        path = Path(path)
        text = (json.dumps(self.to_dict(), indent=2, allow_nan=False) if path.suffix == ".json"
                else self.format_report())
        with atomic_write(path, "w") as handle:
            handle.write(text)
        return path

    def to_dict(self) -> dict:
        return {"passed": self.passed,
                "issues": [{"severity": i.severity.value, "check_name": i.check_name,
                            "message": i.message, "details": i.details} for i in self.issues],
                "statistics": self.statistics}


class DataValidator:
    """Checks a (rows, features) matrix and its labels, optionally against a reference.

    Args:
        features: (rows, features) numbers.
        labels: (rows,) integers (-1 unknown, 0 benign, 1 threat), or None.
        reference_features: (rows, features) data to test drift against (e.g. the train split).
        feature_names: one name per feature (default feature_0, feature_1, ...).
    """

    def __init__(self, features: np.ndarray, labels: np.ndarray | None = None,
                 reference_features: np.ndarray | None = None,
                 feature_names: list[str] | None = None) -> None:
        features = np.asarray(features)
        if features.ndim != 2 or not len(features) or features.dtype.kind not in "iuf":
            raise ConfigError(f"features must be a non-empty (rows, features) numeric matrix, "
                              f"got shape {features.shape} dtype {features.dtype}")
        width = features.shape[1]
        if reference_features is not None:
            reference_features = np.asarray(reference_features)
            if reference_features.ndim != 2 or reference_features.shape[1] != width:
                raise ConfigError(f"reference_features must be (rows, {width}), got shape "
                                  f"{reference_features.shape}")
        names = (list(feature_names) if feature_names is not None
                 else [f"feature_{i}" for i in range(width)])
        if len(names) != width:
            raise ConfigError(f"feature_names must name {width} features, got {len(names)}")
        self.features = features
        self.labels = None if labels is None else as_labels(labels, len(features))
        self.reference_features = reference_features
        self.feature_names = names

    def validate(self, check_missing: bool = True, check_outliers: bool = True,
                 check_labels: bool = True, check_distributions: bool = True,
                 check_drift: bool = False, outlier_threshold: float = 3.0,
                 missing_threshold: float = 0.1, drift_threshold: float = 0.1, *,
                 drift_share: float = 0.5, check_leaks: bool = True) -> ValidationResult:
        """Run the chosen checks (see the module docstring for what each reports).

        Raises:
            ConfigError: a threshold out of range, or check_drift without reference_features.
        """
        if not outlier_threshold > 0:
            raise ConfigError(f"outlier_threshold must be > 0, got {outlier_threshold}")
        if not 0 <= missing_threshold <= 1:
            raise ConfigError(f"missing_threshold must be in [0, 1], got {missing_threshold}")
        if check_drift and self.reference_features is None:
            raise ConfigError("check_drift needs reference_features (e.g. the training split)")
        m = moments(self.features)
        issues: list[ValidationIssue] = []
        summary = {k: _floats(getattr(m, k)) for k in ("mean", "std", "min", "max")}
        stats: dict = {"n_samples": m.rows, "n_features": len(self.feature_names),
                       "features": summary}
        if check_missing:
            issues += self._missing(m, missing_threshold, stats)
        if check_outliers:
            issues += self._outliers(m, outlier_threshold, stats)
        if check_labels:
            issues += self._labels(stats)
        if check_leaks and self.labels is not None:
            issues += leak_issues(feature_leaks(self.features, self.labels, self.feature_names))
        if check_distributions:
            issues += self._distributions(m, stats)
        if check_drift:
            issues += self._drift(drift_threshold, drift_share, stats)
        passed = not any(i.severity is ValidationSeverity.ERROR for i in issues)
        return ValidationResult(passed, issues, stats)

    def _named(self, mask: np.ndarray, values: np.ndarray | None = None) -> dict:
        """The first `LISTED` features where `mask` holds, with their value."""
        chosen = np.flatnonzero(mask)[:LISTED]
        source = mask if values is None else values
        return {self.feature_names[j]: _plain(source[j]) for j in chosen}

    def _missing(self, m: Moments, threshold: float, stats: dict) -> list[ValidationIssue]:
        stats["missing"] = {"nan": int(m.nan.sum()), "inf": int(m.inf.sum())}
        issues = []
        if m.nan.any():
            share = m.nan / m.rows
            worst = float(share.max())
            severity = ValidationSeverity.ERROR if worst > threshold else ValidationSeverity.WARNING
            issues.append(ValidationIssue(
                severity, "missing_values",
                f"{int(m.nan.sum())} NaN value(s) in {int((m.nan > 0).sum())} feature(s); the "
                f"worst feature is {worst:.1%} missing (threshold {threshold:.0%})",
                {"kind": "nan", "per_feature": self._named(m.nan > 0, m.nan), "max_share": worst}))
        if m.inf.any():
            issues.append(ValidationIssue(
                ValidationSeverity.ERROR, "missing_values",
                f"{int(m.inf.sum())} infinite value(s) in {int((m.inf > 0).sum())} feature(s); "
                "fix the featurizer or clip before training",
                {"kind": "inf", "per_feature": self._named(m.inf > 0, m.inf)}))
        return issues

    def _outliers(self, m: Moments, threshold: float, stats: dict) -> list[ValidationIssue]:
        counts = np.zeros(len(self.feature_names), dtype=np.int64)
        spread = np.where(m.std > 0, m.std, np.inf) * threshold  # constant features: none
        for start in range(0, m.rows, CHUNK_ROWS):
            block = self.features[start:start + CHUNK_ROWS].astype(np.float64)
            with np.errstate(invalid="ignore"):
                counts += (np.abs(block - m.mean) > spread).sum(axis=0)  # NaN, Inf: False
        share = counts / np.maximum(m.count, 1)
        stats["outliers"] = {"threshold": threshold, "count": int(counts.sum()),
                             "per_feature": _floats(counts)}
        if not counts.any():
            return []
        worst = float(share.max())
        severity = ValidationSeverity.WARNING if worst > OUTLIER_SHARE else ValidationSeverity.INFO
        return [ValidationIssue(
            severity, "outliers",
            f"{int(counts.sum())} value(s) more than {threshold:g} std from the mean in "
            f"{int((counts > 0).sum())} feature(s); the worst feature has {worst:.2%}",
            {"threshold": threshold, "per_feature": self._named(counts > 0, counts),
             "max_share": worst})]

    def _labels(self, stats: dict) -> list[ValidationIssue]:
        if self.labels is None:
            return [ValidationIssue(ValidationSeverity.INFO, "labels", "no labels given")]
        values, counts = np.unique(self.labels, return_counts=True)
        distribution = {int(v): int(c) for v, c in zip(values, counts)}
        known = {k: v for k, v in distribution.items() if k >= 0}
        stats["labels"] = {"distribution": distribution, "unknown": distribution.get(-1, 0)}
        issues = []
        if not known:
            issues.append(ValidationIssue(ValidationSeverity.WARNING, "labels",
                                          "no row has a known label (all -1)",
                                          {"distribution": distribution}))
        elif len(known) == 1:
            issues.append(ValidationIssue(ValidationSeverity.WARNING, "labels",
                                          f"one class only ({next(iter(known))}): fine for anomaly "
                                          "detectors, useless for measuring detection",
                                          {"distribution": distribution}))
        else:
            ratio = max(known.values()) / min(known.values())
            stats["labels"]["imbalance_ratio"] = ratio
            if ratio > IMBALANCE_RATIO:
                issues.append(ValidationIssue(
                    ValidationSeverity.WARNING, "labels",
                    f"classes are imbalanced {ratio:.1f}:1 (largest:smallest); report PR-AUC, or "
                    "balance the training split", {"distribution": distribution,
                                                   "imbalance_ratio": ratio}))
        if distribution.get(-1):
            issues.append(ValidationIssue(
                ValidationSeverity.INFO, "labels",
                f"{distribution[-1]} row(s) have no known label (-1); they are neither benign "
                "nor threat", {"unknown": distribution[-1]}))
        return issues

    def _distributions(self, m: Moments, stats: dict) -> list[ValidationIssue]:
        constant = m.max == m.min  # all-NaN features compare False: reported as missing
        stats["constant_features"] = int(constant.sum())
        issues = []
        if constant.any():
            issues.append(ValidationIssue(
                ValidationSeverity.WARNING, "constant_features",
                f"{int(constant.sum())} feature(s) hold a single value (zero variance) and carry "
                f"no information: {_listed(list(self._named(constant)), int(constant.sum()))}",
                {"features": self._named(constant, m.min)}))
        spread = m.std[np.isfinite(m.std) & (m.std > 0)]
        if len(spread) > 1 and spread.max() / spread.min() > SCALE_RATIO:
            ratio = float(spread.max() / spread.min())
            stats["scale_ratio"] = ratio
            issues.append(ValidationIssue(
                ValidationSeverity.WARNING, "distributions",
                f"feature scales differ {ratio:.3g}-fold (std {spread.min():.3g} to "
                f"{spread.max():.3g}); scale the features before training",
                {"min_std": float(spread.min()), "max_std": float(spread.max())}))
        return issues

    def _drift(self, threshold: float, share: float, stats: dict) -> list[ValidationIssue]:
        reference = self.reference_features
        if min(len(reference), len(self.features)) < MIN_SAMPLES:
            return [ValidationIssue(ValidationSeverity.WARNING, "drift",
                                    f"drift not assessed: it needs at least {MIN_SAMPLES} rows on "
                                    f"each side, got {len(reference)} reference and "
                                    f"{len(self.features)} current")]
        report = drift_report(reference, self.features, threshold, drift_share=share,
                              feature_names=self.feature_names)
        stats["drift"] = report.to_dict()
        names = report.drifted_features
        if report.drifted:
            return [ValidationIssue(ValidationSeverity.WARNING, "drift",
                                    f"the data drifted: {len(names)} of {report.counted} "
                                    f"features that vary ({report.share:.0%}): "
                                    f"{_listed(names, limit=5)}",
                                    {"share": report.share, "features": names})]
        if names:
            return [ValidationIssue(ValidationSeverity.INFO, "drift",
                                    f"{len(names)} of {report.counted} feature(s) that vary "
                                    f"drifted ({report.share:.0%}, below {share:.0%}): "
                                    f"{_listed(names, limit=5)}",
                                    {"share": report.share, "features": names})]
        return []

    # The same reports as methods of the class, as this API had them before.
    @staticmethod
    def format_report(result: ValidationResult) -> str:
        return result.format_report()

    @staticmethod
    def print_report(result: ValidationResult, file: TextIO | None = None) -> None:
        result.print_report(file)

    @staticmethod
    def save_report(result: ValidationResult, path: str | Path) -> Path:
        return result.save_report(path)


def leak_issues(leaks: list[Leak]) -> list[ValidationIssue]:
    """One WARNING per field that separates the labels (`training.datasets.leaks`)."""
    return [ValidationIssue(ValidationSeverity.WARNING, "label_leak", leak.message,
                            {"field": leak.field, "values": list(leak.values),
                             "threats": leak.threats, "benign": leak.benign,
                             "total_threats": leak.total_threats,
                             "total_benign": leak.total_benign, "among": leak.among})
            for leak in leaks]


def _listed(names: list[str], total: int | None = None, limit: int = LISTED) -> str:
    """The first `limit` of `names` as a list, and how many of `total` (default: all of
    `names`) it leaves out: "['a', 'b'] and 19 more"."""
    total = len(names) if total is None else total
    shown = names[:limit]
    return f"{shown}" + (f" and {total - len(shown)} more" if total > len(shown) else "")


def _plain(value: object) -> object:
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and not np.isfinite(value) else value


def _floats(values: np.ndarray) -> list:
    return [_plain(v) for v in values]
