"""Continuous training: retrain when a trigger fires, deploy only past the gate, roll back.

    pipeline = ContinuousTrainingPipeline(RetrainingConfig(improvement_threshold=0.02))
    result = pipeline.run_retraining(layer_name="layer1", model_name="layer1_vae",
                                     train_fn=train_layer1_vae,
                                     train_data_path="training/data/splits/layer1_train.npz",
                                     val_data_path="training/data/splits/layer1_val.npz",
                                     test_data_path="training/data/splits/layer1_test.npz")

One run:

1. read the three split files (`DatasetSplit.load`; one FeatureSpec for all three);
2. triggers (`training.retraining.triggers`): no production model yet; its age
   (`retrain_frequency_days`); new training rows it has not seen (`min_new_samples`); drift of
   those rows from a sample of its training rows (the data validator's dataset verdict, with
   `drift_threshold` per feature). None fired (and not `force`): nothing is done;
3. validation of the splits (`DataValidator`); an ERROR stops the run;
4. training rows: threat-labeled rows are dropped, and with `exclude_alerted` the rows the
   production model alerts on, so an attacker cannot teach the model that their traffic is
   normal;
5. `train_fn(train_x, train_y, val_x, val_y, config=..., feature_spec=...)` (the layer's train
   function; its checkpoint carries the FeatureSpec and the validation threshold);
6. champion and challenger measured on the same test split (`training.retraining.gate`);
   `comparison_metric` "auto" is `pr_auc` when the test split has benign and threat labels,
   else `val_loss`; the gate needs the floor (`min_accuracy_threshold` for higher-is-better
   metrics, `max_loss_threshold` for lower-is-better ones) and a relative improvement of at
   least `improvement_threshold` over the champion;
7. the challenger is registered either way (metrics, the decision with the test split's
   fingerprint, the data record, a sample of its training rows for later drift checks);
   when it passed, it is promoted to production in the same transaction that archives the
   champion, and only if the champion is still the one it was compared with; otherwise it
   gets the `challenger` alias. `rollback(model_name)` restores the previous production.
"""

from __future__ import annotations

import io
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.data_validator import DataValidator
from training.datasets.split import DatasetSplit
from training.errors import ConfigError, NotFoundError, NotSupportedError, RegistryError, SchemaError
from training.model_files import load_model
from training.model_registry import ModelMetadata, ModelRegistry, RegisteredModel
from training.paths import models_dir
from training.registry.metadata import metric_direction
from training.registry.names import CHALLENGER, VERSION_SCHEMES
from training.retraining import gate, triggers
from training.scoring import model_scores
from training.trainer_config import TrainingConfig

logger = logging.getLogger(__name__)

TrainFn = Callable[..., tuple[Any, dict[str, Any]]]
# The trainer's defaults, seeded, with batches of 256 (retraining runs on at least
# min_new_samples rows: 8x fewer steps per epoch than 32) and one torch thread (the layer-1
# train script's default too: as fast for these small models, and far faster when other jobs
# share the cores).
DEFAULT_TRAINING = TrainingConfig(seed=42, batch_size=256, num_threads=1)


