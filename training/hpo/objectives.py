"""Tuning objectives: one class per layer, a search space and a way to train one configuration.

An objective is called once per trial: it samples the layer's hyperparameters, trains the
model with `LayerTrainer` for at most `max_epochs` epochs, reports the validation metric every
epoch (pruning, `training.hpo.pruning`) and returns the best value it reported. The metric is
measured on the validation split only, never on a test set:

- "pr_auc": average precision of the anomaly scores on the validation rows with a known label
  (maximized); the default ("auto") when the validation labels hold both benign and threat;
- "loss": the layer's validation loss (minimized); the default otherwise.

Objectives are picklable (data paths and settings; the data itself is loaded once per process
on first use), so worker processes can run them. `train_best` trains the chosen configuration
fully and registers it in the model registry.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import optuna

from training.errors import ConfigError, RegistryError, TrainingError
from training.evaluation.metrics import known_scores, pr_auc
from training.hpo.pruning import OptunaPruning
from training.trainer_config import TrainingConfig

logger = logging.getLogger(__name__)

METRICS = ("auto", "loss", "pr_auc")


class LayerObjective(ABC):
    """A layer's tuning objective.

    Args:
        train_data: the training split file.
        val_data: the validation split file (the metric is measured on it).
        metric: "auto", "loss" or "pr_auc" (see the module docstring).
        max_epochs: epochs per trial (>= 1).
        seed: training seed of every trial (the same initial weights for the same sizes,
            so trials differ by their hyperparameters, not by luck of the draw).
        num_threads: torch threads per trial (default 1: these models are small, and a second
            thread gains little while making a busy machine's trials many times slower; use
            worker processes to use more cores); None leaves the process's setting.
    """

    layer: ClassVar[int]
    model_name: ClassVar[str]

    def __init__(self, train_data: str | Path, val_data: str | Path, *, metric: str = "auto",
                 max_epochs: int = 30, seed: int | None = 42,
                 num_threads: int | None = 1) -> None:
        if metric not in METRICS:
            raise ConfigError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
            raise ConfigError(f"max_epochs must be an integer >= 1, got {max_epochs!r}")
        self.train_data, self.val_data = str(train_data), str(val_data)
        self.max_epochs, self.seed, self.num_threads = max_epochs, seed, num_threads
        self._data: Any = None
        labels = self.val_labels()
        if metric == "auto":
            metric = "pr_auc" if known_scores(np.zeros(len(labels)), labels).has_both else "loss"
        elif metric == "pr_auc" and not known_scores(np.zeros(len(labels)), labels).has_both:
            raise ConfigError(f"metric 'pr_auc' needs benign (0) and threat (1) labels in the "
                              f"validation split {self.val_data}; use metric 'loss'")
        self.metric = metric

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_data": None}  # each process loads the files itself

    # ---- what each layer defines -----------------------------------------------------------

    @abstractmethod
    def load(self) -> Any:
        """Read the split files (called once per process)."""

    @abstractmethod
    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Sample this layer's hyperparameters."""

    @abstractmethod
    def default_params(self) -> dict[str, Any]:
        """The untuned configuration (the training script's defaults), for comparison."""

    @abstractmethod
    def fit(self, params: dict[str, Any], config: TrainingConfig,
            callbacks: list[Any]) -> tuple[Any, dict[str, Any]]:
        """Train one configuration; (model, results of the layer's train function)."""

    @abstractmethod
    def base_config(self, **changes: Any) -> TrainingConfig:
        """The layer's TrainingConfig (its train script's defaults) with `changes`."""

    @abstractmethod
    def val_labels(self) -> np.ndarray:
        """Labels (-1/0/1) of the validation units, in the order `val_scores` gives them."""

    @abstractmethod
    def val_scores(self, model: Any) -> np.ndarray:
        """Anomaly scores of the validation units."""

    def loss_value(self, metrics: dict[str, float]) -> float:
        """The validation loss to minimize, from an epoch's validation metrics."""
        return metrics["val_loss"]

    # ---- shared ----------------------------------------------------------------------------

    @property
    def data(self) -> Any:
        if self._data is None:
            self._data = self.load()
        return self._data

    @property
    def direction(self) -> str:
        return "maximize" if self.metric == "pr_auc" else "minimize"

    @property
    def default_study_name(self) -> str:
        return f"{self.model_name}_tuning"

    def describe(self) -> dict[str, Any]:
        """What the study records about its objective."""
        return {"layer": self.layer, "model": self.model_name, "metric": self.metric,
                "direction": self.direction, "max_epochs": self.max_epochs, "seed": self.seed,
                "train_data": self.train_data, "val_data": self.val_data}

    def attach(self, study: optuna.Study) -> None:
        """Record this objective in `study`, or check that its trials came from the same kind
        of objective (values of another layer, metric or epoch budget do not compare).

        Raises:
            ConfigError: the study was made with another layer, metric or max_epochs.
        """
        mine, stored = self.describe(), study.user_attrs.get("objective")
        if stored is None:
            study.set_user_attr("objective", mine)
            return
        for key in ("layer", "metric", "max_epochs"):
            if stored.get(key) != mine[key]:
                raise ConfigError(f"study {study.study_name!r} holds trials with {key}="
                                  f"{stored.get(key)!r}, this run has {key}={mine[key]!r}; "
                                  "their values do not compare: use another study name")

    def measure(self, trainer: Any, metrics: dict[str, float]) -> float:
        """The epoch's objective value (see OptunaPruning)."""
        if self.metric == "loss":
            return self.loss_value(metrics)
        scores = self.val_scores(trainer.model)
        if not np.isfinite(scores).all():
            return math.nan  # a diverged model: pruned
        known = known_scores(scores, self.val_labels())
        return pr_auc(known.scores, known.is_threat)

    def trial_config(self, params: dict[str, Any], checkpoint_dir: str) -> TrainingConfig:
        """A trial's TrainingConfig: the layer's defaults, the trial's optimizer settings, and
        nothing written that the trial does not need."""
        return self.base_config(
            num_epochs=self.max_epochs, batch_size=params["batch_size"],
            learning_rate=params["learning_rate"], seed=self.seed, num_threads=self.num_threads,
            checkpoint_dir=checkpoint_dir, tensorboard=False, save_last_state=False,
            calibrate_threshold=False)

    def __call__(self, trial: optuna.Trial) -> float:
        params = self.suggest(trial)
        pruning = OptunaPruning(trial, self.measure, self.direction, self.metric)
        with tempfile.TemporaryDirectory(prefix="maximus-trial-", dir=_scratch()) as checkpoints:
            try:
                self.fit(params, self.trial_config(params, checkpoints), [pruning])
            except TrainingError as exc:  # the loss became NaN/inf: a bad configuration
                trial.set_user_attr("diverged", str(exc))
                raise optuna.TrialPruned(f"diverged: {exc}") from exc
        if pruning.best is None:
            raise optuna.TrialPruned("no finite validation value")
        return pruning.best

    def train_best(self, params: dict[str, Any], *, study_dir: str | Path, study_name: str,
                   trial_number: int | None = None, num_epochs: int = 100,
                   registry_dir: str | Path | None = None) -> dict[str, Any]:
        """Train `params` fully (early stopping as in the train script), save the model with
        its validation threshold under `study_dir/best/`, and register it.

        Returns:
            The checkpoint, the registered version and its validation metrics.
        """
        from training.model_registry import ModelMetadata, ModelRegistry

        config = self.base_config(
            num_epochs=num_epochs, batch_size=params["batch_size"],
            learning_rate=params["learning_rate"], seed=self.seed,
            num_threads=self.num_threads, checkpoint_dir=str(Path(study_dir) / "best"),
            log_dir=str(Path(study_dir) / "logs"), save_last_state=False)
        model, results = self.fit(params, config, [])
        model.eval()
        metrics = {"best_val_loss": float(results["best_val_loss"]),
                   "epochs_trained": float(results["epochs_trained"])}
        known = known_scores(self.val_scores(model), self.val_labels())
        if known.has_both:
            metrics["val_pr_auc"] = pr_auc(known.scores, known.is_threat)
        checkpoint = Path(results["checkpoint"])
        registry = ModelRegistry(registry_dir)
        hyperparameters = {**params, "num_epochs": num_epochs, "seed": self.seed}
        origin = f"best trial {trial_number} of tuning study {study_name}"
        for _ in range(3):  # another process may take the version between the two calls
            version = registry.next_version(self.model_name)
            metadata = ModelMetadata(
                self.model_name, version, f"layer{self.layer}", metrics=metrics,
                hyperparameters=hyperparameters, training_dataset=self.train_data,
                description=origin)
            try:
                registry.register_model(checkpoint, metadata, reason=origin)
                break
            except RegistryError:
                continue
        else:
            raise RegistryError(f"could not register {self.model_name}: three versions taken "
                                "by other processes in a row")
        return {"checkpoint": str(checkpoint), "model_name": self.model_name,
                "version": version, "registry_dir": str(registry.registry_dir),
                "metrics": metrics}


