"""The main job: raw events to registered, evaluated, promoted detectors and one HTML report.

    result = run_pipeline(load_config("pipeline.toml"))
    print(result.report)            # <workdir>/report/index.html

Stages, all under `config.workdir`:

1. collect every source (`DataCollector`; bad records quarantined and counted) into
   `events.parquet`, and the test sources, if any, into `test_events.parquet`; events without
   a timestamp beside timed ones are left out, with a note naming their files
   (`training.pipeline.inputs`);
2. featurize layer 1 and validate it (`DataValidator`: missing values, outliers, labels,
   constant features, and drift between the training and test parts); an ERROR stops the run;
3. for each layer: featurize (`features/`); a layer with fewer units than it needs
   (`Layer.shortfall`), or whose training part holds fewer than half that to learn from
   (`Layer.train_shortfall`), is skipped, saying how many it has and needs; split
   (`splits/`: train/val/test, or train/val with the test sources as the test part; without
   timestamps "random" replaces "temporal"; `split.train_until` makes the leading time a
   grace period; a temporal split cuts every layer at the same times, on boundaries of the
   layers' windows, `event_cut_times`), train through `train_layer` and LayerTrainer
   (`checkpoints/`, TensorBoard in the run's `logs/`) on every training unit (label-free:
   unlabeled traffic is assumed benign) or, with `train.benign_only`, the benign ones; the
   threshold is calibrated on validation scores by `train.threshold` (default: the 99.9th
   percentile, `training.evaluation.calibration`);
   score the test part and report it (`report/<layer>.html`), labeled or not;
4. register the model (`models/`, the registry) and promote it past the gate
   (`training.retraining.gate`): the challenger and the production model are scored on the
   same test part; it is promoted when its ROC-AUC is clearly above chance and its PR-AUC
   above the base rate (95% bootstrap intervals; and `gate.min_value` when set), and, against
   a production model, when the paired bootstrap shows its error 1 - `gate.metric` at least
   `gate.improvement_threshold` (relative) below production's. The decision, with the rule
   and its figures, goes to the registry and the transition log. Without labels of both
   classes on the test part the first model is promoted; a later one must pass the unlabeled
   rule (`training.retraining.unlabeled_gate`): its alert rate there within its calibration's
   expected rate x 3, and a validation loss there `gate.improvement_threshold` (relative)
   below production's. Refused models get the `challenger` alias for a person to decide;
5. the fused detector (`training.pipeline.fusion`): every trained layer's tail probabilities
   combined per event, calibrated, evaluated beside each layer, registered as `fusion.json`;
6. the run's alerts page (`training.pipeline.alerts`): the test-part alerts of every layer
   as ranked incidents, `report/test_alerts.alerts.html`;
7. the run's `report/index.html` links everything; its `pipeline.json` (and the working
   directory's, the latest run's) holds the same figures; `report/index.html` of the working
   directory lists every run (`training.pipeline.history`: one folder per run,
   `runs/<UTC time>-<short id>/`, with its report, logs and TensorBoard run; `keep` prunes
   the oldest).

Labels never become features; when they come from alert events (`labels_from_alerts`), layer 3
builds its windows without the alerts (`l3.v2`) and the other layers' labeled figures are
marked circular in every report.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from training.artifacts.atomic import atomic_write
from training.artifacts.folders import real_folder
from training.artifacts.model_files import load_model
from training.collection.schema import labels_from_alerts
from training.errors import PipelineError, TooFewError
from training.evaluation.evaluator import save_report
from training.evaluation.fusion import DEFAULT_RULE
from training.evaluation.units import evaluate_units, unit_times
from training.layers.base import Layer
from training.layers.configured import configured_layer
from training.layers.layer1 import Layer1
from training.layers.training import train_layer
from training.pipeline.config import PipelineConfig
from training.pipeline.history import (RunFolder, check_keep, describe_error,
                                      failures_recorded, new_run, prune_runs, write_runs_index)
from training.console.progress import progress
from training.pipeline.alerts import write_run_alerts
from training.pipeline.fusion import TrainedLayer, fuse_layers
from training.pipeline.lock import workdir_lock
from training.pipeline.inputs import collect_events, coverage, split_strategy, validate
from training.pipeline.outcome import LayerOutcome, REPORTED
from training.pipeline.promotion import promotion_decision
from training.pipeline.splits import event_cut_times, layer_parts, refitted_units
from training.pipeline.report import render_index, render_unfinished
from training.registry.names import CHALLENGER
from training.registry.registry import ModelMetadata, ModelRegistry
from training.retraining.gate import LABELED_METRICS, has_both_labels, split_fingerprint
from training.retraining import triggers
from training.tracking.layer_run import LayerRun
from training.tracking.window import MlflowWindow, open_window

logger = logging.getLogger(__name__)

__all__ = ["Folders", "LayerOutcome", "PipelineResult", "run_pipeline"]


@dataclass(frozen=True)
class Folders:
    features: Path
    splits: Path
    checkpoints: Path
    logs: Path


@dataclass
class PipelineResult:
    """What a run did. `notes`: what the reader must know (events left out, the split used,
    where labels come from), also on the report's front page."""

    workdir: str
    report: str
    events: int
    quarantined: int
    validation: dict[str, Any]
    layers: list[LayerOutcome] = field(default_factory=list)
    seconds: float = 0.0
    test_events: int | None = None
    notes: list[str] = field(default_factory=list)
    run: str = ""
    index: str = ""
    fusion: dict[str, Any] = field(default_factory=dict)
    alerts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Run:
    """What every layer of one run shares."""

    config: PipelineConfig
    folders: Folders
    registry: ModelRegistry
    strategy: str
    alert_labels: bool
    history: RunFolder
    window: MlflowWindow | None = None
    cuts: tuple[object, object] | None = None  # the events' split times (`event_cut_times`)
    events: pa.Table | None = None  # for a featurizer that learns from the training events
    test_events: pa.Table | None = None


