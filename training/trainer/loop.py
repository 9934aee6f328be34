"""`LayerTrainer`: the one training loop every model of the pipeline uses.

The trainer does not know the model (DESIGN.md principle 6). It calls, on a
`training.detectors.Detector`:

* `model.training_step(batch) -> scalar loss` for each training batch (train mode),
* `model.validation_step(batch) -> {"loss": ..., <name>: ...}` for each validation batch
  (eval mode, no gradients); epoch values are means weighted by `model.batch_size_of(batch)`,
  reported as `val_loss`, `val_<name>`,
* `model.anomaly_score(batch) -> (units,)` on the validation data after training, to
  calibrate the anomaly threshold saved in the checkpoint sidecar,
* `model.on_train_epoch_end()` after each training pass, and trains at most
  `model.max_epochs` epochs: a detector that fits in one pass over the data (ECOD, kNN, an
  isolation forest) collects its rows in `training_step`, fits in that hook and trains one epoch;
  with no parameters, its optimizer steps are no-ops. Nothing here branches on the model's type.

The original form still works: `LayerTrainer(model, loss_fn, config, metric_fns)` with any
`nn.Module` trains on `loss_fn(model, batch)` (`training.compat.loss_fn_model` adapts it to the
Detector contract, so the loop below knows one kind of model).

Batches: any iterable of batches, re-iterated every epoch: a `training.trainer.batches.TensorBatches`
(the fast path for data in memory, moved to the device once), a `torch.utils.data.DataLoader`,
a PyG `DataLoader`, or a generator-backed object streaming data too large for memory. A batch
is whatever the model's steps take (a tensor, a tuple of tensors, a PyG Batch); the trainer
only moves it to the device.

The trainer owns device placement, mixed precision, clipping, the optimizer and scheduler,
early stopping, checkpoints, TensorBoard, resume, multi-process training (torchrun: each
process trains its shard, gradients are averaged by DistributedDataParallel, process 0 alone
writes files) and callbacks (`training.trainer.callbacks` lists the events).

Several processes (`torchrun --nproc-per-node N ...`): the trainer joins the process group
(gloo on the CPU, nccl on CUDA); the caller gives each process its shard, e.g.
`TensorBatches(x, batch_size=b, shuffle=True, seed=s, rank=trainer.rank,
world_size=trainer.world_size)` (or a DistributedSampler); every process validates on the
whole validation data, so all take the same early-stopping decision.

Resume: the last-state checkpoint (`training.trainer.resume`) is written after every epoch;
`train(..., resume=True)` continues from it, with the same random states, so a run killed at
any point and resumed ends with the same weights as one never interrupted (CPU,
deterministic mode).

Speed: the passes (`training.trainer.steps`) do no per-step host sync; logging is per epoch;
checkpoint files are written on a background thread from snapshots. On the CPU, small models train fastest with one intra-op
thread (`TrainingConfig.num_threads=1`; see BENCHMARKS.md).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training.artifacts.atomic import private_folder
from training.artifacts.model_files import save_model
from training.compat.loss_fn_model import LossFnModel
from training.detectors.base import Detector, model_scores, to_device
from training.errors import ConfigError, TrainingError
from training.evaluation.calibration import Calibration
from training.evaluation.thresholds import Threshold
from training.features.encoding import FeatureSpec
from training.paths import checkpoints_dir, logs_dir
from training.trainer.batches import TensorBatches
from training.trainer.callbacks import (
    Callback, EpochProgress, built_in_callbacks, callback_states, is_better,
)
from training.trainer.config import TrainingConfig, TrainingMetrics
from training.trainer.resume import (
    BackgroundWriter, load_checkpoint, restore_trainer, resume_path, rng_state, save_state,
    save_weights, snapshot,
)
from training.trainer.setup import (
    amp_dtype, build_optimizer, build_scheduler, init_distributed, resolve_device, seed_everything,
    set_deterministic,
)
from training.trainer.steps import DetectorLoss, EpochPasses

logger = logging.getLogger(__name__)


class LayerTrainer:
    """Trains one model.

    Args:
        model: a `Detector`, or any `nn.Module` when `loss_fn` is given.
        loss_fn: the original API's `loss_fn(model, batch) -> loss`; None for a Detector.
        config: the run's settings (default `TrainingConfig()`).
        metric_fns: with `loss_fn`, extra validation metrics {name: fn(model, batch) -> float}.
        callbacks: extra callbacks, run after the built-in ones (early stopping, checkpoints,
            TensorBoard).
        feature_spec: the FeatureSpec of the training data, written into checkpoint sidecars.

    Attributes:
        history: TrainingMetrics per epoch (restored on resume).
        best_val_loss, best_epoch: best monitored value (`config.monitor`) and its epoch.
        threshold: the calibrated `training.evaluation.thresholds.Threshold`, after training.
        should_stop: set it (e.g. from a callback) to end training after the current epoch.
        improved: whether the epoch just finished set a new best (read it in on_epoch_end).
        rank, world_size: this process and the number of processes (1 without torchrun).
    """

    def __init__(self, model: nn.Module, loss_fn: Callable[..., torch.Tensor] | None = None,
                 config: TrainingConfig | None = None,
                 metric_fns: dict[str, Callable[..., Any]] | None = None, *,
                 callbacks: Iterable[Callback] = (), feature_spec: FeatureSpec | None = None
                 ) -> None:
        self.config = cfg = config if config is not None else TrainingConfig()
        if not isinstance(cfg, TrainingConfig):
            raise ConfigError(f"config must be a TrainingConfig, got {type(cfg).__name__}")
        if cfg.num_threads is not None:
            torch.set_num_threads(cfg.num_threads)
        self.rank, self.world_size, local_rank = init_distributed(cfg.device)
        self.device = resolve_device(cfg.device, local_rank if self.world_size > 1 else None)
        if loss_fn is not None:  # the original form, adapted to the Detector contract
            model = LossFnModel(model, loss_fn, metric_fns)
        elif not isinstance(model, Detector):
            raise ConfigError(f"model is a {type(model).__name__}, not a Detector: pass loss_fn "
                              "(loss_fn(model, batch) -> loss) or implement "
                              "training.detectors.Detector")
        elif metric_fns:
            raise ConfigError("metric_fns go with loss_fn; a Detector returns its validation "
                              "metrics from validation_step")
        self.model = model.to(self.device)
        self.feature_spec = feature_spec
        self.data_fingerprints: dict[str, str] = {}  # split -> fingerprint: sidecar, resume
        self.data_span: dict[str, Any] | None = None  # split -> first, last unit time: sidecar
        self.user_callbacks = list(callbacks)
        dtype = amp_dtype(cfg, self.device)
        self._autocast = (nullcontext if dtype is None else
                          lambda: torch.autocast(self.device.type, dtype, cache_enabled=False))
        self.scaler = torch.amp.GradScaler(self.device.type) if dtype is torch.float16 else None
        graph_ok = (self.device.type == "cuda" and cfg.cuda_graph and self.scaler is None
                    and self.world_size == 1 and self.model.graph_capturable)
        loss = DetectorLoss(self.model)
        self.optimizer = build_optimizer(cfg, loss.parameters(), self.device, graph_ok)
        self.scheduler = build_scheduler(cfg, self.optimizer)
        self.passes = EpochPasses(loss, self.optimizer, self.scaler, self._autocast,
                                  cfg.clip_norm, self.device, self.world_size, graph_ok)
        self.checkpoint_dir = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else checkpoints_dir()
        self.log_dir = (Path(cfg.log_dir) if cfg.log_dir else logs_dir()) / cfg.model_name
        self.history: list[TrainingMetrics] = []
        self.epoch = 0
        self.best_val_loss = math.inf if cfg.mode == "min" else -math.inf
        self.best_epoch: int | None = None
        self.threshold: Threshold | None = None
        self.calibration: Calibration | None = None
        self.should_stop = False
        self.improved = False
        self.callbacks: list[Callback] = []
        self._best_state: dict[str, torch.Tensor] | None = None
        self._monitor = cfg.monitor
        self._train_data: Iterable[Any] | None = None
        self._writer = BackgroundWriter()

    @property
    def last_state_path(self) -> Path:
        return self.checkpoint_dir / f"{self.config.model_name}_last_state.pt"

    @property
    def max_epochs(self) -> int:
        """The epochs this run trains: the config's, or fewer when the model can use no more
        (a detector that fits in one pass)."""
        limit = self.model.max_epochs
        return self.config.num_epochs if limit is None else min(self.config.num_epochs, limit)

    @property
    def learning_rate(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # ---------------------------------------------------------------- the loop

    def shard_options(self) -> dict[str, Any]:
        """Batch options for this process: none in one process (shuffling uses the global
        generator, saved in checkpoints); under torchrun a shared seed, so that all processes
        draw the same order, and this process's rank, so that each takes its share."""
        if self.world_size == 1:
            return {}
        return {"seed": self.config.seed or 0, "rank": self.rank, "world_size": self.world_size}

    def results(self, history: list[TrainingMetrics]) -> dict[str, Any]:
        """What every train function reports about a finished run (JSON-able)."""
        return {
            "best_val_loss": self.best_val_loss,
            "best_epoch": self.best_epoch,
            "monitor": self._monitor,  # what best_val_loss is: val_loss, or train_loss without val
            "epochs_trained": self.epoch,
            "final_train_loss": history[-1].train_loss if history else None,
            "threshold": self.threshold.to_dict() if self.threshold else None,
            "calibration": self.calibration.to_dict() if self.calibration else None,
            "checkpoint": str(self.checkpoint_dir / f"{self.config.model_name}_best.pt"),
            "history": [m.to_dict() for m in history],
        }

    def train(self, train_loader: Iterable[Any], val_loader: Iterable[Any] | None = None, *,
              val_labels: np.ndarray | None = None, threshold_data: Iterable[Any] | None = None,
              threshold_reference: np.ndarray | None = None,
              threshold_times: np.ndarray | None = None,
              resume: bool | str | Path = False) -> list[TrainingMetrics]:
        """Train up to `config.num_epochs` epochs; returns the history (all epochs so far).

        Args:
            train_loader: training batches (see the module docstring).
            val_loader: validation batches (not shuffled), or None (then "train_loss" is
                monitored).
            val_labels: labels (-1/0/1) of the units of `threshold_data`, in the order
                `anomaly_score` yields them; None: every unit unlabeled.
            threshold_data: the batches the anomaly threshold is calibrated on (not
                shuffled); default `val_loader`. An anomaly detector trained on benign rows
                validates its loss on benign rows and calibrates on all labeled rows.
            threshold_reference, threshold_times: (units,) bool, the units treated as benign
                (None: as `Calibration.fit` says), and their datetime64 times (alerts-per-day).
            resume: True = continue from `<checkpoint_dir>/<model_name>_last_state.pt` when
                it exists (else start fresh); a path = continue from that file (must exist).

        Raises:
            TrainingError: the loss became NaN or infinite.
            CheckpointError: the resume file is unreadable or belongs to another model.
        """
        cfg = self.config
        if cfg.deterministic:
            set_deterministic()
        monitor = cfg.monitor
        if val_loader is None and monitor.startswith("val_"):
            monitor = "train_loss"
        self._monitor = monitor
        built = built_in_callbacks(cfg, self.checkpoint_dir, self.log_dir, monitor)
        self.callbacks = [cb for cb in built + self.user_callbacks + [EpochProgress()]
                          if self.rank == 0 or not cb.rank_zero_only]
        if isinstance(train_loader, TensorBatches):
            train_loader = train_loader.to(self.device)
        if isinstance(val_loader, TensorBatches):
            val_loader = val_loader.to(self.device)
        threshold_data = val_loader if threshold_data is None else threshold_data
        self._train_data = train_loader
        path = resume_path(resume, self.last_state_path)
        if path is not None:
            self.load_state(path)
        elif cfg.seed is not None:
            seed_everything(cfg.seed)
        try:
            self._emit("on_train_start", self)
            while self.epoch < self.max_epochs and not self.should_stop:
                self._run_epoch(train_loader, val_loader)
            if cfg.restore_best and self._best_state is not None:
                self.model.load_state_dict(self._best_state)
            if val_loader is not None and self.model.has_scores:
                self.model.eval()  # every process sees all the validation data: the same fit
                with torch.no_grad():
                    self.model.fit_after_training(to_device(batch, self.device)
                                                  for batch in val_loader)
            if cfg.calibrate_threshold and threshold_data is not None and self.model.has_scores:
                self.calibrate_threshold(threshold_data, val_labels,
                                         reference=threshold_reference, times=threshold_times)
            self._emit("on_train_end", self, self.history)
            self._writer.wait()
        finally:
            self._emit("teardown", self)
            self._writer.close()
        return self.history

    def _run_epoch(self, train_loader: Iterable[Any], val_loader: Iterable[Any] | None) -> None:
        self.epoch = epoch = self.epoch + 1
        self._emit("on_epoch_start", self, epoch)
        start = time.perf_counter()
        train_loss, grad_norm = self.passes.train(train_loader,
                                                  isinstance(train_loader, TensorBatches))
        if not math.isfinite(train_loss):
            raise TrainingError(f"the training loss is {train_loss} at epoch {epoch}; lower "
                                "learning_rate or gradient_clip_value, or check the data for "
                                "NaN/inf")
        val_metrics = self.passes.validate(val_loader) if val_loader is not None else {}
        if val_metrics:
            self._emit("on_validation_end", self, epoch, val_metrics)
        value = train_loss if self._monitor == "train_loss" else val_metrics.get(self._monitor)
        if value is None:
            raise ConfigError(f"monitor {self._monitor!r} is not among the validation metrics "
                              f"{', '.join(val_metrics)}")
        self.improved = is_better(value, self.best_val_loss, self.config.mode)
        if self.improved:
            self.best_val_loss, self.best_epoch = float(value), epoch
            self._best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(value)
        elif self.scheduler is not None:
            self.scheduler.step()
        metrics = TrainingMetrics(epoch, train_loss, val_metrics.get("val_loss"),
                                  self.learning_rate, time.perf_counter() - start, grad_norm,
                                  val_metrics)
        self.history.append(metrics)
        logger.info("epoch %d/%d train_loss %.6g val_loss %s lr %.3g (%.2f s)", epoch,
                    self.max_epochs, train_loss,
                    "-" if metrics.val_loss is None else f"{metrics.val_loss:.6g}",
                    metrics.learning_rate, metrics.epoch_time)
        self._emit("on_epoch_end", self, metrics)
        if self.config.save_last_state and self.rank == 0:
            self.save_state(self.last_state_path, background=True)

    # ------------------------------------------------------- threshold and files

    def calibrate_threshold(self, batches: Iterable[Any], labels: np.ndarray | None = None, *,
                            reference: np.ndarray | None = None,
                            times: np.ndarray | None = None) -> Threshold:
        """Calibrate `self.calibration` and its `self.threshold` on validation `batches` by
        `config.threshold_rule` (see training.evaluation.calibration)."""
        scores = model_scores(self.model, batches)
        labels = np.zeros(len(scores), np.int8) if labels is None else labels  # all benign
        self.calibration = Calibration.fit(scores, labels, reference=reference, times=times,
                                           rule=self.config.threshold_rule)
        self.threshold = self.calibration.to_threshold()
        logger.info("anomaly threshold %.6g (%s)", self.threshold.value, self.calibration.rule)
        return self.threshold

    def save_model_file(self, path: str | Path, *, background: bool = False) -> Path:
        """Write the model's weights (plain state_dict) and, when it scores, its JSON sidecar.

        With `background`, the write runs on the checkpoint thread from a copy of the model
        taken now; `train` waits for it before returning.
        """
        path = Path(path)
        private_folder(path.parent)
        if not background:  # one writer per file at a time (temporary names are per process)
            self._writer.wait()
        if not self.model.has_scores:
            state = snapshot(self.model.state_dict())
            if background:
                self._writer.submit(save_weights, path, state)
            else:
                save_weights(path, state)
            return path
        extra = {"model_name": self.config.model_name, "layer_name": self.config.layer_name,
                 "epoch": self.epoch, "best_epoch": self.best_epoch,
                 "best_value": self.best_val_loss, "monitor": self._monitor,
                 "threshold": self.threshold.to_dict() if self.threshold else None,
                 "calibration": self.calibration.to_dict() if self.calibration else None,
                 "training_config": self.config.to_dict(),
                 "dataset_fingerprints": self.data_fingerprints, "data_span": self.data_span}
        args = dict(feature_spec=self.feature_spec,
                    threshold=self.threshold.value if self.threshold else None, extra=extra)
        if background:
            self._writer.submit(save_model, copy.deepcopy(self.model), path, **args)
        else:
            save_model(self.model, path, **args)
        return path

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs (see training.trainer.resume)."""
        data = self._train_data
        return {
            "config": self.config.to_json(),
            "model_class": type(self.model).__name__,
            "init_args": json.dumps(getattr(self.model, "init_args", None), sort_keys=True),
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "callbacks": callback_states(self.callbacks),
            "best_val_loss": self.best_val_loss,
            "best_epoch": self.best_epoch,
            "best_state": self._best_state,
            "should_stop": self.should_stop,
            "history": [m.to_dict() for m in self.history],
            "data": data.state_dict() if hasattr(data, "state_dict") else None,
            "data_fingerprints": dict(self.data_fingerprints),  # resume refuses other data
            "rng": rng_state(),
        }

    def save_state(self, path: str | Path, *, background: bool = False) -> None:
        """Write the last-state checkpoint (on the checkpoint thread with `background`)."""
        private_folder(Path(path).parent)
        if background:
            self._writer.submit(save_state, path, snapshot(self.state_dict()))
        else:
            self._writer.wait()
            save_state(path, self.state_dict())

    def load_checkpoint(self, path: str | Path) -> int:
        """Load a checkpoint this trainer wrote (last state or best weights); returns its epoch
        (see `training.trainer.resume.load_checkpoint`)."""
        return load_checkpoint(self, path)

    def load_state(self, path: str | Path) -> None:
        """Continue from a last-state checkpoint of the same model class and arguments."""
        restore_trainer(self, path)

    # --------------------------------------------------------------- helpers

    def _emit(self, event: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, event)(*args)
