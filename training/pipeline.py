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
4. register the model (`models/`, the registry) and promote it past the gate: the challenger
   and the production model are scored on the same test part; it is promoted when it passes
   `gate.min_value` and beats production by `gate.improvement_threshold` (relative) on
   `gate.metric`. Without labels on the test part nothing can be compared: the first model is
   promoted, later ones get the `challenger` alias for a person to decide;
5. `report/index.html` links everything; `pipeline.json` holds the same figures.
"""

from __future__ import annotations

import html
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from training.data_collection import DataCollector, DataSource
from training.data_preprocessor import DataPreprocessor, LayerArrays
from training.data_validator import DataValidator, ValidationSeverity
from training.dataset_builder import DatasetBuilder
from training.errors import PipelineError, SchemaError
from training.evaluation.scores import evaluate_scores
from training.evaluator import save_report
from training.fileio import atomic_write
from training.model_files import load_model
from training.model_registry import ModelMetadata, ModelRegistry
from training.pipeline_config import PipelineConfig
from training.pipeline_layers import STAGES, Folders, LayerStage
from training.registry.names import CHALLENGER
from training.retraining.gate import decide, has_both_labels

logger = logging.getLogger(__name__)

GATE_METRICS = ("roc_auc", "pr_auc", "f1_score", "precision", "recall")


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
    preprocessor = DataPreprocessor(output_dir=folders.features)
    stages = {layer: STAGES[layer](preprocessor) for layer in config.layers}
    layer1 = Path(stages["layer1"].featurize(events, folders) if "layer1" in stages
                  else preprocessor.featurize(events, "layer1_sensory").save(
                      folders.features / "layer1_samples.npz"))
    validation = _validate(layer1, config, work)
    result = PipelineResult(str(work), str(work / "report" / "index.html"), events.num_rows,
                            quarantined, validation)
    registry = ModelRegistry(registry_dir=work / "models")
    for layer, stage in stages.items():
        logger.info("%s: featurize, split, train, evaluate, register", layer)
        features = layer1 if layer == "layer1" else stage.featurize(events, folders)
        result.layers.append(_run_layer(stage, features, config, folders, registry, work))
    result.seconds = round(time.perf_counter() - started, 2)
    _write(work / "pipeline.json", json.dumps(result.to_dict(), indent=2, default=str))
    _write(Path(result.report), render_index(result))
    return result


def _collect(config: PipelineConfig, work: Path) -> tuple[pa.Table, int]:
    sources = [DataSource(s.name, s.type, s.connection_params, field_map=s.field_map,
                          label_map=s.label_map, default_label=s.default_label)
               for s in config.sources]
    collector = DataCollector(sources, output_dir=work / "collected", checkpoint_enabled=False)
    events = collector.collect_table(max_events=config.max_events)
    if not events.num_rows:
        raise SchemaError(f"the sources gave no event ({len(collector.quarantined)} quarantined "
                          "records); check the paths and the source types")
    with atomic_write(work / "events.parquet") as handle:
        pq.write_table(events, handle)
    logger.info("collected %d events (%d quarantined)", events.num_rows, len(collector.quarantined))
    return events, len(collector.quarantined)


def _validate(layer1_path: Path, config: PipelineConfig, work: Path) -> dict[str, Any]:
    """Quality of the layer-1 features, and drift of the test part against the train part."""
    data = LayerArrays.load(layer1_path)
    features, labels = data.arrays["features"], data.arrays["labels"]
    splits = DatasetBuilder.from_file(layer1_path, random_seed=config.seed).create_splits(
        config.split.strategy, config.split.train_ratio, config.split.val_ratio,
        config.split.test_ratio)
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


def _run_layer(stage: LayerStage, features: Any, config: PipelineConfig, folders: Folders,
               registry: ModelRegistry, work: Path) -> LayerOutcome:
    started = time.perf_counter()
    splits = stage.split(features, config.split, config.seed, folders)
    _, results = stage.train(splits, config.train[stage.layer], config.seed, folders)
    challenger = load_model(results["checkpoint"])  # what gets registered is what is measured
    test = stage.test_scores(challenger.model, challenger.feature_spec, splits["test"])
    labeled = has_both_labels(np.asarray(test.labels))
    report_path = work / "report" / stage.layer
    metrics: dict[str, Any] = {}
    if (np.asarray(test.labels) >= 0).any():
        evaluated = evaluate_scores(test.scores, test.labels, test.attack_types, test.timestamps,
                                    challenger.threshold, threshold_source="checkpoint sidecar")
        evaluated.model_name = type(challenger.model).__name__
        evaluated.training_history = results.get("history") or []
        save_report(evaluated, report_path, f"{stage.model_name}: test {stage.unit}s")
        metrics = {k: v for k, v in evaluated.to_dict().items()
                   if k in (*GATE_METRICS, "accuracy", "detection_at_fpr", "n_samples",
                            "n_unknown_excluded", "threshold", "per_attack_type", "alerts")}
    decision, version = _register(stage, challenger, results, metrics, labeled, config,
                                  registry, splits["test"])
    stage_now = registry.get_metadata(stage.model_name, version).stage
    logger.info("%s %s: %s", stage.model_name, version, decision["reason"])
    return LayerOutcome(stage.layer, stage.model_name, stage.unit, version, stage_now, decision,
                        metrics, _train_summary(results),
                        f"{stage.layer}.html" if metrics else "", round(time.perf_counter() - started, 2))


def _register(stage: LayerStage, challenger: Any, results: dict[str, Any],
              metrics: dict[str, Any], labeled: bool, config: PipelineConfig,
              registry: ModelRegistry, test: Any) -> tuple[dict[str, Any], str]:
    name = stage.model_name
    champion = _production(registry, name)
    if labeled:
        old = None
        if champion is not None:
            scores = stage.test_scores(champion.model, champion.feature_spec, test)
            old = {k: v for k, v in evaluate_scores(scores.scores, scores.labels).to_dict().items()
                   if k in GATE_METRICS and v is not None}
        new = {k: v for k, v in metrics.items() if k in GATE_METRICS and v is not None}
        decision = decide(config.gate.metric, new, old, floor=config.gate.min_value,
                          improvement=config.gate.improvement_threshold).to_dict()
    else:
        deploy = champion is None
        decision = {"deploy": deploy, "metric": None,
                    "reason": ("no production model yet and no test labels to gate on" if deploy
                               else "the test part has no benign and threat labels to compare "
                                    "the models on; kept production, marked this the challenger")}
    version = registry.next_version(name)
    numbers = {k: float(v) for k, v in metrics.items()
               if k in GATE_METRICS and isinstance(v, (int, float))}
    numbers["val_loss"] = float(results["best_val_loss"])
    registry.register_model(results["checkpoint"], ModelMetadata(
        name, version, stage.layer, metrics=numbers,
        hyperparameters={**challenger.model.init_args,
                         **asdict(config.train[stage.layer])},
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
        return registry.get_model(name, stage="production")
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


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.4f}" if isinstance(value, float) else html.escape(str(value))


def render_index(result: PipelineResult) -> str:
    """The run's front page: events, validation, and one row per layer with its decision."""
    rows = []
    for o in result.layers:
        at1 = (o.metrics.get("detection_at_fpr") or {}).get("0.01") or {}
        link = f'<a href="{html.escape(o.report)}">{o.layer}</a>' if o.report else o.layer
        rows.append(
            f"<tr><td>{link}</td><td>{o.model_name} {o.version}</td><td>{o.stage}</td>"
            f"<td>{o.metrics.get('n_samples', '–')} {o.unit}s</td>"
            f"<td>{_fmt(o.metrics.get('roc_auc'))}</td><td>{_fmt(o.metrics.get('pr_auc'))}</td>"
            f"<td>{_fmt(at1.get('detection_rate'))}</td>"
            f"<td>{_fmt(o.metrics.get('threshold'))}</td>"
            f"<td>{_fmt(o.train.get('epochs_trained'))}</td>"
            f"<td>{html.escape(str(o.decision.get('reason', '')))}</td></tr>")
    issues = "".join(f"<li>{html.escape(i)}</li>" for i in result.validation["issues"]) or "<li>none</li>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MAXIMUS pipeline run</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:75em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}
th{{background:#f3f3f3}}</style></head><body>
<h1>MAXIMUS pipeline run</h1>
<p>{result.events:,} events collected, {result.quarantined:,} records quarantined;
whole run {result.seconds:.1f} s. Working directory: <code>{html.escape(result.workdir)}</code>.</p>
<h2>Detectors (test part)</h2>
<table><tr><th>layer</th><th>model</th><th>stage</th><th>test units</th><th>ROC-AUC</th>
<th>PR-AUC</th><th>detection at 1% FPR</th><th>threshold</th><th>epochs</th><th>gate</th></tr>
{''.join(rows)}</table>
<p>Each layer's report (ROC and PR curves, score histograms, confusion matrix, attack types,
training curves) is linked from its name. Scores: higher is more anomalous; the threshold was
calibrated on validation data.</p>
<h2>Data validation (<a href="validation.txt">text</a>, <a href="validation.json">JSON</a>)</h2>
<ul>{issues}</ul>
</body></html>
"""