def run_pipeline(config: PipelineConfig, *, keep: int | None = None,
                 mlflow_uri: str | None = None,
                 describe: Callable[[Exception], str] = describe_error) -> PipelineResult:
    """Run every stage (see the module docstring) and return where everything went. A run
    that raises leaves its error line (`describe(exc)`; the CLI names the flags typed) in its
    folder and on the working directory's front page, which says it failed.

    Args:
        keep: keep only the newest `keep` run folders (this one included); None keeps all.
        mlflow_uri: also log each layer's run to MLflow there (else $MLFLOW_TRACKING_URI,
            else not), and mirror the registered versions (`training.tracking`).

    Raises:
        PipelineError: a stage failed; the message names the stage and what to do.
        ConfigError: `keep` is below 1.
    """
    if keep is not None:
        check_keep(keep)  # before any work
    # The failure is recorded after the lock is let go (`with` leaves the last one first).
    with failures_recorded(config.workdir, describe), workdir_lock(config.workdir):
        return _run(config, keep, mlflow_uri)


def _run(config: PipelineConfig, keep: int | None, mlflow_uri: str | None) -> PipelineResult:
    started = time.perf_counter()
    work = config.workdir
    history = new_run(work)
    folders = Folders(work / "features", work / "splits", work / "checkpoints", history.logs)
    for folder in (*vars(folders).values(), work / "report", work / "models"):
        real_folder(folder)  # a link planted in the workdir is refused, never written through
    # Until the run ends, the front page says it is unfinished (replaced at the end).
    _write(work / "report" / "index.html", render_unfinished(str(work)))
    notes: list[str] = []
    events, quarantined = collect_events(config.sources, work / "events.parquet",
                                         config.max_events, notes)
    test_events = None
    if config.test_sources:
        test_events, more = collect_events(config.test_sources, work / "test_events.parquet",
                                           config.max_events, notes, "the test sources")
        quarantined += more
    judged = events if test_events is None else test_events
    alert_labels = labels_from_alerts(judged)
    if alert_labels:
        notes.append("the labels come from alert events (every threat is an alert record): "
                     "layer 3 builds its windows without them (layout l3.v2) and only labels "
                     "them with alerts; figures of layers whose units are made of the alerts are "
                     "marked circular")
    strategy = split_strategy(config.split.strategy, events, notes)
    layers = [configured_layer(name, alert_labels=alert_labels, drop_fields=config.drop_fields,
                               options=config.train[name].features) for name in config.layers]
    units, test_units = {}, {}
    with progress("featurizing", len(layers), "layers") as bar:
        for layer in layers:
            units[layer.name] = layer.featurize(events)
            units[layer.name].save(folders.features / layer.features_file)
            if test_events is not None:
                test_units[layer.name] = layer.featurize(test_events)
                test_units[layer.name].save(folders.features / f"test_{layer.features_file}")
            bar.update(1, layer=layer.name)
    # Data quality is checked on the event vectors, whichever layers run.
    vectors = units.get(Layer1.name) or Layer1().featurize(events)
    test_vectors = None if test_events is None else (
        test_units.get(Layer1.name) or Layer1().featurize(test_events))
    shortfalls = {layer.name: layer.shortfall(units[layer.name], strategy) for layer in layers}
    cuts = event_cut_times(events, strategy, config.split, test_events is not None, [
        layer.window_seconds for layer in layers if shortfalls[layer.name] is None], notes)
    validation = validate(vectors, test_vectors, config, strategy, cuts, history.folder,
                          (events, test_events))
    result = PipelineResult(str(work), str(history.report / "index.html"), events.num_rows,
                            quarantined, validation, notes=notes,
                            test_events=None if test_events is None else test_events.num_rows,
                            run=history.id, index=str(work / "report" / "index.html"))
    run = _Run(config, folders, ModelRegistry(registry_dir=work / "models"), strategy,
               alert_labels, history, open_window(mlflow_uri), cuts, events, test_events)
    trained: list[TrainedLayer] = []
    for layer in layers:
        short = shortfalls[layer.name]
        if short is not None:
            result.layers.append(_skipped(layer, short, events))
            continue
        logger.info("%s: split, train, evaluate, register", layer.name)
        result.layers.append(_run_layer(layer, units[layer.name], test_units.get(layer.name),
                                        run, trained))
    if trained:  # the first layer's training settings decide the fused threshold's rule
        first = config.train[trained[0].layer.name]
        result.fusion = fuse_layers(trained, events, test_events, rule=DEFAULT_RULE,
                                    threshold_rule=first.threshold,
                                    benign_only=bool(first.benign_only),
                                    registry=run.registry)
    result.alerts = write_run_alerts(trained, events if test_events is None else test_events,
                                     history.report)
    result.seconds = round(time.perf_counter() - started, 2)
    summary = json.dumps(result.to_dict(), indent=2, default=str)
    _write(history.summary, summary)
    _write(work / "pipeline.json", summary)  # the latest run's, where it always was
    _write(Path(result.report), render_index(result))
    if keep is not None:
        prune_runs(work, keep, history)
    write_runs_index(work)
    return result


