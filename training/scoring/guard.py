"""The guard at scoring time: does the model alert as often as its calibration said it would?

    summary = score_events(registry, "layer1_vae", sources, "scores.parquet")
    report = guard_scoring(summary, factor=3.0)
    report.lines()      # expected vs observed alert rate, the score shift
    report.warning()    # the warning past the factor, or None
    report.warnings()   # every warning line: that one, and those about the model or input
    report.warned       # significantly past expected rate × factor
    report.failed       # past the maximum (strict: expected × factor, or a given rate)

The sidecar's calibration says what share of benign units like the validation part reach the
threshold (`expected_alert_rate`). A model scoring traffic unlike what it was trained on alerts
far more: trained on one Stratosphere day, a layer-1 model alerted on 53% of the next day's
events. The guard warns when the observed rate is above expected × `factor` and the excess is
significant for the number of units scored (a one-sided binomial test,
`training.evaluation.alert_rate`), and reports the shift of the score distribution from the
benign validation scores (a Kolmogorov-Smirnov distance, 0..1). `failed` turns the warning (or
a given maximum rate, tested the same way) into a failure, for `score --max-alert-rate`.

Other warnings say what the alert rate cannot, one line each:

* a model whose threshold rests on fewer than `MIN_REFERENCE_UNITS` validation units (its
  expected rate is no promise: on one unit, 100%, which no alert rate passes; the pipeline
  does not promote such a model);
* scores far from the benign validation scores: a KS distance of `SHIFT_WARNING` (0.5) or
  more, and significant for the units scored and the reference scores (the two-sample test at
  the alert-rate test's alpha), when the alert rate did not already warn. Input of another kind
  scores there however few alerts it gives: a Windows model on Zeek conn flows read 0.897 with
  0 alerts, an IoT-23 model on Windows events 0.999; a model's own held-out benign flows read
  0.11 (Stratosphere 008), a Windows model on another OTRF recording 0.38. Another capture of
  the same kind can pass 0.5 too (Stratosphere 011's model on 008: 0.69, where the alert rate
  warns first): its percentiles and expected rate do not hold there either;
* events that built no unit of a window layer, naming the field they lack (layer 3 keyed by
  `host` on network flows: "no event has `host`");
* an input that gave no record (an empty file, a CSV of its header alone), naming it
  (`training.collection.no_records`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from training.collection.no_records import no_records_warning
from training.evaluation.alert_rate import (
    DEFAULT_ALPHA, DEFAULT_FACTOR, AlertRateCheck, check_alert_rate, validate_bounds,
)

# A KS distance of the scores from the benign validation scores from which the guard warns:
# at some score, the shares of the two below it differ by half, so at least half of the input
# scores where benign units like the validation part do not (module docstring: the figures).
SHIFT_WARNING = 0.5


@dataclass(frozen=True)
class GuardReport:
    """The guard's verdict on one scoring run.

    Attributes:
        check: the observed alerts against the expected rate × factor (None: the model has
            no calibration, so nothing was expected).
        limit: the observed alerts against a given maximum rate (None: none given).
        strict: whether passing the expected rate × factor is a failure.
        shift: the score distribution's KS distance from the benign validation scores.
        factor: the tolerated multiple of the expected rate.
        cautions: warnings about the model or the input, beside the alert rate's (module
            docstring), without their "warning: ".
    """

    check: AlertRateCheck | None
    limit: AlertRateCheck | None
    strict: bool
    shift: float | None
    factor: float
    cautions: tuple[str, ...] = ()

    @property
    def warned(self) -> bool:
        return self.check is not None and self.check.exceeded

    @property
    def failed(self) -> bool:
        if self.limit is not None:
            return self.limit.exceeded
        return self.strict and self.warned

    def lines(self) -> list[str]:
        """What `score` prints: expected vs observed alert rate, and the score shift."""
        if self.check is None:
            return ["alert rate: the model has no calibration, so no expected rate to "
                    "compare with"]
        check = self.check
        above = check.significance()
        bound = (f"(tolerated up to {self.factor:g}x: {check.bound:.3%})" if above is None else
                 f"- above {self.factor:g}x ({check.bound:.3%}) {above}")
        lines = [f"alert rate: observed {check.observed_rate:.3%} ({check.alerts:,} of "
                 f"{check.units:,} units), expected {check.expected_rate:.3%} {bound}"]
        if self.shift is not None:
            lines.append(f"score shift from the benign validation scores: KS distance "
                         f"{self.shift:.3f} (0 = the same distribution, 1 = disjoint)")
        return lines

    def warning(self) -> str | None:
        """The warning past the factor (for stderr), or None."""
        if not self.warned:
            return None
        check = self.check
        return (f"warning: the alert rate is {check.observed_rate / check.expected_rate:,.1f}x "
                f"the expected rate, past {self.factor:g}x (binomial {check.p_text}): this "
                "traffic is unlike the validation data, or the model is broken; check before "
                "acting on its alerts")

    def warnings(self) -> list[str]:
        """Every warning line (for stderr): the alert rate's past the factor, then the
        cautions, one line each."""
        first = self.warning()
        return ([first] if first else []) + [f"warning: {caution}" for caution in self.cautions]

    def failure(self) -> str:
        """The one-line reason of a failure (for `error:`)."""
        check = self.limit if self.limit is not None else self.check
        return f"alert rate past the maximum: {check.describe()}"


def guard_scoring(summary: Any, *, factor: float = DEFAULT_FACTOR,
                  max_alert_rate: float | None = None, strict: bool = False,
                  alpha: float = DEFAULT_ALPHA) -> GuardReport:
    """The guard's report on a `ScoringSummary` (`units`, `alerts`, `expected_alert_rate`,
    `score_shift`).

    Args:
        factor: the tolerated multiple of the expected alert rate (>= 1).
        max_alert_rate: a maximum alert rate (a share in (0, 1)); past it, significantly,
            the run fails.
        strict: fail past the expected rate × factor too.
        alpha: the binomial test's significance level.

    Raises:
        ConfigError: a factor below 1, a rate or alpha outside (0, 1).
    """
    validate_bounds(factor, max_alert_rate, alpha)
    check = None
    if summary.expected_alert_rate is not None:
        check = check_alert_rate(summary.alerts, summary.units, summary.expected_alert_rate,
                                 factor=factor, alpha=alpha)
    limit = None
    if max_alert_rate is not None:
        limit = check_alert_rate(summary.alerts, summary.units, bound=max_alert_rate,
                                 factor=factor, alpha=alpha)
    # A live window's counts (`rolling_guard`) have no model, events or fields: no caution.
    model = " ".join(str(getattr(summary, name)) for name in ("model_name", "version")
                     if hasattr(summary, name)) or "the model"
    cautions = [no_records_warning(name) for name in getattr(summary, "empty_inputs", ())]
    thin = getattr(summary, "thin_calibration", None)
    if thin:
        cautions.append(thin_caution(model, thin))
    shift = getattr(summary, "score_shift", None)
    if not (check is not None and check.exceeded) and _far(summary, shift, alpha):
        cautions.append(
            f"the scores sit far from {model}'s benign validation scores (KS distance "
            f"{shift:.3f}, past {SHIFT_WARNING:g}, on {summary.units:,} units): this input is "
            "unlike what the model was trained on (another kind of log, other hosts?), so its "
            "alert rate and percentiles do not hold here"
            + ("; 0 alerts is no sign of clean traffic" if not summary.alerts else "")
            + "; check before acting on its alerts")
    if getattr(summary, "events", 0) and not summary.units:
        cautions.append(f"{summary.events:,} events built no {summary.layer} unit: "
                        + _no_units(getattr(summary, "unit_fields", {}), summary.events, model))
    return GuardReport(check, limit, strict, shift, factor, tuple(cautions))


def thin_caution(model: str, thin: str) -> str:
    """The caution for `model`, whose threshold rests on too few validation units (`thin`:
    `reference_shortfall`'s words)."""
    return (f"{model}: {thin}: its alerts, percentiles and expected alert rate say little; "
            "retrain it on more data before acting on them")


def _far(summary: Any, shift: float | None, alpha: float) -> bool:
    """Whether the KS distance `shift` of the scored units from the reference scores is at
    least `SHIFT_WARNING` and significant at `alpha` for both counts (the asymptotic two-sample
    critical value: a handful of units, or of reference scores, is far from nothing)."""
    n, m = summary.units, getattr(summary, "reference_scores", None)
    if shift is None or not n or not m:
        return False
    critical = math.sqrt(-math.log(alpha / 2.0) / 2.0 * (n + m) / (n * m))
    return shift >= SHIFT_WARNING and shift > critical


def _no_units(lacking: dict[str, int], events: int, model: str) -> str:
    """Why no unit was built, from the events lacking each field a unit needs: a field no event
    has, when the counts prove it; else the generic line, with the counts that are not 0.

    Counts per field prove that no event has all the fields only when one field is lacking on
    every event: 4 of 10 lacking one field and 6 another may be the same 6, leaving 4 events
    with all of them (and all counts 0 say every event has every field)."""
    fields = " and ".join(f"`{name}`" for name in lacking)
    absent = [f"`{name}`" for name, count in lacking.items() if count >= events]
    if absent:
        return (f"no event has {' or '.join(absent)}, and {model} builds them from events with "
                f"{fields}; score input that carries them, or a model trained on this kind of "
                "data")
    counts = ", ".join(f"{count:,} lack `{name}`" for name, count in lacking.items() if count)
    return (f"none of them makes one for {model}" + (f" ({counts})" if counts else "")
            + "; is this the input it was trained for?")
