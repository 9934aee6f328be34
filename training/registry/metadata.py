"""What the registry records about a model version, and which way each metric points."""

from __future__ import annotations

import functools
import math
import platform
import subprocess
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from training.errors import ConfigError, did_you_mean
from training.features.encoding import FeatureSpec
from training.registry import data_file
from training.registry.names import check_name, check_stage

# Metrics whose direction is known; the gate and compare_models refuse any other name, so a
# typo never silently turns "lower is better" into "higher is better".
LOWER_IS_BETTER = frozenset({"loss", "val_loss", "test_loss", "train_loss", "fpr",
                             "false_positive_rate", "brier", "mse", "mae",
                             "avg_inference_time_ms"})
HIGHER_IS_BETTER = frozenset({"accuracy", "precision", "recall", "f1", "f1_score", "pr_auc",
                              "roc_auc", "average_precision", "detection_pr_auc", "tpr",
                              "recall_at_fpr", "throughput_samples_per_sec"})


# Names a metric was recorded by in earlier releases: compare_models reads those versions too.
FORMER_NAMES = {"val_loss": ("best_val_loss",)}


def recorded_metric(metrics: dict[str, float], metric: str) -> float | None:
    """`metric` as a version's `metrics` record it, under its name or a former one (a version
    from `tune --train-best` before it recorded `val_loss` has `best_val_loss`); else None."""
    for name in (metric, *FORMER_NAMES.get(metric, ())):
        if name in metrics:
            return metrics[name]
    return None


def metric_direction(metric: str) -> str:
    """"min" when lower values of `metric` are better, "max" when higher are.

    Known names are listed in LOWER_IS_BETTER and HIGHER_IS_BETTER; beyond those, names ending
    in "_loss" or "_error" are "min" and names ending in "_auc" are "max".
    """
    if metric in LOWER_IS_BETTER or metric.endswith(("_loss", "_error")):
        return "min"
    if metric in HIGHER_IS_BETTER or metric.endswith("_auc"):
        return "max"
    known = sorted(LOWER_IS_BETTER | HIGHER_IS_BETTER)
    raise ConfigError(f"metric {metric!r} has no known direction"
                      f"{did_you_mean(metric, known)}; use one of {', '.join(known)}, or a name "
                      "ending in _loss/_error (lower is better) or _auc (higher is better)")


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """`git describe --always --dirty` of the package's checkout, else the installed version."""
    repo = Path(__file__).resolve().parents[2]
    try:
        done = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty"],
                              capture_output=True, text=True, timeout=10)
        if done.returncode == 0 and done.stdout.strip():
            return "git:" + done.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass  # no git on this machine: fall back to the package version
    try:
        return "maximus-training " + importlib_metadata.version("maximus-training")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries a model's behaviour depends on."""
    versions = {"python": platform.python_version()}
    for name in ("torch", "numpy", "pyarrow", "scikit-learn", "torch-geometric"):
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


# Training settings that say where and how a run was kept, not what it learnt: not recorded
# as hyperparameters.
_BOOKKEEPING = frozenset({"model_name", "layer_name", "checkpoint_dir", "log_dir",
                          "save_best_only", "save_frequency", "save_last_state", "tensorboard",
                          "device", "num_threads", "cuda_graph"})