def _skipped(layer: Layer, short: str, events: pa.Table | None = None) -> LayerOutcome:
    missing = "" if events is None else coverage(events, getattr(layer.featurizer, "entity", None))
    reason = f"{short}" + (f" ({missing})" if missing else "")
    logger.info("%s skipped: %s", layer.name, reason)
    return LayerOutcome(layer.name, layer.model_name, layer.unit, skipped=reason)


def _run_layer(layer: Layer, units: Any, test_units: Any, run: _Run,
               trained: list[TrainedLayer]) -> LayerOutcome:
    """Split, train, evaluate and register one layer; its model joins `trained` (the fusion)."""
    started = time.perf_counter()
    config, folders = run.config, run.folders
    try:
        splits, notes = layer_parts(layer, units, test_units, config.split, run.strategy,
                                    config.seed, run.cuts)
    except TooFewError as exc:  # e.g. bursty data: too few distinct times to cut
        return _skipped(layer, f"{len(layer.labels(units)):,} {layer.unit}s: {exc}")
    settings = config.train[layer.name]
    refit = refitted_units(layer, run.events, run.test_events, splits["train"],
                           settings.benign_only, bool(settings.keep_unknown))
    if refit is not None:  # featurized again with what the training part holds; the same cut
        units, test_units = refit
        units.save(folders.features / layer.features_file)
        if test_units is not None:
            test_units.save(folders.features / f"test_{layer.features_file}")
        splits, notes = layer_parts(layer, units, test_units, config.split, run.strategy,
                                    config.seed, run.cuts)
    labels = layer.labels(splits["train"])  # benign only: the rest is not learnt from
    learns = (labels == 0) | ((labels < 0) & bool(settings.keep_unknown))
    short = layer.train_shortfall(splits["train"], learns if settings.benign_only else None)
    if short is not None:
        return _skipped(layer, f"{len(layer.labels(units)):,} {layer.unit}s, but {short}"
                        + (" (set train_until later)" if config.split.grace is not None
                           else ""))
    # With test sources the test part is saved with the features (features/test_*.npz).
    layer.save_splits({k: v for k, v in splits.items() if test_units is None or k != "test"},
                      folders.splits)
    train, val = splits["train"], splits["val"]
    if settings.keep_unknown:  # unknown units count as benign for what training learns from
        train, val = (layer.relabeled(part, np.where(layer.labels(part) < 0, 0,
                                                     layer.labels(part)))
                      for part in (train, val))
    # One intra-op thread: these models are small enough that a second thread costs more in
    # synchronisation than it gives, several times more when other work shares the cores.
    train_config = layer.default_config(
        **settings.trainer_changes(), seed=config.seed, num_threads=1,
        checkpoint_dir=str(folders.checkpoints), log_dir=str(folders.logs))
    with LayerRun.start(run.window, f"{run.history.id} {layer.name}", {
        "maximus.run": run.history.id, "maximus.layer": layer.name,
        "maximus.model": layer.model_name, "maximus.workdir": str(config.workdir)}
                       ) as tracked:  # the MLflow run ends FAILED if anything below raises
        _, results = train_layer(layer, train, val, train_config, model_args=settings.model,
                                 benign_only=settings.benign_only, callbacks=tracked.callbacks)
        challenger = load_model(results["checkpoint"])  # what gets registered is what is measured
        test = splits["test"]
        labels = layer.labels(test)
        circular = layer.circular(run.alert_labels)
        metrics: dict[str, Any] = {}
        report = ""
        if len(labels):
            evaluated = evaluate_units(layer, challenger.model, test, challenger.threshold,
                                       calibration=challenger.calibration, unlabeled_ok=True,
                                       circular=circular)
            evaluated.training_history = results.get("history") or []
            save_report(evaluated, run.history.report / layer.name,
                        f"{layer.model_name}: test {layer.unit}s")
            metrics = {k: v for k, v in evaluated.to_dict().items() if k in REPORTED}
            benign, threat = int((labels == 0).sum()), int((labels == 1).sum())
            if (benign > 0) != (threat > 0):
                notes.append(f"the test part has one class ({benign:,} benign, {threat:,} threat "
                             f"{layer.unit}s): ROC-AUC, PR-AUC and detection rates need both")
            report = f"{layer.name}.html"
        else:
            notes.append(f"the test part has no {layer.unit}: nothing to evaluate")
        decision, version = _register(layer, challenger, results, metrics, has_both_labels(labels),
                                      run, train, test)
        tracked.finish(metrics, run.history.report if report else None, layer.name, run.registry,
                       layer.model_name, version)
    stage_now = run.registry.get_metadata(layer.model_name, version).stage
    if challenger.calibration is not None:
        trained.append(TrainedLayer(layer, challenger.model, challenger.calibration,
                                    layer.model_name, version, splits, units))
    logger.info("%s %s: %s", layer.model_name, version, decision["reason"])
    return LayerOutcome(layer.name, layer.model_name, layer.unit, version, stage_now, decision,
                        metrics, _train_summary(results, settings.training_filter), report,
                        round(time.perf_counter() - started, 2),
                        threshold_rule=challenger.threshold_rule, circular=circular,
                        notes=notes)


