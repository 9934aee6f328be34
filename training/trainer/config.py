"""`TrainingConfig`: every setting of a `LayerTrainer` run, JSON-able, validated on creation;
`TrainingMetrics`: what one epoch measured.

The first fields and their defaults are the original API's; the rest are additions. Where the
original name is kept for compatibility its meaning is stated: `gradient_clip_value` is the
maximum gradient *norm* (clipping by norm, as the original did).
"""

from __future__ import annotations

import json
import numbers
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path, PurePath
from typing import Any

from training.errors import ConfigError
from training.evaluation.threshold_rules import parse_rule

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("reduce_on_plateau", "cosine", "step", "none")
AMP_DTYPES = ("float16", "bfloat16")
_SCHEDULER_ALIASES = {"reducelronplateau": "reduce_on_plateau", "plateau": "reduce_on_plateau",
                      "cosineannealinglr": "cosine", "steplr": "step", "": "none"}


@dataclass(frozen=True)
class TrainingConfig:
    """Settings of one training run.

    Args:
        model_name: names the files: `<model_name>_best.pt`, `<model_name>_last_state.pt`.
        layer_name: the layer the model belongs to ("layer1", ...), recorded in sidecars.
        batch_size: rows per batch, used by helpers that build batches (>= 1).
        num_epochs: epochs to train, counted from the start (a resumed run goes on to it).
        learning_rate, weight_decay: optimizer settings (> 0, >= 0).
        optimizer: "adam", "adamw" or "sgd" (with `momentum`).
        lr_scheduler: "reduce_on_plateau" (on the monitored value; `scheduler_patience`,
            `scheduler_factor`), "cosine" (over num_epochs), "step" (`step_size`,
            `scheduler_factor`) or "none". The scheduler steps once per epoch.
        gradient_clip_value: clip the gradients' total L2 norm to this; None or 0 = no clip.
        early_stopping_patience, early_stopping_min_delta: see EarlyStopping; patience None
            or 0 disables early stopping.
        checkpoint_dir, log_dir: folders (text or `pathlib.Path`, kept as given; `to_dict`
            writes text); None = `training.paths.checkpoints_dir()` / `logs_dir()`.
        save_best_only, save_frequency: with save_best_only off, also keep the weights
            every `save_frequency` epochs.
        use_amp: mixed precision on CUDA, in `amp_dtype` ("float16" with a GradScaler, or
            "bfloat16"). No effect on the CPU unless `cpu_amp` (bf16 autocast on the CPU).
        monitor, mode: the value that picks the best epoch, drives ReduceLROnPlateau and
            early stopping: "val_loss" (or "train_loss" without validation data, or
            "val_<metric>"); "min" or "max".
        seed: seeds torch, numpy and Python's random at the start of training; None = as is.
        deterministic: `torch.use_deterministic_algorithms(True)` and no cuDNN autotuning.
        num_threads: torch intra-op threads for this process; None leaves torch's default.
        device: "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...
        cuda_graph: on CUDA, capture the training step in a CUDA graph for in-memory batches
            (eager fallback when the step cannot be captured, and for fp16 with GradScaler).
        tensorboard: write per-epoch scalars under `log_dir/model_name`.
        save_last_state: write `<model_name>_last_state.pt` after every epoch (for resume).
        restore_best: load the best epoch's weights into the model when training ends.
        calibrate_threshold: after training, calibrate the anomaly threshold of a Detector on
            the validation data (`training.evaluation.calibration.Calibration`).
        threshold_rule: how that threshold is chosen: "auto" (best F1 with 5 units of each
            class in the validation data, else the benign 0.99-quantile, else the 0.999-quantile of
            every score), "quantile[:Q]", "alerts-per-day:N" or "best-f1" (see
            `training.evaluation.calibration.parse_rule`).
        params_from: where tuned hyperparameters came from (a `tune` study's
            best_params.json, its study and trial: `training.tuning.params_file`), or None;
            recorded only: the sidecar, the registry's hyperparameters and MLflow's params say
            so.
    """

    model_name: str = "model"
    layer_name: str = "layer"
    batch_size: int = 32
    num_epochs: int = 100
    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    optimizer: str = "adam"
    lr_scheduler: str = "reduce_on_plateau"
    gradient_clip_value: float | None = 1.0
    early_stopping_patience: int | None = 10
    early_stopping_min_delta: float = 1e-4
    checkpoint_dir: str | Path | None = None
    save_best_only: bool = True
    save_frequency: int = 5
    log_dir: str | Path | None = None
    use_amp: bool = True
    amp_dtype: str = "float16"
    cpu_amp: bool = False
    monitor: str = "val_loss"
    mode: str = "min"
    momentum: float = 0.9
    scheduler_patience: int = 5
    scheduler_factor: float = 0.5
    step_size: int = 30
    min_lr: float = 0.0
    seed: int | None = None
    deterministic: bool = False
    num_threads: int | None = None
    device: str = "auto"
    cuda_graph: bool = True
    tensorboard: bool = True
    save_last_state: bool = True
    restore_best: bool = True
    calibrate_threshold: bool = True
    threshold_rule: str = "auto"
    params_from: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "threshold_rule", str(parse_rule(self.threshold_rule)))
        scheduler = _SCHEDULER_ALIASES.get(self.lr_scheduler.lower(), self.lr_scheduler.lower())
        object.__setattr__(self, "lr_scheduler", scheduler)
        object.__setattr__(self, "optimizer", self.optimizer.lower())
        for f in fields(self):  # a number as text ("3") failed in a comparison, unnamed
            value = getattr(self, f.name)
            if str(f.type).split(" |")[0] in ("int", "float") and value is not None and (
                    isinstance(value, bool) or not isinstance(value, numbers.Real)):
                raise ConfigError(f"{f.name} must be a number, got {value!r}")
        checks = [
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("num_epochs", self.num_epochs >= 1, ">= 1"),
            ("learning_rate", self.learning_rate > 0, "> 0"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("optimizer", self.optimizer in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
            ("lr_scheduler", scheduler in SCHEDULERS, f"one of {', '.join(SCHEDULERS)}"),
            ("gradient_clip_value", self.gradient_clip_value is None
             or self.gradient_clip_value >= 0, ">= 0 or None"),
            ("early_stopping_patience", self.early_stopping_patience is None
             or self.early_stopping_patience >= 0, ">= 0 or None"),
            ("early_stopping_min_delta", self.early_stopping_min_delta >= 0, ">= 0"),
            ("save_frequency", self.save_frequency >= 1, ">= 1"),
            ("amp_dtype", self.amp_dtype in AMP_DTYPES, f"one of {', '.join(AMP_DTYPES)}"),
            ("mode", self.mode in ("min", "max"), "'min' or 'max'"),
            ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
            ("scheduler_patience", self.scheduler_patience >= 0, ">= 0"),
            ("scheduler_factor", 0 < self.scheduler_factor < 1, "in (0, 1)"),
            ("step_size", self.step_size >= 1, ">= 1"),
            ("min_lr", self.min_lr >= 0, ">= 0"),
            ("num_threads", self.num_threads is None or self.num_threads >= 1, ">= 1 or None"),
            ("model_name", bool(self.model_name) and "/" not in self.model_name
             and "\\" not in self.model_name, "a non-empty file-name stem"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ConfigError(f"{name} must be {rule}, got {getattr(self, name)!r}")

    @property
    def clip_norm(self) -> float | None:
        return self.gradient_clip_value or None

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-able values (folders as text)."""
        data = asdict(self)
        for name in ("checkpoint_dir", "log_dir"):
            if isinstance(data[name], PurePath):
                data[name] = str(data[name])
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        """A config from a dict such as `to_dict()` wrote; unknown keys are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown TrainingConfig field(s): {', '.join(unknown)}; known: "
                              f"{', '.join(sorted(known))}")
        return cls(**data)

    def replace(self, **changes: Any) -> TrainingConfig:
        return TrainingConfig.from_dict({**self.to_dict(), **changes})


@dataclass
class TrainingMetrics:
    """One epoch's figures (losses are means over the epoch's rows)."""

    epoch: int
    train_loss: float
    val_loss: float | None
    learning_rate: float
    epoch_time: float
    grad_norm: float | None = None  # mean total gradient norm before clipping
    val_metrics: dict[str, float] = field(default_factory=dict)

    def get(self, name: str) -> float:
        """The value called `name`: "train_loss", "val_loss" or a "val_<metric>"."""
        if name == "train_loss":
            return self.train_loss
        if name in self.val_metrics:
            return self.val_metrics[name]
        raise ConfigError(f"no metric {name!r} in epoch {self.epoch}; available: train_loss"
                          + "".join(f", {k}" for k in self.val_metrics))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
