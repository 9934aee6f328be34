"""The deployment gate: champion and challenger measured on the same test units, a floor, and
an improvement that noise cannot fake.

With labels (`labeled_decision`, for ROC-AUC and PR-AUC): both models' scores of the shared
test units are resampled together (a paired, class-stratified bootstrap). The challenger must
be clearly better than chance: the lower end of the 95% interval of its ROC-AUC above 0.5 and of
its PR-AUC above the base rate (the share of threats), plus any configured minimum on the
metric. Against a champion, the improvement is read as a relative reduction of the error
1 - metric: `improvement` 0.02 means the challenger's error is at least 2% below the
champion's; it is promoted when the lower end of the 95% interval of that reduction clears it.
So a challenger that is clearly better than a champion at 0.999 is promoted, and one within
noise of it is not.

The intervals need threats to resample: with a single threat every resample draws that one
and the interval is a point ([1, 1] when it ranks first). So the labeled rule judges only test
units with at least `MIN_CLASS_UNITS` (5) of each class (`has_both_labels`); with fewer,
callers take the rule without labels, and `labeled_decision` refuses to judge, naming the
counts.

    metrics = evaluate_model(layer, model, threshold, test)   # the same test units for both
    decision = labeled_decision("pr_auc", labels, challenger_scores, champion_scores,
                                improvement=0.02)

A ranking metric says nothing of where a threshold sits, so with the models' thresholds given
(`retrain` and the pipeline's promotion give them) a challenger that passes the bootstrap is
still refused when, at its own threshold, it misses significantly more of the test threats than
the champion at its own (`lost_detections`: paired, McNemar's exact test).

Metrics without a bootstrap here (the validation loss, metrics at a threshold) go through
`decide`: a floor and a minimum relative improvement of the point values.

Whatever the rule, a challenger whose threshold rests on fewer than
`evaluation.alert_rate.MIN_REFERENCE_UNITS` benign validation units is not deployed
(`thin_calibration`, applied to its decision by the pipeline's promotion and by `retrain`): its
threshold is one of a handful of scores (on one unit, that unit's score, with an expected alert
rate of 100% that no alert rate can exceed). The reason names the layer, the count and what
gives more units; the rule's own verdict follows it.

Metrics of a model on a split (`evaluate_model`):

* `val_loss`: the model's validation loss (`validation_step`, eval mode) averaged over the
  test units (weighted as the trainer weighs them), as the layer compares models
  (`Layer.validation_loss`: for the VAE its reconstruction term, which no model's KL weight
  changes): the label-free comparison. The layers' losses count the units training would
  learn from (the benign-labeled ones, where a layer's batches mark them: layers 2 and 3), so
  on units with none of those there is no `val_loss` (absent, not 0: a 0 reads as perfect);
* with both benign and threat labels: the threat class's `pr_auc` and `roc_auc`, and at the
  model's stored threshold `precision`, `recall`, `f1_score`, `accuracy`
  (`training.evaluation.score_metrics.evaluate_scores`, unknown labels left out).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from training.detectors.base import Detector, model_device, to_device
from training.layers.base import Layer
from training.errors import ConfigError
from training.evaluation.alert_rate import reference_shortfall
from training.evaluation.bootstrap import paired_metrics
from training.evaluation.score_metrics import evaluate_scores
from training.evaluation.thresholds import MIN_CLASS_UNITS
from training.registry.metadata import metric_direction

LABELED_METRICS = ("pr_auc", "roc_auc", "precision", "recall", "f1_score", "accuracy")
# The labeled rule needs `MIN_CLASS_UNITS` (5) known units of each class, as "auto"
# thresholds do. With n threats, a share n^(1-n) of the resamples draws one threat n times
# (1: all, 2: 50%, 3: 11%, 4: 1.6%, 5: 0.16%): below 5 such one-threat resamples reach the
# interval's 2.5% end and set it. Measured (normal scores, true
# ROC-AUC 0.75, 500 benign units), the 95% interval misses the truth for 91% of test splits
# with 1 threat and 19% with 5 (10 threats: 10%, 20: 9%): still optimistic, no longer a point.


def label_shortfall(labels: np.ndarray) -> str | None:
    """Why `labels` are too few for the labeled rule, in words naming the counts, or None."""
    labels = np.asarray(labels)
    threat, benign = int((labels == 1).sum()), int((labels == 0).sum())
    if min(threat, benign) >= MIN_CLASS_UNITS:
        return None
    return (f"{threat:,} threat and {benign:,} benign test units: the labeled gate needs at "
            f"least {MIN_CLASS_UNITS} of each for its 95% intervals")


def has_both_labels(labels: np.ndarray) -> bool:
    """Whether `labels` can decide the labeled rule: at least `MIN_CLASS_UNITS` known units of
    each class. Fewer (none, one class, a single threat) are treated as no labels."""
    return label_shortfall(labels) is None


def _both_classes(labels: np.ndarray) -> bool:
    return bool((labels == 0).any() and (labels == 1).any())


def split_fingerprint(layer: Layer, units: Any) -> str:
    """sha256 of the units' FeatureSpec fingerprint, features, labels and unit names: two
    evaluations with the same fingerprint saw exactly the same units."""
    digest = hashlib.sha256()
    spec = getattr(units, "spec", None)
    digest.update((spec.fingerprint if spec is not None else "no spec").encode())
    names = layer.unit_columns(units)["unit"].to_numpy(zero_copy_only=False).astype(str)
    for array in (layer.unit_features(units), layer.labels(units), names):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@torch.inference_mode()
def evaluate_model(layer: Layer, model: Detector, threshold: float | None, units: Any,
                   scores: np.ndarray | None = None) -> dict[str, float]:
    """The gate's metrics of `model` on `units` of `layer` (see the module docstring);
    `scores`: the model's scores of the units when already computed."""
    model.eval()
    totals: dict[str, float] = {}
    weight = 0
    for batch in layer.batches(units, layer.score_batch):
        batch = to_device(batch, model_device(model))
        n = model.batch_size_of(batch)
        for name, value in model.validation_step(batch).items():
            totals[f"val_{name}"] = totals.get(f"val_{name}", 0.0) + float(value) * n
        weight += n
    metrics: dict[str, float] = {}
    if weight:  # no unit the loss counts (none benign-labeled): no val_loss, never a 0
        metrics["val_loss"] = layer.validation_loss(
            {name: total / weight for name, total in totals.items()})
    labels = layer.labels(units)
    if _both_classes(labels):  # reported however few: only the gate needs more
        scores = layer.score(model, units) if scores is None else scores
        evaluated = evaluate_scores(scores, labels, threshold=threshold)
        metrics.update({name: float(getattr(evaluated, name)) for name in LABELED_METRICS
                        if getattr(evaluated, name) is not None})
    return metrics


