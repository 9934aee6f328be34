"""Continuous training (the original module name; the code lives in `training.retraining`)."""

from training.retraining.continuous import ContinuousTrainingPipeline, RetrainingConfig

__all__ = ["ContinuousTrainingPipeline", "RetrainingConfig"]
