"""What a live run (`score --follow`) says about the model it scores with: a threshold that
rests on too few validation units, when it starts; and, while it runs, that the production
version it took has been replaced (promoted over, rolled back), once.

A live run keeps the model it started with: its state, open incidents and windows belong to
that model (`follow_switch`), so a promotion does not change what it scores with. Trial R's
run scored with 1.1.0 through four promotions and an archive of 1.1.0 without a word; now the
first check after the change warns, naming the new production version and `--switch-model`.
"""

from __future__ import annotations

import logging
import sqlite3
import time

from training.errors import PipelineError
from training.evaluation.alert_rate import reference_shortfall
from training.registry.registry import ModelRegistry
from training.scoring.fused import FusedDetector, thin_calibration
from training.scoring.guard import thin_caution

logger = logging.getLogger(__name__)

CHECK_SECONDS = 30.0  # the least time between two looks at the registry


def warn_thin(scorer, rule, model_name: str) -> None:
    """Warn, as batch scoring does, when the model's threshold (or a fused member's) rests on
    too few validation units."""
    thin = (thin_calibration(scorer) if isinstance(scorer, FusedDetector) else None
            if rule.calibration is None else reference_shortfall(rule.calibration,
                                                                 scorer.layer.unit))
    if thin:
        logger.warning("%s", thin_caution(f"{model_name} {rule.version}", thin))


class ProductionWatch:
    """Warns once when `version` of `model_name`, taken as the production version, no longer
    is. `watching` False (a version, stage or alias was asked for, or the fused detector):
    `check` does nothing."""

    def __init__(self, registry: ModelRegistry, model_name: str, version: str,
                 watching: bool) -> None:
        self.registry, self.model_name, self.version = registry, model_name, version
        self.watching = watching
        self.last = time.monotonic()

    def check(self) -> None:
        if not self.watching or time.monotonic() - self.last < CHECK_SECONDS:
            return
        self.last = time.monotonic()
        try:
            now = self.registry.production_version(self.model_name)
        except (PipelineError, OSError, sqlite3.Error) as exc:  # a look, never a stop
            logger.debug("could not read the production version of %s: %s", self.model_name,
                         exc)
            return
        if now == self.version:
            return
        self.watching = False  # once
        logger.warning("%s %s, which this run scores with, is no longer the production version "
                       "(%s); the run goes on with it: to score with the new one, stop it and "
                       "run the same command with --switch-model", self.model_name,
                       self.version, f"{now} is" if now else "none is")