BOOTSTRAP_METRICS = ("pr_auc", "roc_auc")
RESAMPLES = 1000
TOO_FEW_LABELS = "too few labels to judge"
TOO_FEW_REFERENCE = "too few validation units for a threshold"


@dataclass(frozen=True)
class Decision:
    """Whether the challenger may replace the champion, which rule decided, and with which
    figures (JSON-able via `to_dict`)."""

    deploy: bool
    reason: str
    metric: str | None
    direction: str
    challenger: float | None
    champion: float | None
    floor: float | None
    relative_improvement: float | None
    required_improvement: float
    rule: str = "relative improvement of the point values"
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def labeled_decision(metric: str, labels: np.ndarray, challenger: np.ndarray,
                     champion: np.ndarray | None, *, improvement: float,
                     floor: float | None = None, resamples: int = RESAMPLES,
                     seed: int = 0, thresholds: tuple[float, float] | None = None
                     ) -> Decision:
    """The labeled rule (see the module docstring) on the scores of the same test units.

    Args:
        metric: "pr_auc" or "roc_auc".
        labels: (units,) -1/0/1; unknown units are left out.
        challenger, champion: each model's (units,) scores (champion None: no production model).
        improvement: the minimum relative error reduction (0.02 = 2%).
        floor: a further minimum of the challenger's metric (None: the statistical floors only).
        resamples, seed: the bootstrap.
        thresholds: the challenger's and the champion's alert thresholds: a challenger that
            passes the bootstrap is still refused when, at those thresholds, it misses
            significantly more of the test threats than the champion (`lost_detections`).

    With fewer than `MIN_CLASS_UNITS` known units of a class it refuses to judge: not deployed,
    rule `TOO_FEW_LABELS`, the counts in the reason and no interval.
    """
    if metric not in BOOTSTRAP_METRICS:
        raise ConfigError(f"the labeled gate decides on {' or '.join(BOOTSTRAP_METRICS)}, "
                          f"got {metric!r}")
    shortfall = label_shortfall(labels)
    if shortfall is not None:
        return _too_few_labels(metric, labels, shortfall, floor, improvement)
    known = np.asarray(labels)[np.asarray(labels) >= 0]
    base_rate = float((known == 1).mean())
    models = [challenger] if champion is None else [challenger, champion]
    stats, resampled = paired_metrics(models, labels, resamples=resamples, seed=seed)
    points = [s[metric] for s in stats]
    draws = [r[metric] for r in resampled]
    roc, pr = stats[0]["roc_auc"], stats[0]["pr_auc"]
    figures: dict[str, Any] = {
        "base_rate": base_rate, "units": int(len(known)), "resamples": resamples,
        "challenger_roc_auc": roc, "challenger_roc_auc_ci": _interval(resampled[0]["roc_auc"]),
        "challenger_pr_auc": pr, "challenger_pr_auc_ci": _interval(resampled[0]["pr_auc"])}

    def result(deploy: bool, rule: str, reason: str, gain: float | None = None) -> Decision:
        return Decision(deploy, f"{rule}: {reason}", metric, "max", points[0],
                        points[1] if champion is not None else None, floor, gain, improvement,
                        rule, figures)

    floor_rule = "labeled floor (ROC-AUC above chance, PR-AUC above the base rate)"
    if figures["challenger_roc_auc_ci"][0] <= 0.5:
        return result(False, floor_rule, f"challenger ROC-AUC {roc:.4f}, 95% interval "
                      f"{_show(figures['challenger_roc_auc_ci'])}, is not clearly above 0.5")
    if figures["challenger_pr_auc_ci"][0] <= base_rate:
        return result(False, floor_rule, f"challenger PR-AUC {pr:.4f}, 95% interval "
                      f"{_show(figures['challenger_pr_auc_ci'])}, is not clearly above the "
                      f"base rate {base_rate:.4f}")
    if floor is not None and points[0] < floor:
        return result(False, "configured floor",
                      f"challenger {metric} {points[0]:.4f} is below the floor {floor:.4g}")
    if champion is None:
        return result(True, floor_rule, f"no production model; challenger {metric} "
                      f"{points[0]:.4f} (ROC-AUC {roc:.4f}, PR-AUC {pr:.4f} at base rate "
                      f"{base_rate:.4f}) passes the floors")
    reduction = _error_reduction(draws[1], draws[0])
    point_gain = float(_error_reduction(np.array([points[1]]), np.array([points[0]]))[0])
    figures["error_reduction_ci"] = _interval(reduction)
    low = figures["error_reduction_ci"][0]
    reason = (f"challenger {metric} {points[0]:.4f} vs champion {points[1]:.4f}: the error "
              f"1 - {metric} is {_error_change(point_gain)}; the 95% interval of its reduction "
              f"is {_show(figures['error_reduction_ci'], percent=True)}, and its lower end must "
              f"be at least {improvement:+.1%}")
    if low >= improvement and thresholds is not None and None not in thresholds:
        lost, figures["detections"] = lost_detections(labels, challenger, champion, *thresholds)
        if lost is not None:
            return result(False, DETECTIONS_LOST, f"{lost} (the {metric} bootstrap alone "
                          f"would promote it: {reason})", point_gain)
    return result(low >= improvement, f"paired bootstrap of {metric}", reason, point_gain)


