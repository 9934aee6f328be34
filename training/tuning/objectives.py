"""The tuning objective of any layer: its search space, one configuration trained per trial.

An objective is called once per trial: it samples the layer's search space
(`Layer.search_space`), trains its detector through `train_layer` for at most `max_epochs`
epochs, reports the validation metric every epoch (pruning, `training.tuning.pruning`) and
returns the best value it reported. The metric is measured on the validation split only, never
on a test set:

- "pr_auc": average precision of the anomaly scores on the validation rows with a known label
  (maximized); the default ("auto") when the validation labels hold both benign and threat;
- "loss": the layer's validation loss (`Layer.validation_loss`, minimized); the default
  otherwise.

Objectives are picklable (data paths and settings; the data itself is loaded once per process
on first use), so worker processes can run them. `train_best` trains the chosen configuration
fully and registers it in the model registry.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from training.artifacts.atomic import private_folder
from training.errors import ConfigError, TrainingError
from training.layers.base import Layer
from training.layers.registry import get_layer
from training.layers.training import train_layer
from training.evaluation.metrics import known_scores, pr_auc
from training.retraining.gate import split_fingerprint
from training.tuning.params_file import origin_text, split_params
from training.tuning.pruning import OptunaPruning
from training.trainer.config import TrainingConfig

logger = logging.getLogger(__name__)

METRICS = ("auto", "loss", "pr_auc")
DATA_SPLITS = ("train", "val")  # the splits a study's values are measured with


class LayerObjective:
    """A layer's tuning objective.

    Args:
        layer: the layer (a name or alias, or a `Layer`).
        train_data: the training split file, or its units already loaded (e.g. a
            `DatasetSplit` of layer-1 vectors; then `n_workers` must stay 1).
        val_data: the validation split (file or units; the metric is measured on it).
        metric: "auto", "loss" or "pr_auc" (see the module docstring).
        max_epochs: epochs per trial (>= 1).
        seed: training seed of every trial (the same initial weights for the same sizes,
            so trials differ by their hyperparameters, not by luck of the draw).
        num_threads: torch threads per trial (default 1: these models are small, and a second
            thread gains little while making a busy machine's trials many times slower; use
            worker processes to use more cores); None leaves the process's setting.
    """

    def __init__(self, layer: str | Layer, train_data: str | Path | Any,
                 val_data: str | Path | Any, *,
                 metric: str = "auto", max_epochs: int = 30, seed: int | None = 42,
                 num_threads: int | None = 1) -> None:
        if metric not in METRICS:
            raise ConfigError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
            raise ConfigError(f"max_epochs must be an integer >= 1, got {max_epochs!r}")
        self.layer = layer if isinstance(layer, Layer) else get_layer(layer)()
        self.train_data, self.val_data = _file_or_units(train_data), _file_or_units(val_data)
        self.max_epochs, self.seed, self.num_threads = max_epochs, seed, num_threads
        self._data: Any = None
        labels = self.val_labels()
        self.chosen_automatically = metric == "auto"
        if metric == "auto":
            metric = "pr_auc" if known_scores(np.zeros(len(labels)), labels).has_both else "loss"
        elif metric == "pr_auc" and not known_scores(np.zeros(len(labels)), labels).has_both:
            raise ConfigError(f"metric 'pr_auc' needs benign (0) and threat (1) labels in the "
                              f"validation split {_described(self.val_data)}; use metric "
                              "'loss'")
        self.metric = metric

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_data": None}  # each process loads the files itself

    @property
    def data(self) -> dict[str, Any]:
        """The splits, read once per process, and a layer fitted on the training one (the
        same scaling `train_layer` fits, to score the validation units every epoch)."""
        if self._data is None:
            train, val = (self.layer.load_units(x) if isinstance(x, str) else x
                          for x in (self.train_data, self.val_data))
            scorer = get_layer(self.layer.name)().fit(train)
            self._data = {"train": train, "val": val, "scorer": scorer}
        return self._data

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Sample the layer's search space into `trial`; returns the trial's parameters."""
        self.layer.search_space(trial)
        return dict(trial.params)

    def split_params(self, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(optimizer settings, the detector's own arguments) of a sampled configuration."""
        return split_params(self.layer, params)  # as `train --params` reads best_params.json

    def fit(self, params: dict[str, Any], config: TrainingConfig,
            callbacks: list[Any]) -> tuple[Any, dict[str, Any]]:
        """Train one configuration; (model, results of `train_layer`)."""
        _, model_args = self.split_params(params)
        layer = get_layer(self.layer.name)()
        return train_layer(layer, self.data["train"], self.data["val"], config,
                           model_args=model_args, callbacks=callbacks)

    def val_labels(self) -> np.ndarray:
        """Labels (-1/0/1) of the validation units, in the order `val_scores` gives them."""
        return self.layer.labels(self.data["val"])

    def val_scores(self, model: Any) -> np.ndarray:
        """Anomaly scores of the validation units."""
        return self.data["scorer"].score(model, self.data["val"])

    @property
    def model_name(self) -> str:
        return self.layer.model_name

    @property
    def direction(self) -> str:
        return "maximize" if self.metric == "pr_auc" else "minimize"

    @property
    def default_study_name(self) -> str:
        return f"{self.model_name}_tuning"

    def describe(self) -> dict[str, Any]:
        """What the study records about its objective, with the fingerprint of each split's
        contents (`split_fingerprint`: the same one a trained model's sidecar records)."""
        return {"layer": self.layer.name, "model": self.model_name, "metric": self.metric,
                "direction": self.direction, "max_epochs": self.max_epochs, "seed": self.seed,
                "train_data": _described(self.train_data), "val_data": _described(self.val_data),
                **{f"{split}_fingerprint": split_fingerprint(self.layer, self.data[split])
                   for split in DATA_SPLITS}}

    def attach(self, study: optuna.Study) -> None:
        """Record this objective in `study`, or check that its trials came from the same kind
        of objective on the same data (values of another layer, metric, epoch budget or data
        do not compare).

        Raises:
            ConfigError: the study was made with another layer, metric, max_epochs, training
                data or validation data.
        """
        mine, stored = self.describe(), study.user_attrs.get("objective")
        if stored is None or _only_failed(study):
            # Nothing to compare with (every trial failed, e.g. on data since fixed): record
            # this run's objective instead of refusing the run that would give it values.
            study.set_user_attr("objective", mine)
            return
        stored = {**stored, "layer": get_layer(str(stored.get("layer"))).name}  # was 1, 2, 3
        changes = [_data_change(split, stored, mine) for split in DATA_SPLITS]
        changes = [change for change in changes if change]
        for key in ("layer", "metric", "max_epochs"):
            if stored.get(key) != mine[key]:
                raise ConfigError(f"study {study.study_name!r} holds trials with {key}="
                                  f"{stored.get(key)!r}, this run has {key}={mine[key]!r}"
                                  f"{self._why(key, stored, changes)}; their values do not "
                                  "compare: use another study name")
        if changes:
            raise ConfigError(f"study {study.study_name!r} holds trials on other data: "
                              f"{'; '.join(changes)}; values measured on other data do not "
                              "compare: give this data a new --study-name (or --output-dir), "
                              "or resume with the study's own data")
        if any(f"{split}_fingerprint" not in stored for split in DATA_SPLITS):
            # A study from before fingerprints, on the same paths: from now on it is checked.
            study.set_user_attr("objective", {**stored, **mine})

    def _why(self, key: str, stored: dict[str, Any], changes: list[str]) -> str:
        """Why this run's `key` differs, when it was not asked for: --metric auto follows
        the validation labels, and other data may have other labels."""
        if key != "metric" or not self.chosen_automatically:
            return ""
        has = ("has benign and threat rows" if self.metric == "pr_auc"
               else "lacks benign or threat rows")
        if changes:
            return (f" (chosen by --metric auto: this validation split {has}, and the data "
                    f"changed: {'; '.join(changes)})")
        return (f" (chosen by --metric auto: this validation split {has}; --metric "
                f"{stored.get('metric')} resumes the study)")

    def measure(self, trainer: Any, metrics: dict[str, float]) -> float:
        """The epoch's objective value (see OptunaPruning)."""
        if self.metric == "loss":
            return self.layer.validation_loss(metrics)
        scores = self.val_scores(trainer.model)
        if not np.isfinite(scores).all():
            return math.nan  # a diverged model: pruned
        known = known_scores(scores, self.val_labels())
        return pr_auc(known.scores, known.is_threat)

    def trial_config(self, params: dict[str, Any], checkpoint_dir: str) -> TrainingConfig:
        """A trial's TrainingConfig: the layer's defaults, the trial's optimizer settings, and
        nothing written that the trial does not need."""
        training, _ = self.split_params(params)
        return self.layer.default_config(
            num_epochs=self.max_epochs, **training, seed=self.seed, num_threads=self.num_threads,
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
                   registry_dir: str | Path | None = None,
                   threshold_rule: str | None = None) -> dict[str, Any]:
        """Train `params` fully (early stopping as in the train script), save the model with
        its validation threshold under `study_dir/best/`, and register it.

        Args:
            threshold_rule: how its alert threshold is set; None: as the production model of
                the registry records, else the pipeline's rule (`tuning.best_rule`).

        Returns:
            The checkpoint, the registered version, its validation metrics and its threshold
            rule with where it comes from; `registered` says whether this call registered the
            version. When the registry already holds a version trained by the same parameters,
            epochs, seed and rule on the same data (a finished study resumed with
            `--train-best`), nothing is trained: that version is returned, with `note`
            saying so, and no duplicate is registered.
        """
        from training.registry.registry import ModelMetadata, ModelRegistry
        from training.tuning.best_rule import best_threshold_rule
        from training.tuning.trained_best import registered_before

        from training.tuning.outputs import BEST_PARAMS

        rule, rule_from = best_threshold_rule(registry_dir, self.model_name, threshold_rule)
        recipe = {**params, "num_epochs": num_epochs, "seed": self.seed, "threshold_rule": rule}
        before = registered_before(registry_dir, self.model_name, self.layer.name, recipe,
                                   {s: split_fingerprint(self.layer, self.data[s])
                                    for s in DATA_SPLITS})
        if before is not None:
            note = (f"{self.model_name} {before.version} was trained with these parameters "
                    f"(trial {trial_number} of study {study_name}), num_epochs {num_epochs}, "
                    f"seed {self.seed} and threshold rule {rule} on the same data: not trained "
                    "or registered again (other --best_epochs, --seed or --threshold train a "
                    "new version)")
            logger.warning("%s", note)
            return {"checkpoint": None, "model_name": self.model_name,
                    "version": before.version,
                    "registry_dir": str(ModelRegistry(registry_dir, create=False).registry_dir),
                    "metrics": before.metrics, "threshold_rule": rule,
                    "threshold_rule_from": rule_from, "registered": False, "note": note}
        training, _ = self.split_params(params)
        private_folder(Path(study_dir) / "best")  # the trainer's mkdir would give it the umask's
        config = self.layer.default_config(
            num_epochs=num_epochs, **training, seed=self.seed, num_threads=self.num_threads,
            checkpoint_dir=str(Path(study_dir) / "best"), log_dir=str(Path(study_dir) / "logs"),
            save_last_state=False, threshold_rule=rule,
            params_from=origin_text(Path(study_dir) / BEST_PARAMS, study_name, trial_number))
        model, results = self.fit(params, config, [])
        model.eval()
        # `val_loss`, as every other path records the kept epoch's validation loss
        metrics = {"val_loss": float(results["best_val_loss"]),
                   "epochs_trained": float(results["epochs_trained"])}
        known = known_scores(self.val_scores(model), self.val_labels())
        if known.has_both:
            metrics["val_pr_auc"] = pr_auc(known.scores, known.is_threat)
        checkpoint = Path(results["checkpoint"])
        registry = ModelRegistry(registry_dir)
        hyperparameters = {**params, "num_epochs": num_epochs, "seed": self.seed}
        origin = f"best trial {trial_number} of tuning study {study_name}"
        metadata = ModelMetadata(
            self.model_name, "0", self.layer.name, metrics=metrics,
            hyperparameters=hyperparameters, training_dataset=_described(self.train_data),
            description=origin)
        # The next version is chosen inside the registration's transaction.
        version = registry.register_model(checkpoint, metadata, reason=origin,
                                          next_version="semver").version
        return {"checkpoint": str(checkpoint), "model_name": self.model_name,
                "version": version, "registry_dir": str(registry.registry_dir),
                "metrics": metrics, "threshold_rule": rule, "threshold_rule_from": rule_from,
                "registered": True}


def _only_failed(study: optuna.Study) -> bool:
    """Whether `study` has trials and every one failed (none measured a value, and none is
    running: a study another run is filling keeps its objective)."""
    trials = study.get_trials(deepcopy=False)
    return bool(trials) and all(t.state == optuna.trial.TrialState.FAIL for t in trials)


def _data_change(split: str, stored: dict[str, Any], mine: dict[str, Any]) -> str | None:
    """How `split`'s data differs from the study's, in words; None when it is the same. A
    study from before fingerprints can only be compared by path."""
    path, old_path = mine[f"{split}_data"], stored.get(f"{split}_data")
    new, old = mine[f"{split}_fingerprint"], stored.get(f"{split}_fingerprint")
    if new == old or (old is None and path == old_path):
        return None
    were = f"{old_path}" + ("" if old is None else f" (sha256 {old[:12]})")
    return f"{split}_data was {were}, this run has {path} (sha256 {new[:12]})"


def _file_or_units(data: Any) -> Any:
    """A split file as its path text; loaded units as they are."""
    return str(data) if isinstance(data, (str, os.PathLike)) else data


def _described(data: Any) -> str:
    return data if isinstance(data, str) else f"<{type(data).__name__} in memory>"


def _scratch() -> str | None:
    """A folder for a trial's throwaway checkpoints: memory-backed where there is one (the
    trainer writes and fsyncs the best weights at every improvement), else the default."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def make_objective(layer: str, train_data: str | Path, val_data: str | Path,
                   **kwargs: Any) -> LayerObjective:
    """The objective of `layer` (a name or alias) on the given splits."""
    return LayerObjective(layer, train_data, val_data, **kwargs)
