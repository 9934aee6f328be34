"""Continuous training: retrain when a trigger fires, deploy only past the gate, roll back.

    pipeline = ContinuousTrainingPipeline(RetrainingConfig(improvement_threshold=0.02))
    result = pipeline.run_retraining(layer_name="layer1", model_name="layer1_vae",
                                     train_fn=train_layer1_vae,
                                     train_data_path="training/data/splits/layer1_train.npz",
                                     val_data_path="training/data/splits/layer1_val.npz",
                                     test_data_path="training/data/splits/layer1_test.npz")

One run:

1. read the three split files with the layer's `load_units` (any layer: `training.layers`;
   one FeatureSpec for all three);
2. training units (`training.retraining.learnt`): chosen by their labels as the production
   model chose its own (with its recorded `benign_only`, the benign ones only, plus the
   unlabeled ones with `keep_unknown`; the caller's settings win); threat-labeled units are
   always left out;
3. triggers (`training.retraining.triggers`), on the units of step 2 only (a capture that is
   mostly attacks is not new data nor drift to a model that never learns from attacks; the
   units the production model alerts on count: they may be the shift that should fire): no
   production model yet; its age (`retrain_frequency_days`); new training rows it has not seen
   (`min_new_samples`); drift of those rows from a sample of its training rows (the data
   validator's dataset verdict, with `drift_threshold` per feature). None fired (and not
   `force`): nothing is done;
4. validation of the splits (`DataValidator`); an ERROR stops the run; with
   `exclude_alerted`, the production model scores the training units and those it alerts on
   are left out of training too, so an attacker cannot teach the model that their traffic is
   normal (they are marked threats, which training never learns from);
5. training: `train_layer` (or the caller's `train_fn`, called the way the layer's original
   train function is, `Layer.train_with`), with the production model's recorded settings
   (threshold rule, batch size, ...) unless changed, and (`train_layer`) its detector and
   architecture (`training.retraining.settings`); the checkpoint has FeatureSpec, threshold;
6. champion and challenger measured on the same test split
   (`training.retraining.retrain_gate`); `comparison_metric` "auto" is `pr_auc` when the test
   split has at least `gate.MIN_CLASS_UNITS` (5) benign and threat units each, else `val_loss`
   (the reason names the counts): with labels the floors and the paired bootstrap of
   `gate.labeled_decision`, without them the alert rate within the calibration's promise and a
   lower validation loss (`unlabeled_gate.unlabeled_decision`); both apply
   `min_accuracy_threshold` (a floor) or `max_loss_threshold` (a ceiling) and
   `improvement_threshold` over the champion; a challenger whose threshold rests on too few
   validation units is not deployed whatever the rule says (`gate.thin_calibration`, as in the
   pipeline);
7. the challenger is registered either way (metrics: those the gate measured on the test
   split, its loss there as `test_loss`, a metric it could not measure absent, never 0; `val_loss`
   the kept epoch's validation loss from the sidecar, as every way of registering records it
   (`training.registry.metadata.complete_metadata`); the decision with the test split's
   fingerprint, the data record, a sample of its training rows for later drift checks);
   when it passed, it is promoted to production in the same transaction that archives the
   champion, and only if the champion is still the one it was compared with; otherwise it
   gets the `challenger` alias. `rollback(model_name)` restores the previous production.
   A challenger whose weights (sha256), threshold and transform are a registered version's
   is not registered again (`training.retraining.repeated`): a refused challenger leaves the
   triggers as they were, and the next run on the same data trains the same model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from training.artifacts.leftovers import work_folder
from training.artifacts.model_files import load_model
from training.artifacts.npz import read_arrays
from training.errors import ConfigError, NotFoundError
from training.evaluation.alert_rate import DEFAULT_FACTOR
from training.evaluation.units import unit_times
from training.features.encoding import FeatureSpec
from training.layers.base import Layer
from training.layers.registry import get_layer
from training.layers.training import train_layer
from training.paths import models_dir
from training.registry.metadata import metric_direction
from training.registry.names import CHALLENGER, VERSION_SCHEMES
from training.registry.registry import ModelMetadata, ModelRegistry, RegisteredModel
from training.retraining import gate, triggers
from training.retraining.learnt import data_settings, training_rows, without_alerted
from training.retraining.repeated import registered_twin, repeated_note
from training.retraining.retrain_gate import retrain_decision, with_test_loss
from training.retraining.settings import RETRAINING_CHANGES, challenger_settings
from training.retraining.split_files import (
    common_spec, require_model_transform, validate_splits,
)
from training.sources.recorded import SETTINGS_KEY
from training.trainer.config import TrainingConfig

__all__ = ["RETRAINING_CHANGES", "ContinuousTrainingPipeline", "RetrainingConfig"]

logger = logging.getLogger(__name__)

TrainFn = Callable[..., tuple[Any, dict[str, Any]]]


@dataclass(frozen=True)
class RetrainingConfig:
    """When to retrain and what a challenger must show to be deployed.

    Args:
        retrain_frequency_days: retrain when the production model is at least this old.
        min_new_samples: retrain when at least this many training rows are new to it.
        drift_threshold: per-feature drift distance above which a feature drifts.
        min_accuracy_threshold: a floor of a higher-is-better comparison metric (PR-AUC)
            beyond the labeled gate's statistical ones; None (the default, as the pipeline's
            `gate.min_value` 0): those alone, which follow the base rate where a fixed floor
            cannot (a PR-AUC of 0.5 at a base rate of 0.3% is far above chance).
        comparison_metric: "auto" (pr_auc with 5 or more test rows of each label, else
            val_loss) or a metric name with a known direction
            (training.registry.metadata.metric_direction).
        improvement_threshold: minimum relative improvement over the champion (0.02 = 2%).
        registry_dir: the registry (default training/models, see training.paths).
        max_loss_threshold: the ceiling of a lower-is-better comparison metric, or None.
        exclude_alerted: also drop the training rows the production model alerts on, from
            training only (the triggers still see them).
        benign_only: learn from the benign rows only (True), or from every row not labeled a
            threat (False); None (the default): as the production model did, from its
            recorded hyperparameters (`training.retraining.learnt`).
        keep_unknown: with benign_only, learn from the unlabeled rows too; None: as the
            production model did.
        drift_share: share of drifted features that makes the dataset drift.
        reference_rows: training rows kept with each version for later drift checks.
        version_scheme: "semver" or "timestamp" versions.
        training_config: the whole TrainingConfig to train with (default: the production
            model's recorded settings, so the challenger is trained and thresholded like the
            model it challenges; without one, the layer's own with `RETRAINING_CHANGES`: see
            `training.retraining.settings`); checkpoints go to a temporary folder either way.
        training_changes: TrainingConfig fields that override those settings, e.g.
            {"threshold_rule": "quantile:0.99", "batch_size": 64}.
        alert_rate_factor: without labels, a challenger whose alert rate on the test split
            is significantly above its calibration's expected rate × this is not deployed
            (`training.retraining.unlabeled_gate`).
    """

    retrain_frequency_days: float = 7
    min_new_samples: int = 1000
    drift_threshold: float = 0.1
    min_accuracy_threshold: float | None = None
    comparison_metric: str = "auto"
    improvement_threshold: float = 0.02
    registry_dir: str | None = None
    max_loss_threshold: float | None = None
    exclude_alerted: bool = False
    benign_only: bool | None = None
    keep_unknown: bool | None = None
    drift_share: float = 0.5
    reference_rows: int = triggers.REFERENCE_ROWS
    version_scheme: str = "semver"
    training_config: TrainingConfig | None = None
    alert_rate_factor: float = DEFAULT_FACTOR
    training_changes: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = [
            ("retrain_frequency_days", self.retrain_frequency_days > 0, "> 0"),
            ("min_new_samples", self.min_new_samples >= 1, ">= 1"),
            ("drift_threshold", self.drift_threshold > 0, "> 0"),
            ("improvement_threshold", self.improvement_threshold >= 0, ">= 0"),
            ("drift_share", 0 < self.drift_share <= 1, "in (0, 1]"),
            ("reference_rows", self.reference_rows >= 1, ">= 1"),
            ("alert_rate_factor", self.alert_rate_factor >= 1, ">= 1"),
            ("version_scheme", self.version_scheme in VERSION_SCHEMES,
             f"one of {', '.join(VERSION_SCHEMES)}"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ConfigError(f"{name} must be {rule}, got {getattr(self, name)!r}")
        if self.keep_unknown and self.benign_only is False:
            raise ConfigError("keep_unknown keeps unlabeled rows beside the benign ones; it "
                              "needs benign_only True (or None), got benign_only=False")
        if self.comparison_metric != "auto":
            metric_direction(self.comparison_metric)  # ConfigError for an unknown direction
        TrainingConfig().replace(**self.training_changes)  # ConfigError naming a bad field

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

    def run_retraining(self, layer_name: str, model_name: str, train_fn: TrainFn | None,
                       train_data_path: str | Path, val_data_path: str | Path,
                       test_data_path: str | Path, *, force: bool = False,
                       now: datetime | None = None) -> dict[str, Any]:
        """One retraining run of any layer (`train_fn` None: `train_layer`). Returns a dict with
        success, retrained, deployed, new_version, comparison (the gate's decision), metrics
        (the challenger's, as registered), reason, triggers, champion_version and data (unit
        counts); after training, `registered`: False, with `existing_version` and `note`, when
        the challenger repeats a registered version (`training.retraining.repeated`)."""
        layer = get_layer(layer_name)()
        now = now or datetime.now(timezone.utc)
        splits = {name: layer.load_units(path) for name, path in
                  (("train", train_data_path), ("val", val_data_path), ("test", test_data_path))}
        splits, spec = common_spec(layer, splits)
        champion = self._champion(model_name, spec)
        result: dict[str, Any] = {
            "success": True, "retrained": False, "deployed": False, "new_version": None,
            "comparison": None, "metrics": None, "triggers": [],
            "champion_version": None if champion is None else champion.metadata.version}
        # The rows training may learn from by their labels: the triggers count and compare
        # these, not the threat-labeled ones training drops. The rows the champion alerts on
        # stay in: a model alerting on shifted traffic must not hide the shift from them.
        rows = data_settings(champion, benign_only=self.config.benign_only,
                             keep_unknown=self.config.keep_unknown)
        selected, result["data"] = training_rows(layer, splits["train"], rows,
                                                 exclude_alerted=self.config.exclude_alerted)
        fired = self._triggers(layer, model_name, champion, splits["train"], selected, now,
                               result)
        if not fired and not force:
            return {**result, "reason": "no trigger fired: " +
                    "; ".join(t["reason"] for t in result["triggers"])}
        problems = validate_splits(layer, splits)
        if problems:
            return {**result, "success": False, "reason": "data validation failed: " +
                    "; ".join(problems)}
        keep, data = selected, result["data"]
        if self.config.exclude_alerted:  # training will happen: the champion scores the rows
            keep, data = without_alerted(layer, splits["train"], champion, selected, data)
            result["data"] = data
        if not keep.any():
            raise ConfigError(f"no training unit is left to learn from: it learns from "
                              f"{data['learnt_from']}, with threat-labeled (and alerted) ones "
                              "left out; retraining needs benign or unlabeled traffic "
                              "(unlabeled: benign_only False, retrain --no-benign-only)")
        # Every kept unit is what the model learns from.
        train = layer.relabeled(splits["train"], np.where(keep, 0, 1))
        # Validation judges what training learnt from: unlabeled units count as benign there
        # too when training learns from them (a folder of unlabeled logs has no benign-labeled
        # unit to validate on), as in the pipeline.
        labels = layer.labels(splits["val"])
        val = layer.relabeled(splits["val"], np.where((labels < 0) & rows.learns_unknown, 0,
                                                      labels))
        if not (layer.labels(val) == 0).any():  # else training fails with "yielded no batch"
            counts = ", ".join(f"{int((labels == v).sum()):,} {name}" for v, name in
                               ((0, "benign"), (1, "threat"), (-1, "unlabeled")))
            raise ConfigError(f"{val_data_path}: no validation unit to set the threshold on: "
                              f"it learns from {data['learnt_from']}, and the split has none "
                              f"({counts}); give a validation split with such units"
                              + ("" if rows.learns_unknown else ", or learn from unlabeled ones "
                                 "too (retrain --keep-unknown)"))
        settings, model_args, result["training_settings"] = challenger_settings(
            layer, champion, None if train_fn else train, given=self.config.training_config,
            changes=self.config.training_changes)
        with work_folder("retrain-") as work:  # a killed run's is removed by the next
            config = settings.replace(
                model_name=model_name, layer_name=layer.name, checkpoint_dir=str(Path(work)),
                log_dir=str(Path(work) / "logs"), tensorboard=False)
            if train_fn is None:
                _, trained = train_layer(layer, train, val, config, model_args=model_args)
            else:
                _, trained = layer.train_with(train_fn, train, val, config)
            challenger = load_model(trained["checkpoint"])
            decision, measured = retrain_decision(layer, splits["test"], challenger,
                                                  champion, self.config)
            result.update(retrained=True, comparison=decision)
            twin = registered_twin(self.registry, model_name, challenger)
            if twin is not None:  # the same model again: registering it would duplicate twin
                note = repeated_note(twin, decision)
                logger.warning("%s: %s", model_name, note)
                return {**result, "registered": False, "existing_version": twin.version,
                        "note": note, "reason": note}
            # Where each split came from, whatever folder `registry show` runs in (trial R)
            data = {**data, **{f"{k}_data": str(Path(p).resolve()) for k, p in (
                ("train", train_data_path), ("val", val_data_path), ("test", test_data_path))}}
            record = {"data": data, "decision": decision, "training": {
                k: trained.get(k) for k in ("best_val_loss", "best_epoch", "epochs_trained",
                                            "train_time_s")}}
            if champion is not None and SETTINGS_KEY in champion.metadata.details:
                # it replaces the champion on the same inputs: `score` reads them alike
                record[SETTINGS_KEY] = champion.metadata.details[SETTINGS_KEY]
            metadata = ModelMetadata(
                model_name, "0", layer.name, metrics=with_test_loss(measured),
                training_dataset=str(Path(train_data_path).resolve()),  # from any folder
                hyperparameters={"model": challenger.sidecar["init_args"],
                                 "training": config.to_dict(), **rows.recorded()},
                # The test split's; the trainer's sidecar gives those of the training and
                # validation units as it saw them (relabeled), as in a pipeline run, so the
                # val_loss of both compares on one validation split.
                dataset_fingerprints={"test": gate.split_fingerprint(layer, splits["test"])},
                details=record)
            learnt = layer.unit_features(train)[layer.labels(train) == 0]
            version = self._register(metadata, trained["checkpoint"], learnt, champion,
                                     Path(work))
        result.update(new_version=version, deployed=decision["deploy"], registered=True,
                      metrics=self.registry.get_metadata(model_name, version).metrics,
                      reason=("deployed: " if decision["deploy"] else "not deployed: ")
                      + decision["reason"])
        logger.info("%s %s: %s", model_name, version, result["reason"])
        return result

    # -- steps -------------------------------------------------------------------------------

    def _champion(self, model_name: str, spec: FeatureSpec) -> RegisteredModel | None:
        try:
            champion = self.registry.load_model(model_name, stage="production")
        except NotFoundError:
            return None
        # Its transform must be the one these splits were made with: no automatic swap.
        require_model_transform(champion, spec, self.registry.registry_dir)
        return champion

    def _triggers(self, layer: Layer, model_name: str, champion: RegisteredModel | None,
                  train: Any, selected: np.ndarray, now: datetime, result: dict) -> bool:
        """Run the triggers on the training units `selected` marks by their labels
        (`learnt.training_rows`): only rows of the kinds training learns from can be new to
        the champion or drift from what it learnt; those it alerts on count too."""
        cfg = self.config
        if champion is None:
            found = [triggers.TriggerResult("no_production_model", True,
                                            f"{model_name} has no production version")]
        else:
            record = champion.metadata.details.get("data", {})
            features = layer.unit_features(train)
            new = triggers.new_rows(unit_times(layer, train), record, selected, features)
            found = [triggers.age(champion.metadata.created_at, now, cfg.retrain_frequency_days),
                     triggers.new_samples(new, cfg.min_new_samples),
                     triggers.drift(self._reference(model_name, champion),
                                    features[new], cfg.drift_threshold,
                                    cfg.drift_share, layer.feature_names(train))]
        result["triggers"] = [t.to_dict() for t in found]
        return any(t.fired for t in found)

    def _reference(self, model_name: str, champion: RegisteredModel) -> np.ndarray | None:
        if triggers.REFERENCE_FILE not in champion.metadata.files:
            return None
        data = self.registry.read_file(model_name, triggers.REFERENCE_FILE,
                                       champion.metadata.version)
        return read_arrays(data, f"{model_name} {champion.metadata.version} "
                                 f"{triggers.REFERENCE_FILE}")["features"]

    def _register(self, metadata: ModelMetadata, checkpoint: str, learnt: np.ndarray,
                  champion: RegisteredModel | None, work: Path) -> str:
        """Register the challenger (with a sample of what it learnt from), then promote it or
        point the challenger alias at it, as the decision says."""
        model_name, decision = metadata.model_name, metadata.details["decision"]
        reference = triggers.write_reference(work / triggers.REFERENCE_FILE, learnt,
                                             self.config.reference_rows)
        reason = f"continuous training: {decision['reason']}"
        # One transaction picks the next version, registers it and promotes it: no other
        # process takes the version, and a kill cannot leave a deployable version unpromoted.
        version = self.registry.register_model(
            checkpoint, replace(metadata, description=reason,
                                stage="production" if decision["deploy"] else "none"),
            files={triggers.REFERENCE_FILE: reference}, reason=reason,
            actor="continuous-training", next_version=self.config.version_scheme,
            replacing=None if champion is None else champion.metadata.version).version
        if not decision["deploy"]:
            self.registry.set_alias(model_name, CHALLENGER, version, reason=reason,
                                    actor="continuous-training")
        return version

