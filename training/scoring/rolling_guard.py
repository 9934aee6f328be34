"""The scoring guard over a rolling window, for live scoring: it warns once per excursion and
never stops the scorer.

    guard = RollingGuard(expected_alert_rate=0.001, window=10_000, factor=3.0)
    guard.add(units=500, alerts=40)    # the warning when an excursion begins, else None

A batch run's guard (`training.scoring.guard`) judges the whole run once, at its end; a
following scorer does not end, and what matters is how it alerts now. This guard judges the
last `window` units by the same test (`guard_scoring`: significantly past the expected rate ×
`factor`, or past `max_alert_rate` when one is given). The window is made of whole micro-batches:
the oldest leave while the others still hold `window` units. An excursion begins at the first
batch that puts the window past the bound and ends at the first that brings it back: one warning
(logged at WARNING, so it reaches stderr) at its beginning and one INFO line at its end, however
many batches it lasts. A scorer that exits would stop the alerts when they matter most, so past
the bound it only warns.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

from training.errors import ConfigError
from training.evaluation.alert_rate import DEFAULT_FACTOR, validate_bounds
from training.scoring.guard import GuardReport, guard_scoring

logger = logging.getLogger(__name__)

DEFAULT_WINDOW = 10_000  # units: enough for the binomial test to see a 3x excess of 0.1%


@dataclass(frozen=True)
class _Counts:
    """The window's counts, as `guard_scoring` reads a scoring summary."""

    units: int
    alerts: int
    expected_alert_rate: float | None
    score_shift: float | None = None


class RollingGuard:
    """Alert counts of the last `window` units, judged after every micro-batch.

    Args:
        expected_alert_rate: the calibration's expected alert rate; None (a model without a
            calibration): only `max_alert_rate` is checked.
        window: how many of the latest units are judged (>= 1).
        factor: the tolerated multiple of the expected rate (>= 1).
        max_alert_rate: a maximum alert rate (a share in (0, 1)), or None.

    Raises:
        ConfigError: a window below 1, a factor below 1, a rate outside (0, 1).
    """

    def __init__(self, expected_alert_rate: float | None, *, window: int = DEFAULT_WINDOW,
                 factor: float = DEFAULT_FACTOR, max_alert_rate: float | None = None) -> None:
        if window < 1:
            raise ConfigError(f"the guard window must be >= 1 units, got {window}")
        validate_bounds(factor, max_alert_rate)
        self.expected_alert_rate, self.window = expected_alert_rate, window
        self.factor, self.max_alert_rate = factor, max_alert_rate
        self.batches: deque[tuple[int, int]] = deque()  # (units, alerts) per micro-batch
        self.units = self.alerts = 0
        self.excursions = 0
        self.past = False

    def add(self, units: int, alerts: int) -> str | None:
        """Count one micro-batch; returns the warning if it begins an excursion (also logged).

        Raises:
            ConfigError: counts that do not fit (alerts outside [0, units]).
        """
        if not 0 <= alerts <= units:
            raise ConfigError(f"alerts must be in [0, units={units}], got {alerts}")
        if not units:
            return None
        self.batches.append((units, alerts))
        self.units, self.alerts = self.units + units, self.alerts + alerts
        while self.units - self.batches[0][0] >= self.window:
            old_units, old_alerts = self.batches.popleft()
            self.units, self.alerts = self.units - old_units, self.alerts - old_alerts
        report = self.report()
        past = report.failed
        if past == self.past:
            return None
        self.past = past
        if not past:
            logger.info("alert rate back within bounds over the last %d units", self.units)
            return None
        self.excursions += 1
        message = (f"{report.failure()} over the last {self.units:,} units; scoring goes on "
                   "(live scoring, --follow or --once, only warns)")
        logger.warning(message)
        return message

    def report(self) -> GuardReport:
        """The guard's verdict on the window (strict: past the bound fails)."""
        rate = None if self.max_alert_rate is not None else self.expected_alert_rate
        counts = _Counts(self.units, self.alerts, rate)
        return guard_scoring(counts, factor=self.factor, max_alert_rate=self.max_alert_rate,
                             strict=True)