DETECTIONS_LOST = "threats detected at the thresholds (paired)"
DETECTION_P = 0.05  # one-sided: the challenger misses more threats than chance explains


def lost_detections(labels: np.ndarray, challenger: np.ndarray, champion: np.ndarray,
                    challenger_threshold: float, champion_threshold: float
                    ) -> tuple[str | None, dict[str, Any]]:
    """Why the challenger, at its own threshold, detects significantly fewer of the test
    threats than the champion at its own (None when it does not), and the figures: both
    models' alerts on the threats and on the benign units.

    A ranking metric (PR-AUC) says nothing of where a threshold sits: a challenger whose
    threshold lands above its threats (set on one extreme benign validation unit) ranks them
    well and alerts on none. Paired on the same threats (McNemar's exact test): of those one
    model detects and the other misses, the challenger must not miss significantly more
    (one-sided binomial, p < `DETECTION_P`). Fewer false alerts do not excuse it: a model that
    alerts on nothing has the fewest. Where the champion's threshold is the loud one (it
    alerts on a quarter of the benign units), trading its detections for quiet is a choice
    for a person, which the reason puts in figures."""
    labels = np.asarray(labels)
    threats, benign = _paired(labels == 1, challenger, champion, challenger_threshold,
                              champion_threshold), _paired(labels == 0, challenger, champion,
                                                           challenger_threshold,
                                                           champion_threshold)
    figures = {"threats": threats, "benign_alerts": benign}
    p = _one_sided(threats["only_champion"], threats["only_challenger"])
    if p >= DETECTION_P:
        return None, figures
    return (f"at its threshold the challenger detects {threats['challenger']:,} of the "
            f"{threats['units']:,} test threats, the champion {threats['champion']:,} at its "
            f"own: the challenger misses {threats['only_champion']:,} that the champion "
            f"detects and detects {threats['only_challenger']:,} that it misses (paired exact "
            f"binomial p = {p:.2g} < {DETECTION_P}); on the {benign['units']:,} benign test "
            f"units it alerts {benign['challenger']:,} times, the champion "
            f"{benign['champion']:,}: whether those detections are worth the false alerts is "
            "for a person to judge (registry promote)", figures)


