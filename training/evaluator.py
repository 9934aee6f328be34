"""Evaluating a model on test data (the original module name; the code lives in `training.evaluation`)."""

from training.evaluation.evaluator import ModelEvaluator, save_report
from training.evaluation.result import EvaluationMetrics

__all__ = ["EvaluationMetrics", "ModelEvaluator", "save_report"]
