"""The model registry's parts; the public API is `training.model_registry`."""
