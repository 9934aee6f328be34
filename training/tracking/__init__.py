"""MLflow as an opt-in window on our runs and registry (`window`: logging; `mirror`: the Model
Registry; `layer_run`: one MLflow run per trained layer). Needs the `mlflow` extra."""

from training.tracking.layer_run import EpochMetrics, LayerRun
from training.tracking.mirror import (mirror_new_version, mirror_registry, mirror_version,
                                      sync_model)
from training.tracking.window import MlflowWindow, open_window, tracking_uri

__all__ = ["EpochMetrics", "LayerRun", "MlflowWindow", "mirror_new_version",
           "mirror_registry", "mirror_version", "open_window", "sync_model", "tracking_uri"]
