"""The three layers as pipeline stages: one class per layer, one interface.

Each stage turns the collected events into its features, splits them, trains its detector
through the layer's own train function (which runs LayerTrainer) and scores its test split.
The pipeline (`training.pipeline`) only calls this interface; what differs per layer (vectors,
window graphs, entity windows) stays here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from training.data_preprocessor import DataPreprocessor, LayerType
from training.dataset_builder import DatasetBuilder
from training.datasets.windows import save_window_splits, split_layer2, split_layer3
from training.detectors.base import Detector
from training.features.encoding import FeatureSpec
from training.pipeline_config import SplitConfig, TrainConfig


@dataclass(frozen=True)
class TestScores:
    """Scores of a layer's test units, with what the evaluator needs beside them."""

    scores: np.ndarray
    labels: np.ndarray
    attack_types: np.ndarray | None
    timestamps: np.ndarray | None


@dataclass(frozen=True)
class Folders:
    features: Path
    splits: Path
    checkpoints: Path
    logs: Path


class LayerStage(ABC):
    """One layer of the pipeline."""

    layer: str  # "layer1", ...
    model_name: str  # checkpoint and registry name, e.g. "layer1_vae"
    unit: str  # what one score is about: "event", "edge", "window"

    def __init__(self, preprocessor: DataPreprocessor) -> None:
        self.preprocessor = preprocessor

    @abstractmethod
    def featurize(self, events: pa.Table, folders: Folders) -> Any:
        """The layer's features of `events`, also saved under `folders.features`."""

    @abstractmethod
    def split(self, features: Any, config: SplitConfig, seed: int, folders: Folders) -> dict:
        """{"train", "val", "test"} parts, also saved under `folders.splits`."""

    @abstractmethod
    def train(self, splits: dict, config: TrainConfig, seed: int, folders: Folders
              ) -> tuple[Detector, dict[str, Any]]:
        """(model with its best weights, the train function's results incl. "checkpoint")."""

    @abstractmethod
    def test_scores(self, model: Detector, spec: FeatureSpec, test: Any) -> TestScores:
        """The scores of every unit of the test part by `model`, whose FeatureSpec is `spec`
        (a champion from the registry is scored on the challenger's test part this way)."""

    def _trainer_config(self, default_config: Any, config: TrainConfig, seed: int,
                        folders: Folders) -> Any:
        # One intra-op thread: these models are small enough that a second thread costs more in
        # synchronisation than it gives, several times more when other work shares the cores.
        return default_config(**config.trainer_changes(), seed=seed, num_threads=1,
                              checkpoint_dir=str(folders.checkpoints), log_dir=str(folders.logs))


class Layer1Stage(LayerStage):
    layer, model_name, unit = "layer1", "layer1_vae", "event"

    def featurize(self, events: pa.Table, folders: Folders) -> Path:
        arrays = self.preprocessor.featurize(events, LayerType.LAYER1_SENSORY)
        return arrays.save(folders.features / "layer1_samples.npz")

    def split(self, features: Path, config: SplitConfig, seed: int, folders: Folders) -> dict:
        builder = DatasetBuilder.from_file(features, output_dir=folders.splits, random_seed=seed)
        splits = builder.create_splits(config.strategy, config.train_ratio, config.val_ratio,
                                       config.test_ratio)
        builder.save_splits(splits, prefix="layer1")
        return splits

    def train(self, splits: dict, config: TrainConfig, seed: int, folders: Folders):
        from training.train_layer1_vae import default_config, train_layer1_vae

        train, val = splits["train"], splits["val"]
        return train_layer1_vae(train.features, train.labels, val.features, val.labels,
                                config=self._trainer_config(default_config, config, seed, folders),
                                feature_spec=train.spec, **config.model)

    def test_scores(self, model: Detector, spec: FeatureSpec, test: Any) -> TestScores:
        import torch

        from training.scoring import model_scores

        features = torch.from_numpy(np.ascontiguousarray(test.features))
        scores = model_scores(model, (features[i:i + 4096] for i in range(0, len(features), 4096)))
        return TestScores(scores, test.labels, test.columns.get("attack_type"),
                          test.columns.get("timestamps"))


class Layer2Stage(LayerStage):
    layer, model_name, unit = "layer2", "layer2_gnn", "edge"

    def featurize(self, events: pa.Table, folders: Folders) -> Any:
        graphs = self.preprocessor.featurize(events, LayerType.LAYER2_BEHAVIORAL)
        graphs.save(folders.features / "layer2_graphs.npz")
        return graphs

    def split(self, features: Any, config: SplitConfig, seed: int, folders: Folders) -> dict:
        strategy = "temporal" if config.strategy == "group" else config.strategy  # graphs mix hosts
        splits = split_layer2(features, strategy, config.train_ratio, config.val_ratio,
                              config.test_ratio, seed=seed)
        save_window_splits(splits, folders.splits, "layer2")
        return splits

    def train(self, splits: dict, config: TrainConfig, seed: int, folders: Folders):
        from training.train_layer2_gnn import default_config, train_layer2_gnn

        return train_layer2_gnn(splits["train"], splits["val"],
                                config=self._trainer_config(default_config, config, seed, folders),
                                **config.model)

    def test_scores(self, model: Detector, spec: FeatureSpec, test: Any) -> TestScores:
        from training.layer2_data import Layer2Data

        data = Layer2Data(test, spec, benign_only=False)
        a = test.arrays
        edge_window = np.repeat(np.arange(len(test)), np.diff(a["edge_ptr"]))
        return TestScores(data.edge_scores(model), data.labels(), None,
                          a["window_start"][edge_window].astype("datetime64[us]"))


class Layer3Stage(LayerStage):
    layer, model_name, unit = "layer3", "layer3_tcn", "window"

    def featurize(self, events: pa.Table, folders: Folders) -> Any:
        windows = self.preprocessor.featurize(events, LayerType.LAYER3_OPERATIONAL)
        windows.save(folders.features / "layer3_windows.npz")
        return windows

    def split(self, features: Any, config: SplitConfig, seed: int, folders: Folders) -> dict:
        splits = split_layer3(features, config.strategy, config.train_ratio, config.val_ratio,
                              config.test_ratio, seed=seed)
        save_window_splits(splits, folders.splits, "layer3")
        return splits

    def train(self, splits: dict, config: TrainConfig, seed: int, folders: Folders):
        from training.train_layer3_tcn import default_config, train_layer3_tcn

        return train_layer3_tcn(splits["train"], splits["val"],
                                config=self._trainer_config(default_config, config, seed, folders),
                                **config.model)

    def test_scores(self, model: Detector, spec: FeatureSpec, test: Any) -> TestScores:
        from training.layer3_data import Layer3Data

        data = Layer3Data(test, spec, benign_only=False)
        attack = test.attack_type.to_numpy(zero_copy_only=False).astype(str)
        return TestScores(data.scores(model), data.labels().astype(np.int64), attack, test.time)


STAGES: dict[str, type[LayerStage]] = {
    "layer1": Layer1Stage,
    "layer2": Layer2Stage,
    "layer3": Layer3Stage,
}
