"""Threshold rules as people write them, on the command line and in TOML: "quantile:0.999",
"alerts-per-day:10", "best-f1", "auto" (`training.evaluation.calibration` applies them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from training.errors import ConfigError

DEFAULT_QUANTILE = 0.999
# The pipeline's rule (0.1% of benign units alert); a tuned model follows it unless told.
PIPELINE_RULE = "quantile:0.999"
RULES = ("auto", "quantile", "alerts-per-day", "best-f1")


@dataclass(frozen=True)
class ThresholdRule:
    """How a threshold is chosen (see the module docstring); `parse_rule` reads its text."""

    kind: str = "quantile"
    value: float | None = DEFAULT_QUANTILE

    def __post_init__(self) -> None:
        if self.kind not in RULES:
            raise ConfigError(f"threshold rule must be one of {', '.join(RULES)}, got "
                              f"{self.kind!r}")
        if self.kind == "quantile" and not (self.value is not None and 0.0 < self.value < 1.0):
            raise ConfigError(f"the quantile of a threshold rule must be in (0, 1), got "
                              f"{self.value!r} (e.g. quantile:0.999)")
        if self.kind == "alerts-per-day" and not (self.value is not None and self.value > 0
                                                  and math.isfinite(self.value)):
            raise ConfigError(f"alerts-per-day needs a number of alerts > 0, got {self.value!r} "
                              "(e.g. alerts-per-day:10)")

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}:{self.value:g}"


def parse_rule(text: str | ThresholdRule) -> ThresholdRule:
    """"quantile", "quantile:0.999", "alerts-per-day:10", "best-f1" or "auto" as a rule.

    Raises:
        ConfigError: another rule or a bad number; the message lists the forms.
    """
    if isinstance(text, ThresholdRule):
        return text
    kind, _, number = str(text).strip().lower().replace("_", "-").partition(":")
    forms = "quantile[:Q], alerts-per-day:N, best-f1 or auto"
    if kind not in RULES:
        raise ConfigError(f"threshold rule must be one of {forms}, got {text!r}")
    if kind in ("best-f1", "auto"):
        if number:
            raise ConfigError(f"threshold rule {kind} takes no number, got {text!r}")
        return ThresholdRule(kind, None)
    if not number:
        if kind == "alerts-per-day":
            raise ConfigError(f"alerts-per-day needs the number of alerts, e.g. "
                              f"alerts-per-day:10; got {text!r}")
        return ThresholdRule(kind, DEFAULT_QUANTILE)
    try:
        value = float(number)
    except ValueError:
        raise ConfigError(f"threshold rule {text!r}: {number!r} is not a number; use "
                          f"{forms}") from None
    return ThresholdRule(kind, value)


def ordinal_percentile(level: float) -> str:
    """0.999 -> "99.9th", 0.99 -> "99th", 0.5 -> "50th", 0.01 -> "1st"."""
    text = f"{100 * level:.4f}".rstrip("0").rstrip(".")
    whole = int(text) if "." not in text else None
    suffix = "th"
    if whole is not None and whole % 100 not in (11, 12, 13):
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(whole % 10, "th")
    return text + suffix
