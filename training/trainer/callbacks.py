"""Named training events and the callbacks built on them (early stopping, checkpoints, logs).

`LayerTrainer.train` calls, on every callback in order, for each epoch:

    on_train_start(trainer)                      once, after a resume has been applied
    on_epoch_start(trainer, epoch)               epoch counts from 1
    on_validation_end(trainer, epoch, metrics)   metrics: {"val_loss": float, "val_<name>": ...}
                                                 (only when there is validation data)
    on_epoch_end(trainer, metrics)               metrics: TrainingMetrics of the epoch; the
                                                 scheduler has stepped, `trainer.improved` says
                                                 whether the monitored value is a new best
    on_train_end(trainer, history)               after the loop, once the best weights are
                                                 restored and the threshold calibrated
    teardown(trainer)                            always, also when an exception ends training

To stop training, set `trainer.should_stop = True` in any event: the current epoch completes
(checkpoints, logs) and `train` returns normally. To abort instead, raise: the exception (e.g.
`optuna.TrialPruned` raised from `on_validation_end`) propagates out of `train` after every
callback's `teardown`, and the last-state checkpoint of the previous epoch stays on disk.

Callbacks with state that must survive a resume implement `state_dict`/`load_state_dict`
(plain containers of numbers, strings and tensors). Callbacks that write files set
`rank_zero_only = True` and run only in process 0 of a multi-process run.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.artifacts.atomic import PRIVATE, private_folder
from training.errors import ConfigError
from training.console.progress import Progress, progress

if TYPE_CHECKING:
    from training.trainer.config import TrainingConfig, TrainingMetrics
    from training.trainer.loop import LayerTrainer

logger = logging.getLogger(__name__)

MODES = ("min", "max")


class Callback:
    """Base class: every event is a no-op; override the ones you need."""

    rank_zero_only: bool = False

    def on_train_start(self, trainer: LayerTrainer) -> None:
        pass

    def on_epoch_start(self, trainer: LayerTrainer, epoch: int) -> None:
        pass

    def on_validation_end(self, trainer: LayerTrainer, epoch: int,
                          metrics: dict[str, float]) -> None:
        pass

    def on_epoch_end(self, trainer: LayerTrainer, metrics: TrainingMetrics) -> None:
        pass

    def on_train_end(self, trainer: LayerTrainer, history: list[TrainingMetrics]) -> None:
        pass

    def teardown(self, trainer: LayerTrainer) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def is_better(value: float, best: float, mode: str, min_delta: float = 0.0) -> bool:
    """Whether `value` improves on `best` by more than `min_delta` in direction `mode`."""
    if math.isnan(value):
        return False
    return value < best - min_delta if mode == "min" else value > best + min_delta


class EarlyStopping(Callback):
    """Stop when the monitored value has not improved by `min_delta` for `patience` epochs.

    Usable alone, as in the original API (`stop = early_stopping(val_loss)`), or as a
    callback, where it watches `monitor` in each epoch's metrics and sets
    `trainer.should_stop`.

    Args:
        patience: epochs without improvement tolerated before stopping (>= 1).
        min_delta: smallest change that counts as an improvement (>= 0).
        mode: "min" (loss-like) or "max" (score-like).
        monitor: the metric watched as a callback ("val_loss", "train_loss", "val_<name>").
    """

    def __init__(self, patience: int = 10, min_delta: float = 1e-4, mode: str = "min",
                 monitor: str = "val_loss") -> None:
        if patience < 1:
            raise ConfigError(f"patience must be >= 1, got {patience}")
        if min_delta < 0:
            raise ConfigError(f"min_delta must be >= 0, got {min_delta}")
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.mode = mode
        self.monitor = monitor
        self.best = math.inf if mode == "min" else -math.inf
        self.counter = 0
        self.should_stop = False

    def __call__(self, value: float) -> bool:
        """Record one epoch's value; True once training should stop."""
        if is_better(value, self.best, self.mode, self.min_delta):
            self.best, self.counter = float(value), 0
        else:
            self.counter += 1
        self.should_stop = self.counter >= self.patience
        return self.should_stop

    def on_epoch_end(self, trainer: LayerTrainer, metrics: TrainingMetrics) -> None:
        if self(metrics.get(self.monitor)):
            logger.info("early stopping at epoch %d: %s has not improved by %g for %d epochs "
                        "(best %.6g)", metrics.epoch, self.monitor, self.min_delta,
                        self.patience, self.best)
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "counter": self.counter, "should_stop": self.should_stop}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.counter = float(state["best"]), int(state["counter"])
        self.should_stop = bool(state["should_stop"])


