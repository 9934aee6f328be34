"""Continuous training's parts: triggers and the deployment gate (see training.continuous_training)."""