@dataclass(frozen=True)
class RetrainingConfig:
    """When to retrain and what a challenger must show to be deployed.

    Args:
        retrain_frequency_days: retrain when the production model is at least this old.
        min_new_samples: retrain when at least this many training rows are new to it.
        drift_threshold: per-feature drift distance above which a feature drifts.
        min_accuracy_threshold: the floor of a higher-is-better comparison metric (PR-AUC).
        comparison_metric: "auto" (pr_auc with labeled test rows, else val_loss) or a metric
            name with a known direction (training.registry.metadata.metric_direction).
        improvement_threshold: minimum relative improvement over the champion (0.02 = 2%).
        registry_dir: the registry (default training/models, see training.paths).
        max_loss_threshold: the ceiling of a lower-is-better comparison metric, or None.
        exclude_alerted: also drop the training rows the production model alerts on.
        drift_share: share of drifted features that makes the dataset drift.
        reference_rows: training rows kept with each version for later drift checks.
        version_scheme: "semver" or "timestamp" versions.
        training_config: the TrainingConfig given to train_fn (default `DEFAULT_TRAINING`);
            checkpoints go to a temporary folder either way.
    """

    retrain_frequency_days: float = 7
    min_new_samples: int = 1000
    drift_threshold: float = 0.1
    min_accuracy_threshold: float | None = 0.85
    comparison_metric: str = "auto"
    improvement_threshold: float = 0.02
    registry_dir: str | None = None
    max_loss_threshold: float | None = None
    exclude_alerted: bool = False
    drift_share: float = 0.5
    reference_rows: int = 5000
    version_scheme: str = "semver"
    training_config: TrainingConfig | None = None

    def __post_init__(self) -> None:
        checks = [
            ("retrain_frequency_days", self.retrain_frequency_days > 0, "> 0"),
            ("min_new_samples", self.min_new_samples >= 1, ">= 1"),
            ("drift_threshold", self.drift_threshold > 0, "> 0"),
            ("improvement_threshold", self.improvement_threshold >= 0, ">= 0"),
            ("drift_share", 0 < self.drift_share <= 1, "in (0, 1]"),
            ("reference_rows", self.reference_rows >= 1, ">= 1"),
            ("version_scheme", self.version_scheme in VERSION_SCHEMES,
             f"one of {', '.join(VERSION_SCHEMES)}"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ConfigError(f"{name} must be {rule}, got {getattr(self, name)!r}")
        if self.comparison_metric != "auto":
            metric_direction(self.comparison_metric)  # ConfigError for an unknown direction

    def floor(self, metric: str) -> float | None:
        """The absolute bound the gate applies to `metric`."""
        if metric_direction(metric) == "max":
            return self.min_accuracy_threshold
        return self.max_loss_threshold


class ContinuousTrainingPipeline:
    """Retraining runs against one registry (see the module docstring)."""

    def __init__(self, config: RetrainingConfig | None = None) -> None:
        self.config = config or RetrainingConfig()
        self.registry = ModelRegistry(self.config.registry_dir or models_dir())

    def rollback(self, model_name: str, reason: str = "rollback") -> str:
        """Restore the previous production version; returns it."""
        return self.registry.rollback(model_name, reason=reason, actor="continuous-training")

    def run_retraining(self, layer_name: str, model_name: str, train_fn: TrainFn,
                       train_data_path: str | Path, val_data_path: str | Path,
                       test_data_path: str | Path, *, force: bool = False,
                       now: datetime | None = None) -> dict[str, Any]:
        """One retraining run. Returns a dict with success, retrained, deployed, new_version,
        comparison (the gate's decision), metrics (the challenger's), reason, triggers,
        champion_version and data (row counts)."""
        if layer_name != "layer1":
            raise NotSupportedError(f"retraining {layer_name!r} is not available: run_retraining "
                                    "reads layer-1 split files (features, labels); use layer1")
        now = now or datetime.now(timezone.utc)
        splits = {name: DatasetSplit.load(path, name) for name, path in
                  (("train", train_data_path), ("val", val_data_path), ("test", test_data_path))}
        spec = _common_spec(splits)
        champion = self._champion(model_name, spec)
        result: dict[str, Any] = {
            "success": True, "retrained": False, "deployed": False, "new_version": None,
            "comparison": None, "metrics": None, "triggers": [],
            "champion_version": None if champion is None else champion.metadata.version}
        fired = self._triggers(model_name, champion, splits["train"], now, result)
        if not fired and not force:
            return {**result, "reason": "no trigger fired: " +
                    "; ".join(t["reason"] for t in result["triggers"])}
        problems = _validate(splits)
        if problems:
            return {**result, "success": False, "reason": "data validation failed: " +
                    "; ".join(problems)}
        train_x, train_y, data = self._training_rows(splits["train"], champion)
        result["data"] = data
        with tempfile.TemporaryDirectory(prefix="retrain-") as work:
            config = (self.config.training_config or DEFAULT_TRAINING).replace(
                model_name=model_name, layer_name=layer_name, checkpoint_dir=str(Path(work)),
                log_dir=str(Path(work) / "logs"), tensorboard=False)
            _, trained = train_fn(train_x, train_y, splits["val"].features, splits["val"].labels,
                                  config=config, feature_spec=spec)
            challenger = load_model(trained["checkpoint"], expected_spec=spec)
            decision, metrics = self._gate(splits["test"], challenger, champion)
            result.update(retrained=True, metrics=metrics, comparison=decision)
            record = {"data": data, "decision": decision, "training": {
                k: trained.get(k) for k in ("best_val_loss", "best_epoch", "epochs_trained",
                                            "train_time_s")}}
            metadata = ModelMetadata(
                model_name, "0", layer_name, metrics=metrics, training_dataset=str(train_data_path),
                hyperparameters={"model": challenger.sidecar["init_args"],
                                 "training": config.to_dict()},
                dataset_fingerprints={k: gate.split_fingerprint(v) for k, v in splits.items()},
                details=record)
            version = self._register(metadata, trained["checkpoint"], train_x, champion,
                                     Path(work))
        result.update(new_version=version, deployed=decision["deploy"],
                      reason=("deployed: " if decision["deploy"] else "not deployed: ")
                      + decision["reason"])
        logger.info("%s %s: %s", model_name, version, result["reason"])
        return result

    # -- steps -------------------------------------------------------------------------------

    def _champion(self, model_name: str, spec: Any) -> RegisteredModel | None:
        try:
            return self.registry.get_model(model_name, stage="production", expected_spec=spec)
        except NotFoundError:
            return None
        except SchemaError as exc:  # cannot be compared on these splits: no automatic swap
            raise SchemaError(f"the production {model_name} was trained on another feature "
                              f"transform than these splits ({exc}); promote a model trained "
                              "on the new features by hand") from exc

    def _triggers(self, model_name: str, champion: RegisteredModel | None,
                  train: DatasetSplit, now: datetime, result: dict) -> bool:
        cfg = self.config
        if champion is None:
            found = [triggers.TriggerResult("no_production_model", True,
                                            f"{model_name} has no production version")]
        else:
            record = champion.metadata.details.get("data", {})
            new = triggers.new_rows(train, record)
            found = [triggers.age(champion.metadata.created_at, now, cfg.retrain_frequency_days),
                     triggers.new_samples(new, cfg.min_new_samples),
                     triggers.drift(self._reference(model_name, champion), train.features[new],
                                    cfg.drift_threshold, cfg.drift_share)]
        result["triggers"] = [t.to_dict() for t in found]
        return any(t.fired for t in found)

    def _reference(self, model_name: str, champion: RegisteredModel) -> np.ndarray | None:
        if triggers.REFERENCE_FILE not in champion.metadata.files:
            return None
        data = self.registry.read_file(model_name, triggers.REFERENCE_FILE,
                                       champion.metadata.version)
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return npz["features"]

    def _training_rows(self, train: DatasetSplit, champion: RegisteredModel | None
                       ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        keep = train.labels != 1
        data = {"train_rows_total": len(train), "excluded_threat_rows": int((~keep).sum()),
                "excluded_alerted_rows": 0}
        if self.config.exclude_alerted and champion is not None and champion.threshold is not None:
            x = torch.from_numpy(np.ascontiguousarray(train.features, dtype=np.float32))
            scores = model_scores(champion.model, (x[i:i + gate.BATCH] for i in
                                                   range(0, len(x), gate.BATCH)))
            alerted = keep & (scores >= champion.threshold)
            data["excluded_alerted_rows"] = int(alerted.sum())
            keep &= ~alerted
        if not keep.any():
            raise ConfigError("no training row is left after dropping threat-labeled (and "
                              "alerted) rows; retraining needs benign or unlabeled traffic")
        timestamps = train.columns.get("timestamps")
        data["train_rows"] = int(keep.sum())
        data["train_until"] = (str(np.asarray(timestamps, "datetime64[us]")[keep].max())
                               if timestamps is not None else None)
        return train.features[keep], train.labels[keep], data

    def _gate(self, test: DatasetSplit, challenger, champion: RegisteredModel | None
              ) -> tuple[dict[str, Any], dict[str, float]]:
        metric = self.config.comparison_metric
        if metric == "auto":
            metric = "pr_auc" if gate.has_both_labels(test.labels) else "val_loss"
        new = gate.evaluate_model(challenger.model, challenger.threshold, test)
        old = None if champion is None else \
            gate.evaluate_model(champion.model, champion.threshold, test)
        decision = gate.decide(metric, new, old, floor=self.config.floor(metric),
                               improvement=self.config.improvement_threshold)
        return {**decision.to_dict(), "test_fingerprint": gate.split_fingerprint(test),
                "test_rows": len(test), "champion_metrics": old}, new

    def _register(self, metadata: ModelMetadata, checkpoint: str, train_x: np.ndarray,
                  champion: RegisteredModel | None, work: Path) -> str:
        """Register the challenger (with a sample of its training rows), then promote it or
        point the challenger alias at it, as the decision says."""
        model_name, decision = metadata.model_name, metadata.details["decision"]
        reference = work / triggers.REFERENCE_FILE
        np.savez_compressed(reference, features=triggers.reference_sample(
            train_x, self.config.reference_rows, seed=0))
        replacing = None if champion is None else champion.metadata.version
        reason = f"continuous training: {decision['reason']}"
        for _ in range(5):  # another process may take the version between the two calls
            version = self.registry.next_version(model_name, self.config.version_scheme)
            try:
                self.registry.register_model(
                    checkpoint, replace(metadata, version=version, description=reason),
                    files={triggers.REFERENCE_FILE: reference}, reason=reason,
                    actor="continuous-training")
                break
            except RegistryError as exc:
                if "already registered" not in str(exc):
                    raise
        else:
            raise RegistryError(f"could not register {model_name}: five versions taken")
        if decision["deploy"]:
            self.registry.transition_stage(model_name, version, "production", reason=reason,
                                           actor="continuous-training", replacing=replacing)
        else:
            self.registry.set_alias(model_name, CHALLENGER, version, reason=reason,
                                    actor="continuous-training")
        return version


def _common_spec(splits: dict[str, DatasetSplit]) -> Any:
    specs = {name: s.spec for name, s in splits.items()}
    missing = [name for name, spec in specs.items() if spec is None]
    if missing:
        raise SchemaError(f"the {', '.join(missing)} split file(s) have no FeatureSpec; "
                          "retraining needs files written by the dataset builder")
    for name in ("val", "test"):
        specs["train"].require(specs[name], f"the {name} split")
    return specs["train"]


def _validate(splits: dict[str, DatasetSplit]) -> list[str]:
    """ERROR-level findings of the data validator on each split."""
    problems = []
    for name, split in splits.items():
        result = DataValidator(split.features, split.labels).validate(
            check_outliers=False, check_distributions=name == "train")
        problems += [f"{name}: {issue.message}" for issue in result.issues
                     if issue.severity.value == "error"]
    return problems
