"""Data checks before training (the original module name; the code lives in `training.datasets`)."""

from training.datasets.validator import (
    DataValidator, ValidationIssue, ValidationResult, ValidationSeverity,
)

__all__ = ["DataValidator", "ValidationIssue", "ValidationResult", "ValidationSeverity"]
