"""A capture's units for one layer, and how the scored units map back to the scored flows.

`layer_units(capture, "layer2")` featurizes the capture's three parts with the layer's default
featurizer and keeps what every detector needs to be fitted, scored and measured on the same
units: the units themselves, their labels, and the (unit, flow) pairs of the test part (a flow is
a row of `capture.test`; a unit may be formed by many flows, and a flow may belong to several
units). `flow_scores(unit_scores)` gives each flow the largest score of the units it belongs to;
flows that no unit covers (a layer-3 window needs 30 minutes of its entity's history) score
-inf: they rank below every covered flow, all tied.

Everything goes through the `Layer` contract (`featurize`, `labels`, `unit_columns`), so a
new layer is measured without changing this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.errors import SchemaError
from training.evaluation.harness.captures import Capture
from training.layers.base import Layer
from training.layers.registry import get_layer


@dataclass
class LayerUnits:
    """One layer's units of one capture (see the module docstring).

    Attributes:
        capture: the capture the units come from.
        layer: the layer (fitted again by each training; every fit gives the same state).
        train, val, test: the units of the capture's parts.
        labels: is_threat of every test unit, (units,).
        pair_unit, pair_flow: the test (unit, flow) pairs, (pairs,) each.
        flow_labels: is_threat of every test flow, (flows,).
    """

    capture: Capture
    layer: Layer
    train: Any
    val: Any
    test: Any
    labels: np.ndarray
    pair_unit: np.ndarray
    pair_flow: np.ndarray
    flow_labels: np.ndarray

    @property
    def n_units(self) -> int:
        return len(self.labels)

    @property
    def covered_flows(self) -> int:
        """Test flows at least one unit covers."""
        return int(len(np.unique(self.pair_flow)))

    def flow_scores(self, unit_scores: np.ndarray) -> np.ndarray:
        """Each test flow's score: the maximum over its units (-inf without one), (flows,).

        Shapes:
            unit_scores: (units,) or (seeds, units) -> (flows,) or (seeds, flows).
        """
        unit_scores = np.asarray(unit_scores, dtype=np.float64)
        out = np.full((*unit_scores.shape[:-1], len(self.flow_labels)), -np.inf)
        np.maximum.at(out.T, self.pair_flow, unit_scores.T[self.pair_unit])
        return out

    def unit_max(self, flow_values: np.ndarray) -> np.ndarray:
        """Each test unit's largest value of `flow_values` (flows,) over its flows, (units,)."""
        out = np.full(self.n_units, -np.inf)
        np.maximum.at(out, self.pair_unit, np.asarray(flow_values, np.float64)[self.pair_flow])
        return out


def unit_flow_pairs(layer: Layer, units: Any, flows: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """The (unit, flow) pairs of `units`: flow = the row of `flows` whose event_id is one of the
    events that formed the unit.

    Raises:
        SchemaError: a unit names an event that is not in `flows`.
    """
    ids = layer.unit_columns(units)["event_ids"]
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    rows = pc.index_in(ids.flatten().cast(pa.string()),
                       value_set=flows["event_id"].cast(pa.string()).combine_chunks())
    if rows.null_count:
        raise SchemaError(f"{rows.null_count} events of the {layer.name} units are not among "
                          "the scored events")
    return (np.asarray(ids.value_parent_indices(), dtype=np.int64),
            rows.to_numpy(zero_copy_only=False).astype(np.int64))


def layer_units(capture: Capture, layer_name: str, featurizer: Any = None) -> LayerUnits:
    """Featurize `capture` for layer `layer_name` (by `featurizer`; None: its default)."""
    layer = get_layer(layer_name)(featurizer)
    if getattr(layer.featurizer, "learns_from_events", False):  # as the pipeline fits it,
        # on the training events the harness's models learn from (`Layer.fit`'s default)
        labels = capture.train["is_threat"].fill_null(-1).to_numpy(zero_copy_only=False)
        layer.featurizer.fit(capture.train.filter(pa.array(layer.learnt_mask(labels, None))))
    train, val, test = (layer.featurize(t) for t in (capture.train, capture.val, capture.test))
    pair_unit, pair_flow = unit_flow_pairs(layer, test, capture.test)
    flow_labels = capture.test["is_threat"].to_numpy(zero_copy_only=False).astype(np.int64)
    return LayerUnits(capture, layer, train, val, test, layer.labels(test), pair_unit,
                      pair_flow, flow_labels)
