"""The main job: raw events to registered, evaluated, promoted detectors and one HTML report.

    result = run_pipeline(load_config("pipeline.toml"))
    print(result.report)            # <workdir>/report/index.html

Stages, all under `config.workdir`:

1. collect every source (`DataCollector`; bad records quarantined and counted) into
   `events.parquet`;
2. featurize layer 1 and validate it (`DataValidator`: missing values, outliers, labels,
   constant features, and drift between the training and test parts); an ERROR stops the run;
3. for each layer: featurize (`features/`), split (`splits/`), train through the layer's
   train function and LayerTrainer (`checkpoints/`, TensorBoard in `logs/`), score the test
   part and evaluate it at the threshold calibrated on validation data (`report/<layer>.html`);
4. register the model (`models/`, the registry) and promote it past the gate
   (`training.retraining.gate`): the challenger and the production model are scored on the
   same test part; it is promoted when its ROC-AUC is clearly above chance and its PR-AUC
   above the base rate (95% bootstrap intervals; and `gate.min_value` when set), and, against
   a production model, when the paired bootstrap shows its error 1 - `gate.metric` at least
   `gate.improvement_threshold` (relative) below production's. The decision, with the rule
   and its figures, goes to the registry and the transition log. Without labels on the test
   part nothing can be compared: the first model is promoted, later ones get the
   `challenger` alias for a person to decide;
5. `report/index.html` links everything; `pipeline.json` holds the same figures.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from training.artifacts.atomic import atomic_write
from training.artifacts.model_files import load_model
from training.collection.collector import DataCollector
from training.datasets.validator import DataValidator, ValidationSeverity
from training.errors import PipelineError, SchemaError
from training.evaluation.evaluator import save_report
from training.evaluation.units import evaluate_units
from training.layers.base import Layer, get_layer, layer_for_spec
from training.layers.layer1 import Layer1
from training.layers.training import train_layer
from training.pipeline.report import render_index
from training.pipeline.config import PipelineConfig
from training.console.progress import progress
from training.registry.names import CHALLENGER
from training.registry.registry import ModelMetadata, ModelRegistry
from training.retraining.gate import LABELED_METRICS, has_both_labels, labeled_decision

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Folders:
    features: Path
    splits: Path
    checkpoints: Path
    logs: Path


@dataclass
class LayerOutcome:
    """What one layer produced."""

    layer: str
    model_name: str
    unit: str
    version: str
    stage: str
    decision: dict[str, Any]
    metrics: dict[str, Any]
    train: dict[str, Any]
    report: str
    seconds: float


@dataclass
class PipelineResult:
    workdir: str
    report: str
    events: int
    quarantined: int
    validation: dict[str, Any]
    layers: list[LayerOutcome] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_pipeline(config: PipelineConfig) -> PipelineResult:
    """Run every stage (see the module docstring) and return where everything went.

    Raises:
        PipelineError: a stage failed; the message names the stage and what to do.
    """
    started = time.perf_counter()
    work = config.workdir
    folders = Folders(work / "features", work / "splits", work / "checkpoints", work / "logs")
    for folder in (*vars(folders).values(), work / "report"):
        Path(folder).mkdir(parents=True, exist_ok=True)
    events, quarantined = _collect(config, work)
    layers = [get_layer(name)() for name in config.layers]
    units = {}
    with progress("featurizing", len(layers), "layers") as bar:
        for layer in layers:
            units[layer.name] = layer.featurize(events)
            units[layer.name].save(folders.features / layer.features_file)
            bar.update(1, layer=layer.name)
    # Data quality is checked on the event vectors, whichever layers run.
    vectors = units.get(Layer1.name) or Layer1().featurize(events)
    validation = _validate(vectors, config, work)
    result = PipelineResult(str(work), str(work / "report" / "index.html"), events.num_rows,
                            quarantined, validation)
    registry = ModelRegistry(registry_dir=work / "models")
    for layer in layers:
        logger.info("%s: split, train, evaluate, register", layer.name)
        result.layers.append(_run_layer(layer, units[layer.name], config, folders, registry,
                                        work))
    result.seconds = round(time.perf_counter() - started, 2)
    _write(work / "pipeline.json", json.dumps(result.to_dict(), indent=2, default=str))
    _write(Path(result.report), render_index(result))
    return result


def _collect(config: PipelineConfig, work: Path) -> tuple[pa.Table, int]:
    collector = DataCollector(list(config.sources), output_dir=work / "collected", checkpoint_enabled=False)
    events = collector.collect_table(max_events=config.max_events)
    if not events.num_rows:
        raise SchemaError(f"the sources gave no event ({len(collector.quarantined)} quarantined "
                          "records); check the paths and the source types")
    with atomic_write(work / "events.parquet", private=True) as handle:  # raw input
        pq.write_table(events, handle)
    logger.info("collected %d events (%d quarantined)", events.num_rows, len(collector.quarantined))
    return events, len(collector.quarantined)


def _validate(vectors: Any, config: PipelineConfig, work: Path) -> dict[str, Any]:
    """Quality of the event vectors, and drift of the test part against the train part."""
    features, labels = vectors.features, vectors.labels
    splits = Layer1().split(vectors, config.split.strategy, config.split.ratios, config.seed)
    validator = DataValidator(splits["test"].features, None, splits["train"].features)
    drift = validator.validate(check_missing=False, check_outliers=False, check_labels=False,
                               check_distributions=False, check_drift=True)
    quality = DataValidator(features, labels).validate()
    quality.issues.extend(drift.issues)
    quality.statistics["drift"] = drift.statistics.get("drift")
    for suffix in (".txt", ".json"):
        DataValidator.save_report(quality, work / "report" / f"validation{suffix}")
    errors = [i.message for i in quality.issues if i.severity is ValidationSeverity.ERROR]
    if errors:
        raise PipelineError(f"validation failed ({work / 'report' / 'validation.txt'}): "
                            + "; ".join(errors))
    return {"passed": quality.passed,
            "issues": [f"{i.severity.value}: {i.check_name}: {i.message}" for i in quality.issues]}


def _run_layer(layer: Layer, units: Any, config: PipelineConfig, folders: Folders,
               registry: ModelRegistry, work: Path) -> LayerOutcome:
    started = time.perf_counter()
    splits = layer.split(units, config.split.strategy, config.split.ratios, config.seed)
    layer.save_splits(splits, folders.splits)
    settings = config.train[layer.name]
    # One intra-op thread: these models are small enough that a second thread costs more in
    # synchronisation than it gives, several times more when other work shares the cores.
    train_config = layer.default_config(
        **settings.trainer_changes(), seed=config.seed, num_threads=1,
        checkpoint_dir=str(folders.checkpoints), log_dir=str(folders.logs))
    _, results = train_layer(layer, splits["train"], splits["val"], train_config,
                             model_args=settings.model)
    challenger = load_model(results["checkpoint"])  # what gets registered is what is measured
    test = splits["test"]
    labels = layer.labels(test)
    report_path = work / "report" / layer.name
    metrics: dict[str, Any] = {}
    if (labels >= 0).any():
        evaluated = evaluate_units(layer, challenger.model, test, challenger.threshold)
        evaluated.training_history = results.get("history") or []
        save_report(evaluated, report_path, f"{layer.model_name}: test {layer.unit}s")
        metrics = {k: v for k, v in evaluated.to_dict().items()
                   if k in (*LABELED_METRICS, "detection_at_fpr", "n_samples",
                            "n_unknown_excluded", "threshold", "per_attack_type", "alerts")}
    decision, version = _register(layer, challenger, results, metrics, has_both_labels(labels),
                                  config, registry, test)
    stage_now = registry.get_metadata(layer.model_name, version).stage
    logger.info("%s %s: %s", layer.model_name, version, decision["reason"])
    return LayerOutcome(layer.name, layer.model_name, layer.unit, version, stage_now, decision,
                        metrics, _train_summary(results), f"{layer.name}.html" if metrics else "",
                        round(time.perf_counter() - started, 2))


def _register(layer: Layer, challenger: Any, results: dict[str, Any],
              metrics: dict[str, Any], labeled: bool, config: PipelineConfig,
              registry: ModelRegistry, test: Any) -> tuple[dict[str, Any], str]:
    name = layer.model_name
    champion = _production(registry, name)
    if labeled:
        old = None
        if champion is not None:
            old = layer_for_spec(champion.feature_spec).score(champion.model, test)
        decision = labeled_decision(
            config.gate.metric, layer.labels(test), layer.score(challenger.model, test), old,
            improvement=config.gate.improvement_threshold,
            floor=config.gate.min_value or None).to_dict()
    else:
        deploy = champion is None
        decision = {"deploy": deploy, "metric": None,
                    "reason": ("no production model yet and no test labels to gate on" if deploy
                               else "the test part has no benign and threat labels to compare "
                                    "the models on; kept production, marked this the challenger")}
    version = registry.next_version(name)
    numbers = {k: float(v) for k, v in metrics.items()
               if k in LABELED_METRICS and isinstance(v, (int, float))}
    numbers["val_loss"] = float(results["best_val_loss"])
    registry.register_model(results["checkpoint"], ModelMetadata(
        name, version, layer.name, metrics=numbers,
        hyperparameters={**challenger.model.init_args, **asdict(config.train[layer.name])},
        training_dataset=str(config.workdir / "events.parquet"),
        details={"decision": decision}), reason="pipeline run", actor="pipeline")
    replacing = None if champion is None else champion.metadata.version
    if decision["deploy"]:
        registry.transition_stage(name, version, "production", reason=decision["reason"],
                                  actor="pipeline", replacing=replacing)
    else:
        registry.set_alias(name, CHALLENGER, version, reason=decision["reason"], actor="pipeline")
    return decision, version


def _production(registry: ModelRegistry, name: str) -> Any:
    try:
        return registry.load_model(name, stage="production")
    except PipelineError:  # NotFoundError: none yet
        return None


def _train_summary(results: dict[str, Any]) -> dict[str, Any]:
    keep = ("best_val_loss", "best_epoch", "epochs_trained", "train_time_s", "checkpoint")
    summary = {k: results.get(k) for k in keep}
    summary["checkpoint"] = str(summary["checkpoint"])
    return summary


def _write(path: Path, text: str) -> None:
    with atomic_write(path) as handle:
        handle.write(text.encode("utf-8"))