def _paired(rows: np.ndarray, challenger: np.ndarray, champion: np.ndarray,
            challenger_threshold: float, champion_threshold: float) -> dict[str, int]:
    """The alerts of both models on `rows` (a mask): each's count, and those only one has."""
    new = np.asarray(challenger)[rows] >= challenger_threshold
    old = np.asarray(champion)[rows] >= champion_threshold
    return {"units": int(rows.sum()), "challenger": int(new.sum()), "champion": int(old.sum()),
            "only_champion": int((old & ~new).sum()), "only_challenger": int((new & ~old).sum())}


def _one_sided(more: int, fewer: int) -> float:
    """P(at least `more` of `more + fewer` discordant units fall one way by chance)."""
    from scipy.stats import binom

    return float(binom.sf(more - 1, more + fewer, 0.5)) if more else 1.0


def _too_few_labels(metric: str, labels: np.ndarray, shortfall: str, floor: float | None,
                    improvement: float) -> Decision:
    labels = np.asarray(labels)
    figures = {"threat_units": int((labels == 1).sum()), "benign_units": int((labels == 0).sum()),
               "min_class_units": MIN_CLASS_UNITS}
    reason = (f"{TOO_FEW_LABELS}: {shortfall}; judge without labels (comparison metric "
              "val_loss) or on a test split with more threats")
    return Decision(False, reason, metric, "max", None, None, floor, None, improvement,
                    TOO_FEW_LABELS, figures)


def _error_reduction(champion: np.ndarray, challenger: np.ndarray) -> np.ndarray:
    """(e_champion - e_challenger) / e_champion with e = 1 - metric, per resample (a perfect
    champion: 0 when the challenger is perfect too, else -1)."""
    old, new = 1 - champion, 1 - challenger
    safe = np.where(old > 0, old, 1.0)
    return np.where(old > 0, (old - new) / safe, np.where(new > 0, -1.0, 0.0))


def _interval(draws: np.ndarray) -> list[float]:
    return [float(v) for v in np.quantile(draws, [0.025, 0.975])]


