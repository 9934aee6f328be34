"""The promotion gate without labels: what a challenger must show on the shared recent window
when nobody knows which of its units are attacks.

    decision = unlabeled_decision(WindowFigures(new_scores, new.threshold, new.calibration,
                                                new_loss),
                                  WindowFigures(old_scores, ...), improvement=0.02)

Both models are measured on the same recent window (the test split). The rule, in order:

1. **alert rate**: the challenger's alert rate at its own threshold must stay within its
   calibration's expected rate (0.1% under the default threshold rule) × `factor` (3 by
   default); past it, when the excess is significant for the window's size (a one-sided
   binomial test, `training.evaluation.alert_rate`), it is refused: a model that alerts on half
   of the traffic is broken or facing something its training never saw, and either way it
   must not replace one that works. A challenger without a calibration cannot be checked and
   is refused;
2. **validation loss**: against a production model, the challenger's validation loss on the
   window must be at least `improvement` (relative: 0.02 = 2%) below the champion's, and
   within the configured ceiling when there is one. Without a production model step 1 decides.
   Two losses that measure different things (another detector class, another KL weight:
   `training.registry.comparable`) rank nothing: the champion stays, and the reason says so;
3. **score shift**: how far each model's scores on the window sit from its own benign
   validation scores, and the two models' from each other (Kolmogorov-Smirnov distances of
   the calibrated positions, `ScoreShift`), reported; and before step 2, a window the
   production model finds wholly unlike its benign validation data (its shift at least
   `MAX_CHAMPION_SHIFT`, and significantly so for its units: `SHIFT_ALPHA`) holds the
   challenger for a person: a model that learnt that window
   takes it as normal, and without labels nobody knows whether it is new normal traffic or
   an attack (trial R: a port-scan capture, learnt, was promoted on its lower loss).

The decision names the rule that decided (`rule`) and carries every figure (`figures`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import kstwo

from training.evaluation.alert_rate import (
    DEFAULT_ALPHA, DEFAULT_FACTOR, ScoreShift, check_alert_rate,
)
from training.evaluation.calibration import Calibration
from training.layers.base import Layer
from training.registry.comparable import loss_recipe
from training.retraining.gate import Decision, evaluate_model, relative_improvement

ALERT_RATE_RULE = "unlabeled alert rate within the calibration's expected rate x factor"
SHIFT_RULE = "unlabeled window like the production model's validation data"
# KS distance of the production model's scores on the window from its benign validation
# scores at which the window counts as other traffic (0: the same distribution, 1: disjoint).
MAX_CHAMPION_SHIFT = 0.5
SHIFT_ALPHA = 0.01  # ... and significant for the window's size (one-sample KS test)
LOSS_RULE = "unlabeled validation loss on the shared window"


@dataclass(frozen=True)
class WindowFigures:
    """One model on the shared recent window.

    Attributes:
        scores: (units,) its scores of the window's units.
        threshold: its anomaly threshold (a score >= it alerts).
        calibration: its calibration (None: saved before calibrations existed).
        val_loss: its validation loss averaged over the window's units.
        loss_recipe: what that loss measures (`training.registry.comparable.loss_recipe`).
    """

    scores: np.ndarray
    threshold: float | None
    calibration: Calibration | None
    val_loss: float
    loss_recipe: str = ""

    def shift(self) -> ScoreShift | None:
        if self.calibration is None:
            return None
        shift = ScoreShift(self.calibration)
        shift.add(self.scores)
        return shift


def window_figures(layer: Layer, loaded: Any, units: Any,
                   scores: np.ndarray | None = None) -> WindowFigures:
    """`loaded` (a loaded or registered model: `.model`, `.threshold`, `.calibration`) on the
    window `units` of `layer` (`scores`: its scores of them, when already computed).

    The validation loss counts every unit of the window: nobody knows which are attacks (the
    layers' losses count benign-labeled units only, so unlabeled ones are taken as benign).
    """
    everyone = layer.relabeled(units, np.zeros_like(layer.labels(units)))
    scores = layer.score(loaded.model, units) if scores is None else scores
    loss = evaluate_model(layer, loaded.model, loaded.threshold, everyone, scores)["val_loss"]
    recipe = loss_recipe({"model_class": type(loaded.model).__name__,
                          "init_args": getattr(loaded.model, "init_args", {})})
    return WindowFigures(scores, loaded.threshold, loaded.calibration, loss, recipe)


def unlabeled_decision(challenger: WindowFigures, champion: WindowFigures | None, *,
                       improvement: float, ceiling: float | None = None,
                       factor: float = DEFAULT_FACTOR, alpha: float = DEFAULT_ALPHA
                       ) -> Decision:
    """The unlabeled rule (module docstring) for `challenger` against `champion` (None: no
    production model) on the same window.

    Args:
        improvement: the minimum relative reduction of the validation loss (0.02 = 2%).
        ceiling: a maximum of the challenger's validation loss (None: none).
        factor, alpha: the alert-rate bound (expected rate × factor) and the binomial test's
            significance level.
    """
    new_shift = challenger.shift()
    old_shift = None if champion is None else champion.shift()
    figures: dict[str, Any] = {
        "units": int(len(challenger.scores)),
        "challenger_val_loss": challenger.val_loss,
        "champion_val_loss": None if champion is None else champion.val_loss,
        "challenger_shift": None if new_shift is None else new_shift.distance(),
        "champion_shift": None if old_shift is None else old_shift.distance(),
        "shift_vs_champion": (new_shift.distance(old_shift)
                              if new_shift is not None and old_shift is not None else None)}
    old_loss = None if champion is None else champion.val_loss

    def result(deploy: bool, rule: str, reason: str, gain: float | None = None) -> Decision:
        return Decision(deploy, f"{rule}: {reason}", "val_loss", "min", challenger.val_loss,
                        old_loss, ceiling, gain, improvement, rule, figures)

    if challenger.calibration is None or challenger.threshold is None:
        return result(False, ALERT_RATE_RULE, "the challenger has no calibration, so its "
                      "expected alert rate is unknown; retrain it with this version")
    alerts = int((np.asarray(challenger.scores) >= challenger.threshold).sum())
    check = check_alert_rate(alerts, len(challenger.scores),
                             challenger.calibration.expected_alert_rate, factor=factor,
                             alpha=alpha)
    figures["alert_rate"] = check.to_dict()
    expected = (f"expected {check.expected_rate:.2%} x {factor:g} = {check.bound:.2%}")
    if check.exceeded:
        return result(False, ALERT_RATE_RULE, f"{check.describe()} ({expected}): the "
                      "challenger alerts far more than its calibration promised")
    above = check.significance()  # above the bound, not significantly: say so, not "within"
    within = (f"alert rate {check.observed_rate:.2%} within {expected}" if above is None else
              f"alert rate {check.observed_rate:.2%} above {expected} {above}")
    shift = figures["champion_shift"]
    # far, and more than the window's few units explain (one window alone is "disjoint")
    if shift is not None and shift >= MAX_CHAMPION_SHIFT and kstwo.sf(
            shift, len(champion.scores)) < SHIFT_ALPHA:
        return result(False, SHIFT_RULE, f"{within}; but the production model's scores on the "
                      f"window are unlike its benign validation scores (KS distance "
                      f"{shift:.3f} >= {MAX_CHAMPION_SHIFT}): a challenger that learnt this "
                      "window takes it as normal, and without labels nobody knows whether it "
                      "is new normal traffic or an attack; look at what the production model "
                      "alerts on there (score), and promote the challenger by hand if it is "
                      "normal (registry promote)")
    if ceiling is not None and challenger.val_loss > ceiling:
        return result(False, "configured ceiling", f"challenger val_loss "
                      f"{challenger.val_loss:.4g} is above the ceiling {ceiling:.4g}")
    if champion is None:
        on = f" on {check.units:,} units" if above is None else ""  # else named in `above`
        return result(True, ALERT_RATE_RULE, f"no production model; {within}{on}")
    if challenger.loss_recipe != champion.loss_recipe:
        return result(False, LOSS_RULE, f"{within}; the champion stays: their losses measure "
                      f"different things ({challenger.loss_recipe} against the champion's "
                      f"{champion.loss_recipe}), so neither ranks the other; compare them on "
                      "labeled data (registry compare --metric pr_auc) or promote by hand "
                      "(registry promote)")
    gain = relative_improvement(challenger.val_loss, champion.val_loss, "min")
    reason = (f"{within}; val_loss {challenger.val_loss:.4g} vs champion "
              f"{champion.val_loss:.4g}: {gain:+.2%} (lower is better; at least "
              f"{improvement:+.2%} needed)")
    return result(gain >= improvement, LOSS_RULE, reason, gain)