def sidecar_hyperparameters(sidecar: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters a model's sidecar records: its training settings (batch size,
    learning rate, epochs, ...) and, under "model", its constructor arguments."""
    training = sidecar.get("training_config")
    found = {k: v for k, v in (training or {}).items() if k not in _BOOKKEEPING}
    if sidecar.get("init_args") is not None:
        found["model"] = sidecar["init_args"]
    return found


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


@dataclass
class ModelMetadata:
    """One registered version of a model.

    The first nine fields are the original system's; the rest make a version reproducible and
    auditable. `feature_fingerprint` and `anomaly_threshold` default to the model's sidecar,
    `hyperparameters` and `dataset_fingerprints` take the sidecar's where not given (the
    trainer writes its settings and the fingerprints of its training and validation data
    there), `code_version` and `library_versions` default to this process's; the registry fills
    `training_dataset_file` at registration, and `weights_sha256`, `files`, `stage` and
    `aliases` when it reads a version back.

    Attributes:
        metrics: name -> finite number (e.g. {"pr_auc": 0.91, "val_loss": 0.04}).
        hyperparameters: JSON-able training settings.
        training_dataset: where the training data came from (a path or a description).
        training_dataset_file: when `training_dataset` names a file, its fingerprint at
            registration (filled by the registry: `training.registry.data_file`), which
            `registry show` checks the file against.
        dataset_fingerprints: split name -> fingerprint of the data it was trained/tested on.
        feature_fingerprint: the FeatureSpec fingerprint the model expects.
        anomaly_threshold: the alert threshold stored with the weights.
        details: further JSON-able records (e.g. continuous training's data summary and
            the gate's decision; `threshold_rule`, how the threshold was set, from the sidecar).
        files: attached file name -> sha256 (filled by the registry).
        opaque: registered without a sidecar (filled by the registry): verified by sha256,
            never loaded into a detector until one is attached.
        model_class: the detector class the weights load into (e.g. "Layer1VAE",
            "IsolationForestDetector"), the sidecar's `model_class` (None: opaque).
    """

    model_name: str
    version: str
    layer_name: str
    created_at: str = field(default_factory=_now)
    metrics: dict[str, float] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    training_dataset: str | None = None
    framework: str = "pytorch"
    stage: str = "none"
    dataset_fingerprints: dict[str, str] = field(default_factory=dict)
    feature_fingerprint: str | None = None
    anomaly_threshold: float | None = None
    code_version: str | None = None
    library_versions: dict[str, str] = field(default_factory=dict)
    description: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    weights_sha256: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    opaque: bool = False
    training_dataset_file: dict[str, Any] | None = None
    model_class: str | None = None

    def __post_init__(self) -> None:
        check_name("model_name", self.model_name)
        check_name("version", self.version)
        check_stage(self.stage)
        if isinstance(self.created_at, datetime):
            self.created_at = self.created_at.isoformat()
        if not isinstance(self.metrics, dict):
            raise ConfigError(f"metrics must be a dict of name -> finite number, got "
                              f"{self.metrics!r}")
        for name, value in self.metrics.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) \
                    or not math.isfinite(value):
                raise ConfigError(
                    f"metrics[{name!r}] must be a finite number, got {value!r}" + (
                        "; EvaluationMetrics.to_dict() holds None for the figures it could not "
                        "compute (no threshold, one class): register its finite numbers only "
                        "(leave out None, NaN, booleans, lists and dicts)"
                        if value is None else ""))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelMetadata:
        """Rebuild from `to_dict` output; unknown keys (from a newer release) are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def complete_metadata(metadata: ModelMetadata, sidecar: dict[str, Any] | None,
                      weights_sha256: str) -> ModelMetadata:
    """`metadata` with what the model's sidecar (None: an opaque artifact, whose metadata
    is taken as given) and this process know filled in.

    Raises:
        ConfigError: the metadata's feature fingerprint or threshold differs from the sidecar's.
    """
    if sidecar is None:
        sidecar = {"anomaly_threshold": metadata.anomaly_threshold}
        fingerprint = metadata.feature_fingerprint
    else:
        spec_text = sidecar.get("feature_spec")
        fingerprint = FeatureSpec.from_json(spec_text).fingerprint if spec_text else None
    threshold = sidecar.get("anomaly_threshold")
    for name, ours, theirs in (("feature_fingerprint", metadata.feature_fingerprint, fingerprint),
                               ("anomaly_threshold", metadata.anomaly_threshold, threshold)):
        if ours is not None and ours != theirs:
            raise ConfigError(f"metadata.{name} is {ours!r} but the model's sidecar says "
                              f"{theirs!r}; leave it unset to take the sidecar's")
    data = metadata.to_dict()
    how = sidecar.get("threshold")
    rule = how.get("rule") if isinstance(how, dict) else None
    if rule and "threshold_rule" not in data["details"]:
        # How the threshold was set, where people look for a version's facts.
        data["details"] = {**data["details"], "threshold_rule": rule}
    kept = sidecar.get("best_value")
    if (sidecar.get("monitor") == "val_loss" and "val_loss" not in data["metrics"]
            and isinstance(kept, (int, float)) and math.isfinite(kept)):
        # The kept epoch's validation loss, under the name every path records it by (the
        # original compare_models' default), however the version was registered.
        data["metrics"] = {**data["metrics"], "val_loss": float(kept)}
    prints = sidecar.get("dataset_fingerprints")
    data.update(hyperparameters={**sidecar_hyperparameters(sidecar), **data["hyperparameters"]},
                dataset_fingerprints={**(prints if isinstance(prints, dict) else {}),
                                      **data["dataset_fingerprints"]})
    data.update(feature_fingerprint=fingerprint, anomaly_threshold=threshold,
                model_class=sidecar.get("model_class"),
                weights_sha256=weights_sha256, aliases=[], files={},
                # the file at that path now, which a later run may overwrite
                training_dataset_file=data_file.fingerprint(metadata.training_dataset),
                code_version=metadata.code_version or code_version(),
                library_versions=metadata.library_versions or library_versions())
    return ModelMetadata.from_dict(data)
