"""A tiny detector for registry tests, and the workers the multi-process tests fork."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from training.artifacts.model_files import save_model
from training.detectors.base import Detector, register_detector
from training.features.layer1 import Layer1Featurizer
from training.registry.registry import ModelMetadata, ModelRegistry


@register_detector
class TinyDetector(Detector):
    """Anomaly score = squared distance of x from a learned centre (no training needed)."""

    def __init__(self, *, dim: int = 4) -> None:
        super().__init__(dim=dim)
        self.centre = nn.Parameter(torch.zeros(dim))

    def training_step(self, batch: torch.Tensor) -> torch.Tensor:
        return self.anomaly_score(batch).mean()

    def anomaly_score(self, batch: torch.Tensor) -> torch.Tensor:
        return ((batch - self.centre) ** 2).sum(dim=1)


def save_tiny(path: Path, centre: float = 0.0, dim: int = 4, threshold: float | None = 1.0,
              layer1_spec: bool = True) -> Path:
    """Save a TinyDetector whose centre is `centre` in every dim; returns the weights path."""
    model = TinyDetector(dim=dim)
    with torch.no_grad():
        model.centre.fill_(centre)
    spec = Layer1Featurizer().spec if layer1_spec else None
    save_model(model, path, feature_spec=spec, threshold=threshold)
    return Path(path)


def race_worker(registry_dir: Path, weights: Path, worker: int, rounds: int) -> None:
    """Register versions "<worker>.<round>.0" of model "race" and promote each one."""
    torch.set_num_threads(1)  # a forked child must not use the parent's OpenMP pool
    registry = ModelRegistry(registry_dir)
    for round_ in range(rounds):
        version = f"{worker}.{round_}.0"
        registry.register_model(weights, ModelMetadata("race", version, "layer1"),
                                actor=f"worker{worker}")
        registry.transition_stage("race", version, "production", reason=f"round {round_}",
                                  actor=f"worker{worker}")


def register_forever(registry_dir: Path, weights: Path, progress: Path) -> None:
    """Register versions 1.0.0, 1.1.0, ... of model "crash" until killed, appending
    "start V" before and "done V" after each register_model call to `progress`."""
    torch.set_num_threads(1)
    registry = ModelRegistry(registry_dir)
    with open(progress, "a", buffering=1) as out:
        while True:
            version = registry.next_version("crash")
            out.write(f"start {version}\n")
            registry.register_model(weights, ModelMetadata("crash", version, "layer1"))
            out.write(f"done {version}\n")