def _scratch() -> str | None:
    """A folder for a trial's throwaway checkpoints: memory-backed where there is one (the
    trainer writes and fsyncs the best weights at every improvement), else the default."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


OBJECTIVES: dict[int, type[LayerObjective]] = {}


def register_objective(cls: type[LayerObjective]) -> type[LayerObjective]:
    """Class decorator: make `cls` the objective of its layer."""
    if not (isinstance(cls, type) and issubclass(cls, LayerObjective)):
        raise ConfigError(f"register_objective takes a LayerObjective subclass, got {cls!r}")
    OBJECTIVES[cls.layer] = cls
    return cls


def make_objective(layer: int, train_data: str | Path, val_data: str | Path,
                   **kwargs: Any) -> LayerObjective:
    """The objective of `layer` (1, 2 or 3) on the given splits."""
    _import_objectives()
    if layer not in OBJECTIVES:
        raise ConfigError(f"no tuning objective for layer {layer!r}; layers: "
                          f"{', '.join(map(str, sorted(OBJECTIVES)))}")
    return OBJECTIVES[layer](train_data, val_data, **kwargs)


def layers() -> list[int]:
    """The layers that have an objective."""
    _import_objectives()
    return sorted(OBJECTIVES)


def _import_objectives() -> None:
    # Each layer's objective registers itself when its module is imported.
    import importlib

    for module in ("layer1", "layer2", "layer3"):
        try:
            importlib.import_module(f"training.hpo.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"training.hpo.{module}":
                raise