def _error_change(reduction: float) -> str:
    """A relative error reduction in words, its sign folded into the word: "7.4% higher" for
    -0.074, "94.4% lower" for 0.944."""
    return f"{abs(reduction):.1%} {'higher' if reduction < 0 else 'lower'}"


def _show(interval: list[float], percent: bool = False) -> str:
    return (f"[{interval[0]:+.1%}, {interval[1]:+.1%}]" if percent
            else f"[{interval[0]:.4f}, {interval[1]:.4f}]")


def relative_improvement(new: float, old: float, direction: str) -> float:
    """(new - old) / |old| for a "max" metric, (old - new) / |old| for a "min" one; positive
    means better (|old| is floored at 1e-12, so the result stays finite and JSON-able)."""
    gain = new - old if direction == "max" else old - new
    return gain / max(abs(old), 1e-12)


def decide(metric: str, challenger: dict[str, float], champion: dict[str, float] | None, *,
           floor: float | None, improvement: float) -> Decision:
    """Deploy when the challenger's `metric` passes `floor` (a minimum for "max" metrics, a
    maximum for "min" ones; None: no floor) and, if there is a champion, beats it by at least
    `improvement` (relative)."""
    direction = metric_direction(metric)
    new = challenger.get(metric)
    old = None if champion is None else champion.get(metric)

    def result(deploy: bool, reason: str, gain: float | None = None) -> Decision:
        return Decision(deploy, reason, metric, direction, new, old, floor, gain, improvement)

    if new is None:
        return result(False, f"the challenger has no {metric} on the test split")
    if floor is not None and (new < floor if direction == "max" else new > floor):
        side = "below the floor" if direction == "max" else "above the ceiling"
        return result(False, f"challenger {metric} {new:.4g} is {side} {floor:.4g}")
    if champion is None:
        return result(True, f"no production model; challenger {metric} {new:.4g} passes the floor")
    if old is None:
        return result(False, f"the champion has no {metric} on the test split to compare with")
    gain = relative_improvement(new, old, direction)
    verdict = (f"challenger {metric} {new:.4g} vs champion {old:.4g}: "
               f"{gain:+.2%} ({'higher' if direction == 'max' else 'lower'} is better; "
               f"at least {improvement:+.2%} needed)")
    return result(gain >= improvement, verdict, gain)


SHORTER_WINDOWS = "windows shorter than {seconds:g} s ({flag})"


def thin_calibration(layer: Layer, challenger: Any, decision: dict[str, Any], *,
                     larger_validation: str, shorter_windows: str = SHORTER_WINDOWS
                     ) -> dict[str, Any]:
    """`decision` (a gate's, as a dict with deploy, rule and reason), or when `challenger`'s
    threshold rests on too few validation units (`reference_shortfall`) a refusal that says so
    and what gives more units (`TOO_FEW_REFERENCE`), the gate's verdict after it.
    `larger_validation`: how the caller's user gets a larger validation part, in words ("a
    larger [split] val_ratio"); `shorter_windows`: how they get shorter windows, with the
    window's `{seconds}` and the layer's `{flag}` (said only where a flag sets it)."""
    calibration = getattr(challenger, "calibration", None)
    thin = None if calibration is None else reference_shortfall(calibration, layer.unit)
    if thin is None:
        return decision
    more = ["more data", larger_validation]
    flags = [f"--{layer.name}-{name.replace('_', '-')}" for name in layer.featurizer_options
             if name.endswith("_seconds")]
    if layer.window_seconds is not None and flags:  # shorter windows: more in the same time
        more.append(shorter_windows.format(seconds=layer.window_seconds, flag=flags[0]))
    verdict = ("the gate alone would promote it" if decision["deploy"]
               else "the gate refuses it too")
    more_text = f"{', '.join(more[:-1])} or {more[-1]}"
    return {**decision, "deploy": False, "rule": TOO_FEW_REFERENCE,
            "reason": f"not promoted: {layer.name}: {thin}; give the run {more_text} "
                      f"({verdict}: {decision['reason']})"}
