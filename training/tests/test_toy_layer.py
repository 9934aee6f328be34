"""Adding a layer is one new module registered in one place: a toy fourth layer, with its own
featurizer and its own detector (neither subclasses nor calls an existing layer's), runs through
the pipeline, scoring and retraining without any other module changing.

The toy scores an event by the squared distance of (log bytes sent, destination port) from a
learnt centre. Its definition is the first 52 lines below the imports' block.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch

from training.detectors.base import DETECTORS, Detector, register_detector
from training.features.encoding import FeatureSpec, column, numbers
from training.layers.registry import LAYERS, register_layer
from training.layers.vectors import EventVectorLayer
from training.trainer.config import TrainingConfig

# ---- the toy layer: featurizer, detector, layer ------------------------------------------------


class PortVolume:
    """Events -> (events, 2): log bytes sent (scaled) and destination port / 65535."""

    spec = FeatureSpec("toy", "toy.v1", {"dims": ["log_bytes_sent", "dest_port"]})

    @classmethod
    def from_spec(cls, spec: FeatureSpec) -> PortVolume:
        spec.require_kind("toy", "toy.v1", "the toy featurizer")
        return cls()

    def featurize(self, table: pa.Table) -> np.ndarray:
        sent = np.nan_to_num(numbers(column(table, "bytes_sent", pa.float64())))
        port = np.nan_to_num(numbers(column(table, "dest_port", pa.float64())))
        return np.stack([np.log1p(np.clip(sent, 0, None)) / 30, port / 65535], 1).astype("f4")


class Centroid(Detector):
    """Squared distance from a learnt centre; higher = farther from normal traffic."""

    def __init__(self, *, dims: int = 2) -> None:
        super().__init__(dims=dims)
        self.centre = torch.nn.Parameter(torch.zeros(dims))

    def anomaly_score(self, batch: torch.Tensor) -> torch.Tensor:
        return (batch - self.centre).pow(2).sum(1)

    def training_step(self, batch: torch.Tensor) -> torch.Tensor:
        return self.anomaly_score(batch).mean()


class ToyLayer(EventVectorLayer):
    name, model_name, features_file = "toy4", "toy4_centroid", "toy4_samples.npz"
    aliases = ("toy",)

    @classmethod
    def featurizer_class(cls) -> type[PortVolume]:
        return PortVolume

    def default_detector(self, units: Any, **model_args: Any) -> Centroid:
        return Centroid(dims=int(np.shape(units.features)[1]), **model_args)

    def default_config(self, **changes: Any) -> TrainingConfig:
        return TrainingConfig(model_name=self.model_name, layer_name=self.name, seed=1,
                              num_epochs=3, learning_rate=0.05).replace(**changes)

    def search_space(self, trial: Any) -> dict[str, Any]:
        return {"learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.1, log=True),
                "batch_size": trial.suggest_categorical("batch_size", [32, 64])}


# ---- the checks ------------------------------------------------------------------------------

CAPTURE = Path("../shared/datasets/iot23/CTU-Malware-Capture-44-1-labeled.csv")


@pytest.fixture
def toy():
    if not CAPTURE.exists():
        pytest.skip(f"{CAPTURE} is absent (the shared datasets are not on this machine)")
    register_layer(ToyLayer)
    register_detector(Centroid)
    yield ToyLayer
    LAYERS.pop(ToyLayer.name)
    DETECTORS.pop(Centroid.__name__)


def test_a_toy_layer_runs_through_pipeline_score_and_retrain(toy, tmp_path):
    from training.data_collection import DataSource
    from training.model_registry import ModelRegistry
    from training.pipeline.config import config_from_dict
    from training.pipeline.run import run_pipeline
    from training.retraining.continuous import ContinuousTrainingPipeline, RetrainingConfig
    from training.scoring.batch import score_events

    source = DataSource("iot", "csv_file", {"path": str(CAPTURE)})
    config = config_from_dict({"sources": [source], "layers": ["toy"], "workdir": tmp_path,
                               "split": {"strategy": "random"}})
    result = run_pipeline(config)
    (outcome,) = result.layers
    assert (outcome.layer, outcome.model_name, outcome.version) == ("toy4", "toy4_centroid",
                                                                    "1.0.0")
    assert outcome.decision["rule"] and outcome.stage in ("production", "none")
    assert outcome.metrics["n_samples"] > 0 and (Path(result.report).parent / "toy4.html").exists()

    registry = ModelRegistry(tmp_path / "models")
    summary = score_events(registry, "toy4_centroid", [source], tmp_path / "s.parquet",
                           version="1.0.0")
    assert summary.layer == "toy4" and summary.units == summary.events == 237

    splits = {part: tmp_path / "splits" / f"toy4_{part}.npz" for part in ("train", "val", "test")}
    retrained = ContinuousTrainingPipeline(RetrainingConfig(
        registry_dir=str(tmp_path / "models"), min_accuracy_threshold=None)).run_retraining(
        "toy", "toy4_centroid", None, *splits.values(), force=True)
    assert retrained["retrained"] and retrained["new_version"] == "1.1.0"
