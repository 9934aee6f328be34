"""What to know before reading a capture's figures, from the capture alone; the harness logs
these notes and keeps them in the results ("notes" of each capture).

* The fields that separate its labels (`training.datasets.leaks`, as the pipeline's validation
  warns): a detector that reads one may be finding the labelling rule, not the attack.
* Per layer, a training part smaller than the pipeline learns from (`Layer.train_shortfall`),
  and a validation part smaller than a threshold needs (`MIN_REFERENCE_UNITS`): the fused
  score's tail probabilities rest on those benign units.
"""

from __future__ import annotations

from training.collection.schema_union import concat_tables
from training.datasets.leaks import event_leaks
from training.evaluation.alert_rate import MIN_REFERENCE_UNITS
from training.evaluation.harness.protocol import Capture
from training.evaluation.harness.units import LayerUnits


def capture_notes(capture: Capture) -> list[str]:
    """The fields that separate `capture`'s labels, over all its rows."""
    events = concat_tables([capture.train, capture.val, capture.test])
    return [leak.message for leak in event_leaks(events)]


def unit_notes(units: LayerUnits) -> list[str]:
    """A training part smaller than the pipeline accepts, and a validation part too small for
    a threshold, of one layer's units."""
    layer, notes = units.layer, []
    if short := layer.train_shortfall(units.train):
        notes.append(f"{layer.name}: {short}")
    n_val = len(layer.labels(units.val))
    if n_val < MIN_REFERENCE_UNITS:
        notes.append(f"{layer.name}: {n_val} validation {layer.unit}s, fewer than the "
                     f"{MIN_REFERENCE_UNITS} a threshold needs (the fused score's tail "
                     "probabilities rest on them)")
    return notes
