"""Whether the pipeline promotes a layer's new model: the gate that fits what the test part
holds.

* labels of both classes, at least `retraining.gate.MIN_CLASS_UNITS` of each (fewer are as
  none, and the reason names the counts): the labeled gate (`retraining.gate.labeled_decision`) on the test
  part, against the production model's scores when there is one;
* no labels, a production model: the unlabeled rule (`retraining.unlabeled_gate`: the alert
  rate its calibration promised, then a lower validation loss on the test part);
* no labels, no production model: the new model is promoted (something has to score), but
  when it alerts on the test part far more than its calibration promised the decision says so
  and carries a `warning`: the test part is not like the validation part its threshold was
  set on (other traffic, other log types), and its alerts will be as many.

Before any of these: a model whose threshold rests on fewer than
`evaluation.alert_rate.MIN_REFERENCE_UNITS` benign validation units is not promoted, whatever
the gate says (`retraining.gate.thin_calibration`, which `retrain` applies too).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from training.layers.base import Layer
from training.layers.registry import layer_for_spec
from training.pipeline.config import GateConfig
from training.retraining.gate import label_shortfall, labeled_decision, thin_calibration
from training.retraining.unlabeled_gate import unlabeled_decision, window_figures

FIRST_UNLABELED = "first model without labels"


def promotion_decision(layer: Layer, challenger: Any, champion: Any, test: Any,
                       labeled: bool, gate: GateConfig, events: pa.Table | None = None
                       ) -> dict[str, Any]:
    """The decision for `challenger` (a loaded model) against `champion` (the production
    model, or None) on the `test` units, as a dict with deploy, rule and reason; a test part
    with both classes but too few of one for the labeled rule says so in the reason. `events`
    (those of the test units) let the production model read them through its own spec."""
    decision = _decision(layer, challenger, champion, test, labeled, gate,
                         _as_champion_reads(layer, champion, test, events))
    labels = layer.labels(test)
    short = label_shortfall(labels)
    if not labeled and short and (labels == 0).any() and (labels == 1).any():
        decision["reason"] = f"{decision['reason']} ({short}, so judged without them)"
    return thin_calibration(layer, challenger, decision,
                            larger_validation="a larger [split] val_ratio")


def _as_champion_reads(layer: Layer, champion: Any, test: Any, events: pa.Table | None) -> Any:
    """The test units as the production model reads them: featurized again from their events
    through its spec when the challenger's featurizer counted its own training values (layer
    1's `l1.v4` and `l1.v5`) and the production model's spec is another (other counts, another
    layout); else the units themselves."""
    spec, own = getattr(champion, "feature_spec", None), getattr(test, "spec", None)
    if (events is None or spec is None or own is None or spec.fingerprint == own.fingerprint
            or not getattr(layer.featurizer, "learns_from_events", False)):
        return test
    row = {event_id: i for i, event_id in enumerate(events["event_id"].to_pylist())}
    ids = layer.unit_columns(test)["unit"].to_pylist()
    return layer_for_spec(spec).featurize(events.take([row[i] for i in ids]))


def _decision(layer: Layer, challenger: Any, champion: Any, test: Any, labeled: bool,
              gate: GateConfig, champion_test: Any) -> dict[str, Any]:
    if labeled:
        old = None
        if champion is not None:
            old = layer_for_spec(champion.feature_spec).score(champion.model, champion_test)
        return labeled_decision(
            gate.metric, layer.labels(test), layer.score(challenger.model, test), old,
            improvement=gate.improvement_threshold, floor=gate.min_value or None,
            thresholds=None if champion is None else (challenger.threshold,
                                                      champion.threshold)).to_dict()
    if not len(layer.labels(test)):
        deploy = champion is None
        return {"deploy": deploy, "metric": None,
                "rule": FIRST_UNLABELED if deploy else "no test units",
                "reason": ("no production model yet and no test units to gate on" if deploy
                           else "the test part has no unit to compare the models on; kept "
                                "production, marked this the challenger")}
    champion_figures = (None if champion is None else
                        window_figures(layer_for_spec(champion.feature_spec), champion,
                                       champion_test))
    decision = unlabeled_decision(window_figures(layer, challenger, test), champion_figures,
                                  improvement=gate.improvement_threshold).to_dict()
    if champion is not None or decision["deploy"]:
        return decision
    rate = decision["figures"].get("alert_rate")
    if rate is None:  # no calibration to check against: nothing to warn about
        return {**decision, "deploy": True, "rule": FIRST_UNLABELED,
                "reason": "no production model yet and no test labels to gate on"}
    warning = (f"{rate['observed_rate']:.2%} of the {rate['units']:,} test "
               f"{layer.unit}s alert where its calibration expects "
               f"{rate['expected_rate']:.2%}: the test part is unlike the validation part the "
               "threshold was set on (other traffic or log types?); expect as many alerts, or "
               "train on data that covers it")
    return {**decision, "deploy": True, "rule": FIRST_UNLABELED, "warning": warning,
            "reason": f"no production model yet and no test labels to gate on; {warning}"}
