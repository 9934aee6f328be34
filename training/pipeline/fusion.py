"""The pipeline's fused detector: one score per event from every trained layer.

After the layers are trained and registered, `fuse_layers` scores every unit of every layer
with its new model, turns the scores into tail probabilities (each model's own calibration),
gives every event the fused score of `training.evaluation.fusion`, and then treats the fused
score like a layer's:

* calibration: on the validation events (events of some layer's validation units and of no
  layer's training or test units: their fused score rests on validation scores alone), by the
  run's threshold rule; the reference is all of them, or the benign ones when the layers
  learnt from benign units only (as each layer's). The pipeline cuts every layer's units at
  the events' split times where it can, so most events of the validation time are such;
* evaluation: on the test events (the test sources' events, or those of some layer's test
  units and of no layer's training or validation units), with each layer's own event-level
  figure beside it (an event takes its units' smallest tail probability: the largest score);
* registration: `fusion.json` in the registry folder names the model versions it combines,
  its rule and its calibration; `maximus-train score --model fused` scores with exactly those.
  They are the versions this run trained, promoted or not (so that its figures are of one
  fixed rule over every layer, chosen by no test label); the summary names those the gate
  did not promote, and `score` warns of them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from training.errors import ConfigError
from training.evaluation.alert_rate import check_alert_rate
from training.evaluation.calibration import Calibration
from training.evaluation.fusion import FUSED_NAME, Fusion, event_tail_probabilities, fused_scores
from training.evaluation.score_metrics import evaluate_scores
from training.layers.base import Layer
from training.registry.registry import ModelRegistry
from training.scoring.fused import save_fusion

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class TrainedLayer:
    """One layer's part in the fusion: its registered model and the units it was split into.

    Attributes:
        layer: the (fitted) layer; model: its detector; calibration: the model's.
        model_name, version: as registered.
        parts: "train", "val", "test" units; test may come from the test sources.
        units: every unit of the training events (before the split).
    """

    layer: Layer
    model: Any
    calibration: Calibration
    model_name: str
    version: str
    parts: dict[str, Any]
    units: Any


def _ids(layer: Layer, units: Any) -> set[str]:
    ids = layer.unit_columns(units)["event_ids"]
    return set(ids.flatten().cast(pa.string()).to_pylist())


def event_parts(trained: Sequence[TrainedLayer], event_ids: np.ndarray,
                test_sources: bool) -> tuple[np.ndarray, np.ndarray]:
    """(validation, test) masks over `event_ids`: an event with a validation unit and no
    training or test unit in any layer; one with a test unit and no training or validation unit
    (all False with test sources: their events are the test events)."""
    parts = ("train", "val") if test_sources else ("train", "val", "test")
    in_part = {name: set().union(*(_ids(t.layer, t.parts[name]) for t in trained))
               for name in parts}
    fitted, validated, tested = in_part["train"], in_part["val"], in_part.get("test", set())

    def only(mine: set[str], others: set[str]) -> np.ndarray:
        return np.fromiter((i in mine and i not in fitted and i not in others
                            for i in event_ids), bool, len(event_ids))

    return only(validated, tested), only(tested, validated)


def tail_matrix(trained: Sequence[TrainedLayer], event_ids: np.ndarray,
                which: str = "units") -> np.ndarray:
    """(events, layers) tail probabilities of `event_ids`, scoring each layer's `which` units
    ("units": all of the training events, or a part's name); NaN where no unit covers one."""
    columns = []
    for t in trained:
        units = t.units if which == "units" else t.parts[which]
        p = t.calibration.tail_probability(t.layer.score(t.model, units))
        columns.append(event_tail_probabilities(
            event_ids, t.layer.unit_columns(units)["event_ids"], p))
    return np.column_stack(columns)


def fuse_layers(trained: Sequence[TrainedLayer], events: pa.Table, test_events: pa.Table | None,
                *, rule: str, threshold_rule: str, benign_only: bool = False,
                registry: ModelRegistry) -> dict[str, Any]:
    """Calibrate, evaluate and register the fused detector (module docstring).

    Returns:
        JSON-able: rule, models, threshold and its rule, validation and test events, the test
        figures of the fused score and of each layer per event; or {"skipped": why}.
    """
    if not trained:
        return {"skipped": "no layer was trained"}
    ids = np.asarray(events["event_id"].cast(pa.string()).to_pylist(), dtype=object)
    labels = np.asarray(events["is_threat"].to_numpy(zero_copy_only=False), np.int64)
    val, test = event_parts(trained, ids, test_events is not None)
    if not val.any():
        return {"skipped": "no event is in a validation part and in no training or test part"}
    p_all = tail_matrix(trained, ids)
    fused = fused_scores(p_all, rule)
    # The reference, as for each layer: every validation event (label-free training), or the
    # benign ones when the layers learnt from benign units only.
    reference = labels[val] == 0 if benign_only else np.ones(int(val.sum()), bool)
    times = np.asarray(events["timestamp"].cast(pa.timestamp("us")).to_numpy(
        zero_copy_only=False), "datetime64[us]")  # for alerts-per-day
    try:
        calibration = Calibration.fit(fused[val], labels[val], reference=reference,
                                      times=times[val], rule=threshold_rule)
    except ConfigError as exc:  # e.g. the validation events span less than a day
        return {"skipped": f"the fused threshold: {exc}"}
    models = tuple({"layer": t.layer.name, "model_name": t.model_name, "version": t.version}
                   for t in trained)
    fusion = Fusion(rule, models, calibration)
    if test_events is None:
        test_p, test_labels = p_all[test], labels[test]
    else:
        test_ids = np.asarray(test_events["event_id"].cast(pa.string()).to_pylist(), object)
        test_p = tail_matrix(trained, test_ids, "test")
        test_labels = np.asarray(test_events["is_threat"].to_numpy(zero_copy_only=False),
                                 np.int64)
    test_scores = fused_scores(test_p, rule)
    figures = {FUSED_NAME: evaluate_scores(test_scores, test_labels,
                                           threshold=calibration.to_threshold(),
                                           unlabeled_ok=True)}
    for at, t in enumerate(trained):  # the same events, one layer each (uncovered: p = 1)
        alone = fused_scores(np.nan_to_num(test_p[:, [at]], nan=1.0), rule)
        figures[t.layer.name] = evaluate_scores(alone, test_labels, unlabeled_ok=True)
    path = save_fusion(fusion, registry.registry_dir)
    refused = [f"{t.model_name} {t.version}" for t in trained
               if registry.get_metadata(t.model_name, t.version).stage != "production"]
    keep = ("roc_auc", "pr_auc", "n_units", "n_samples", "n_alerts", "alert_rate")
    summary = {"rule": rule, "models": [dict(m) for m in models], "file": str(path),
               **({"not_in_production": refused} if refused else {}),
               "threshold": calibration.threshold,
               "expected_alert_rate": calibration.expected_alert_rate,
               "threshold_rule": calibration.rule.replace("validation scores",
                                                          "validation events' fused scores"),
               "validation_events": int(val.sum()), "test_events": int(len(test_labels)),
               "test": {name: {k: v for k, v in m.to_dict().items() if k in keep}
                        for name, m in figures.items()}}
    # Threats are meant to alert: the rate to check is that of the other events, as the
    # layers' first unlabeled promotion checks theirs.
    others = test_labels != 1
    check = check_alert_rate(int((test_scores[others] >= calibration.threshold).sum()),
                             int(others.sum()), calibration.expected_alert_rate)
    if check.exceeded:
        summary["warning"] = (
            f"{check.observed_rate:.2%} of the {check.units:,} test events not labeled threat "
            f"alert where the validation events promise {check.expected_rate:.2%} (at most "
            f"{check.bound:.2%} tolerated, binomial {check.p_text}): the test part is unlike "
            "the validation part the threshold was set on; expect as many alerts, or train on "
            "data that covers it")
    logger.info("fused %d layers by %s: test ROC-AUC %s", len(trained), rule,
                summary["test"][FUSED_NAME].get("roc_auc"))
    return summary



def fusion_summary(fusion: dict[str, Any]) -> str:
    """One line: the fused detector's test figures beside each layer's, or why there is none."""
    if not fusion:
        return f"{FUSED_NAME}: not built"
    if fusion.get("skipped"):
        return f"{FUSED_NAME}: skipped: {fusion['skipped']}"

    def figures(m: dict[str, Any]) -> str:
        found = [f"{name} {m[key]:.3f}" for key, name in (("roc_auc", "ROC-AUC"),
                                                            ("pr_auc", "PR-AUC"))
                 if m.get(key) is not None]
        return ", ".join(found) or "no labels of both classes"

    test = fusion["test"]
    layers = "; ".join(f"{name} alone {figures(m)}" for name, m in test.items()
                       if name != FUSED_NAME)
    alerts, rate = test[FUSED_NAME].get("n_alerts"), test[FUSED_NAME].get("alert_rate")
    expected = fusion.get("expected_alert_rate")
    return (f"{FUSED_NAME}: {fusion['rule']} over {', '.join(m['layer'] for m in fusion['models'])}"
            f" -> {figures(test[FUSED_NAME])} on {fusion['test_events']:,} test events"
            + (f", {alerts:,} alert{'' if alerts == 1 else 's'}" if alerts is not None else "")
            + (f" ({rate:.2%}; {expected:.2%} of the validation events)"
               if rate is not None and expected is not None else "")
            + f" (threshold: {fusion['threshold_rule']}; {layers})"
            + (f"; with versions the gate did not promote: {', '.join(refused)}"
               if (refused := fusion.get("not_in_production")) else "")
            + (f"; warning: {fusion['warning']}" if fusion.get("warning") else ""))