def _register(layer: Layer, challenger: Any, results: dict[str, Any],
              metrics: dict[str, Any], labeled: bool, run: _Run, train: Any, test: Any
              ) -> tuple[dict[str, Any], str]:
    config, registry = run.config, run.registry
    name = layer.model_name
    champion = _production(registry, name)
    decision = promotion_decision(layer, challenger, champion, test, labeled, config.gate,
                                  run.events if run.test_events is None else run.test_events)
    numbers = {k: float(v) for k, v in metrics.items()
               if k in LABELED_METRICS and isinstance(v, (int, float))}
    numbers["val_loss"] = float(results["best_val_loss"])
    # What `retrain` needs to tell new units and drift from what this model learnt from.
    learnt, features = layer.fit_rows(layer.labels(train)), layer.unit_features(train)
    details = {"decision": decision, **config.source_settings,  # score reads as trained
               "data": triggers.training_record(unit_times(layer, train), learnt, features)}
    reference = triggers.write_reference(
        run.folders.checkpoints / f"{name}_{triggers.REFERENCE_FILE}", features[learnt],
        triggers.REFERENCE_ROWS)
    if challenger.threshold_rule:
        details["threshold_rule"] = challenger.threshold_rule
    if metrics and layer.circular(run.alert_labels):
        details["circular"] = layer.circular(run.alert_labels)
    # One transaction registers the next version and promotes it: a kill cannot leave a
    # version that was to be deployed in stage none.
    version = registry.register_model(results["checkpoint"], ModelMetadata(
        name, "0", layer.name, metrics=numbers,
        # The sidecar adds what training used (batch size, learning rate, ...) and the
        # fingerprints of the training and validation parts.
        hyperparameters={"benign_only": config.train[layer.name].benign_only,
                         "keep_unknown": config.train[layer.name].keep_unknown},
        dataset_fingerprints={"test": split_fingerprint(layer, test)},
        training_dataset=str((config.workdir / "events.parquet").resolve()), details=details,
        stage="production" if decision["deploy"] else "none"),
        files={triggers.REFERENCE_FILE: reference}, reason="pipeline run", actor="pipeline",
        next_version="semver",
        stage_reason=decision["reason"],
        replacing=None if champion is None else champion.metadata.version).version
    if not decision["deploy"]:
        registry.set_alias(name, CHALLENGER, version, reason=decision["reason"], actor="pipeline")
    return decision, version


def _production(registry: ModelRegistry, name: str) -> Any:
    try:
        return registry.load_model(name, stage="production")
    except PipelineError:  # NotFoundError: none yet
        return None


def _train_summary(results: dict[str, Any], learnt_from: str) -> dict[str, Any]:
    keep = ("best_val_loss", "best_epoch", "epochs_trained", "train_units", "train_time_s",
            "checkpoint")
    summary = {k: results.get(k) for k in keep}
    summary["checkpoint"] = str(summary["checkpoint"])
    summary["learnt_from"] = learnt_from
    return summary


def _write(path: Path, text: str) -> None:
    with atomic_write(path) as handle:
        handle.write(text.encode("utf-8"))
