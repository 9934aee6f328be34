"""Pruning inside training: a `LayerTrainer` callback that reports every epoch to the trial.

After each validation pass it measures the objective's metric (a validation loss, or PR-AUC
of the anomaly scores), reports it as the trial's intermediate value for that epoch (epochs
count from 1, so `n_warmup_steps=10` lets every trial run 10 epochs) and asks the pruner;
when the pruner says stop, it raises `optuna.TrialPruned`, which ends `LayerTrainer.train`
right there: the pruned trial trains no further epoch.

A non-finite value (the loss diverged) prunes the trial at once, warm-up or not: nothing a
diverged run does afterwards is worth the time.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import optuna

from training.trainer.callbacks import Callback
from training.errors import ConfigError

if TYPE_CHECKING:
    from training.trainer.loop import LayerTrainer

logger = logging.getLogger(__name__)

# (trainer, the epoch's validation metrics {"val_loss": ..., "val_<name>": ...}) -> value
Measure = Callable[["LayerTrainer", dict[str, float]], float]


class OptunaPruning(Callback):
    """Report the objective's metric to `trial` each epoch; raise `optuna.TrialPruned` when the
    pruner says so.

    Args:
        trial: the running trial.
        measure: computes the epoch's value from the trainer and its validation metrics.
        direction: "minimize" or "maximize", to keep the best value.
        name: the metric's name, for messages.

    Attributes:
        values: epoch -> reported value.
        best: the best reported value (None before the first epoch).
        pruned_epoch: the epoch at which the trial was pruned, or None.
    """

    def __init__(self, trial: optuna.Trial, measure: Measure, direction: str = "minimize",
                 name: str = "value") -> None:
        if direction not in ("minimize", "maximize"):
            raise ConfigError(f"direction must be minimize or maximize, got {direction!r}")
        self.trial = trial
        self.measure = measure
        self.direction = direction
        self.name = name
        self.values: dict[int, float] = {}
        self.pruned_epoch: int | None = None

    @property
    def best(self) -> float | None:
        finite = [v for v in self.values.values() if math.isfinite(v)]
        if not finite:
            return None
        return min(finite) if self.direction == "minimize" else max(finite)

    def on_validation_end(self, trainer: LayerTrainer, epoch: int,
                          metrics: dict[str, float]) -> None:
        value = float(self.measure(trainer, metrics))
        self.values[epoch] = value
        self.trial.report(value, step=epoch)
        if not math.isfinite(value):
            self._prune(epoch, f"{self.name} is {value} (diverged)")
        if self.trial.should_prune():
            self._prune(epoch, f"{self.name}={value:.6g}")

    def _prune(self, epoch: int, why: str) -> None:
        self.pruned_epoch = epoch
        logger.info("trial %d pruned at epoch %d: %s", self.trial.number, epoch, why)
        raise optuna.TrialPruned(f"pruned at epoch {epoch}: {why}")
