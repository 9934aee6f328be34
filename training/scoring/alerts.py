"""Scored units as alert rows: score, threshold, percentile, the alert flag and event context.

One row per unit the layer scores; the columns (`OUTPUT_SCHEMA`):

| column | type | meaning |
|---|---|---|
| unit | string | the unit's name (an event id, `source->dest@window`, `entity@bucket`) |
| time | timestamp[us, UTC] | the event's time, the window start or the bucket start |
| score | float32 | higher = more anomalous |
| is_alert | bool | score >= threshold |
| event_ids | list<string> | the ids of the events behind the unit |
| layer | string | the layer that scored it |
| threshold | float32 | the model's anomaly threshold |
| percentile | float32 | where the score sits among the model's benign validation scores, 0..100 (null for a model saved without a calibration) |
| event_type ... community_id, sensor_id, first_seen, last_seen | | the event context (`training.scoring.context`) |
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from training.scoring.context import CONTEXT_SCHEMA, TIME, unit_context

OUTPUT_SCHEMA = pa.schema([
    ("unit", pa.string()), ("time", TIME), ("score", pa.float32()), ("is_alert", pa.bool_()),
    ("event_ids", pa.list_(pa.string())), ("layer", pa.string()), ("threshold", pa.float32()),
    ("percentile", pa.float32()), *CONTEXT_SCHEMA,
])


def alert_rows(layer: str, columns: dict[str, pa.Array], scores: np.ndarray, threshold: float,
               calibration: Any, events: pa.Table) -> pa.RecordBatch:
    """The output rows of one scored batch of units.

    Args:
        layer: the layer's name.
        columns: the units' "unit", "time" and "event_ids" (`Layer.unit_columns`).
        scores: their scores, in the same order.
        threshold: the model's threshold (a unit alerts at score >= threshold).
        calibration: the model's benign score distribution (`percentile(scores)`), or None.
        events: the canonical event table the units were made from (for their context).
    """
    n = len(scores)
    percentile = (pa.nulls(n, pa.float32()) if calibration is None
                  else pa.array(np.asarray(calibration.percentile(scores), np.float32)))
    context = unit_context(events, columns["event_ids"])
    arrays = [columns["unit"], columns["time"], pa.array(scores, pa.float32()),
              pa.array(scores >= threshold), columns["event_ids"],
              pa.array([layer] * n, pa.string()), pa.array(np.full(n, threshold, np.float32)),
              percentile, *context.columns]
    return pa.RecordBatch.from_arrays([a.combine_chunks() if isinstance(a, pa.ChunkedArray)
                                       else a for a in arrays], schema=OUTPUT_SCHEMA)