class ModelCheckpoint(Callback):
    """Writes `<model_name>_best.pt` (+ sidecar) on each new best, and, when
    `save_best_only` is off, `<model_name>_epoch<N>.pt` every `save_frequency` epochs.

    The best file is written again at the end of training with the calibrated anomaly
    threshold (`trainer.threshold`). Files are plain state_dicts with JSON sidecars
    (`training.artifacts.model_files.save_model`), each written atomically.
    """

    rank_zero_only = True

    def __init__(self, directory: str | Path, model_name: str, save_best_only: bool = True,
                 save_frequency: int = 5) -> None:
        if save_frequency < 1:
            raise ConfigError(f"save_frequency must be >= 1, got {save_frequency}")
        self.directory = Path(directory)
        self.model_name = model_name
        self.save_best_only = bool(save_best_only)
        self.save_frequency = int(save_frequency)

    @property
    def best_path(self) -> Path:
        return self.directory / f"{self.model_name}_best.pt"

    def epoch_path(self, epoch: int) -> Path:
        return self.directory / f"{self.model_name}_epoch{epoch:04d}.pt"

    def on_epoch_end(self, trainer: LayerTrainer, metrics: TrainingMetrics) -> None:
        if trainer.improved:
            trainer.save_model_file(self.best_path, background=True)
        if not self.save_best_only and metrics.epoch % self.save_frequency == 0:
            trainer.save_model_file(self.epoch_path(metrics.epoch), background=True)

    def on_train_end(self, trainer: LayerTrainer, history: list[TrainingMetrics]) -> None:
        # The trainer has restored the best weights; write them with the threshold.
        if trainer.best_epoch is not None:
            trainer.save_model_file(self.best_path)


class TensorBoardLogger(Callback):
    """Per-epoch scalars: loss/train, loss/val, other val metrics, learning rate, mean
    gradient norm and epoch time. Nothing is written per step."""

    rank_zero_only = True

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self._writer = None

    def on_train_start(self, trainer: LayerTrainer) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imported only when logging

        private_folder(self.log_dir)
        self._writer = SummaryWriter(str(self.log_dir))
        for events in self.log_dir.glob("events.out.tfevents.*"):  # made with the umask's mode
            if events.is_file() and not events.is_symlink():
                os.chmod(events, PRIVATE)

    def on_epoch_end(self, trainer: LayerTrainer, metrics: TrainingMetrics) -> None:
        w, step = self._writer, metrics.epoch
        w.add_scalar("loss/train", metrics.train_loss, step)
        if metrics.val_loss is not None:
            w.add_scalar("loss/val", metrics.val_loss, step)
        for name, value in metrics.val_metrics.items():
            if name != "val_loss":
                w.add_scalar(f"val/{name.removeprefix('val_')}", value, step)
        w.add_scalar("learning_rate", metrics.learning_rate, step)
        if metrics.grad_norm is not None:
            w.add_scalar("grad_norm/mean", metrics.grad_norm, step)
        w.add_scalar("time/epoch_s", metrics.epoch_time, step)

    def teardown(self, trainer: LayerTrainer) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class EpochProgress(Callback):
    """Epochs as `training.console.progress`: a bar on a terminal (with the losses), a line now and
    then elsewhere. Appended after every other callback, so it adds no key to the states of
    the callbacks a last-state checkpoint holds."""

    rank_zero_only = True

    def __init__(self) -> None:
        self._bar: Progress | None = None

    def on_train_start(self, trainer: LayerTrainer) -> None:
        config = trainer.config
        self._bar = progress(f"training {config.model_name}", config.num_epochs, "epochs",
                             initial=trainer.epoch)

    def on_epoch_end(self, trainer: LayerTrainer, metrics: TrainingMetrics) -> None:
        losses = {"loss": metrics.train_loss}
        if metrics.val_loss is not None:
            losses["val_loss"] = metrics.val_loss
        self._bar.update(1, **losses)

    def on_train_end(self, trainer: LayerTrainer, history: list[TrainingMetrics]) -> None:
        # The closing line names the kept epoch, whose weights are saved, not the last one.
        kept = next((m for m in history if m.epoch == trainer.best_epoch), None)
        if kept is not None and kept.val_loss is not None:
            self._bar.replace_postfix(best_epoch=kept.epoch, loss=kept.train_loss,
                                      val_loss=kept.val_loss)
        self._bar.close()

    def teardown(self, trainer: LayerTrainer) -> None:
        if self._bar is not None:
            self._bar.close(failed=True)  # a no-op after on_train_end
            self._bar = None


def built_in_callbacks(config: TrainingConfig, checkpoint_dir: Path, log_dir: Path,
                       monitor: str) -> list[Callback]:
    """The callbacks `config` asks for: early stopping on `monitor`, checkpoints, TensorBoard."""
    built: list[Callback] = []
    if config.early_stopping_patience:
        built.append(EarlyStopping(config.early_stopping_patience,
                                   config.early_stopping_min_delta, config.mode, monitor))
    built.append(ModelCheckpoint(checkpoint_dir, config.model_name, config.save_best_only,
                                 config.save_frequency))
    if config.tensorboard:
        built.append(TensorBoardLogger(log_dir))
    return built


def callback_states(callbacks: list[Callback]) -> dict[str, Any]:
    """Each callback's state, keyed by its place and class (for the last-state checkpoint)."""
    return {_key(i, cb): cb.state_dict() for i, cb in enumerate(callbacks)}


def restore_callback_states(callbacks: list[Callback], states: dict[str, Any]) -> None:
    """Give back what `callback_states` saved to the callbacks at the same place and class."""
    for i, cb in enumerate(callbacks):
        if _key(i, cb) in states:
            cb.load_state_dict(states[_key(i, cb)])


def _key(index: int, callback: Callback) -> str:
    return f"{index}:{type(callback).__name__}"
