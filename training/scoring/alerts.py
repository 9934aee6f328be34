"""Scored units as alert rows: score, threshold, percentile, the alert flag and event context.

One row per unit the layer scores (`AlertRows`; the fused detector's rows come from the same
`unit_rows`, batch or live); the columns (`OUTPUT_SCHEMA`):

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
| reference_scores | int32 | how many validation scores that percentile is among (null with it): a score past all of 2,000 is a 1-in-2,001 event for benign traffic, whatever the percentile's decimals |
| event_type ... community_id, host, user, process, command_line, sensor_id, sensor_signature, sensor_signature_id, sensor_category, sensor_severity, first_seen, last_seen, top_events | | the event context (`training.scoring.context`; the `sensor_*` columns are the sensor's own verdict on a detection record, a Suricata alert's signature, SID, category and severity, output only; `process`, `command_line` and the verdict, also those of `top_events`, are null in files written before them) |
| reasons | list<struct<field, contribution, observed, typical>> | an alert's top reasons (`training.layers.reasons`); null for units that do not alert, for every unit when the layer or detector cannot explain its scores, and past `MAX_EXPLAINED` alerts in a batch for all but that many: the heaviest alert of each incident first, then each one's second and third, then the highest-scoring (`AlertRows.most`; logged once) |
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from training.errors import NotSupportedError
from training.layers.reasons import REASON_TYPE, reasons_column
from training.scoring.context import CONTEXT_SCHEMA, TIME, unit_context
from training.scoring.incidents import explain_order

logger = logging.getLogger(__name__)
# Alerts explained per scored batch (`AlertRows.most` picks them): explaining costs about 0.2 ms
# an event, so a threshold that makes most events alerts would otherwise slow scoring tenfold.
MAX_EXPLAINED = 1000

OUTPUT_SCHEMA = pa.schema([
    ("unit", pa.string()), ("time", TIME), ("score", pa.float32()), ("is_alert", pa.bool_()),
    ("event_ids", pa.list_(pa.string())), ("layer", pa.string()), ("threshold", pa.float32()),
    ("percentile", pa.float32()), ("reference_scores", pa.int32()), *CONTEXT_SCHEMA,
    ("reasons", pa.list_(REASON_TYPE)),
])


class AlertRows:
    """Builds the output rows of scored batches for one model (see the module docstring).

    Args:
        layer: the `Layer` that made and scored the units.
        model: the detector (asked for reasons of the alerting units).
        threshold: the model's threshold (a unit alerts at score >= threshold).
        calibration: the model's benign score distribution (`percentile(scores)`), or None.
        max_explained: the most units of a batch that get reasons (`most`).

    Raises:
        ValueError: max_explained < 1.
    """

    def __init__(self, layer: Any, model: Any, threshold: float, calibration: Any, *,
                 max_explained: int = MAX_EXPLAINED) -> None:
        if max_explained < 1:
            raise ValueError(f"max_explained must be >= 1, got {max_explained}")
        self.layer, self.model = layer, model
        self.threshold, self.calibration = threshold, calibration
        self.max_explained = max_explained
        self.explains = True  # until the layer or detector says it cannot
        self.capped = False  # whether a batch had more alerts than max_explained

    def score(self, events: pa.Table) -> tuple[pa.RecordBatch, np.ndarray]:
        """Featurize and score `events`: their rows, and the units' scores (as the layer gives
        them: float32)."""
        units = self.layer.featurize(events)
        scores = self.layer.score(self.model, units)
        return self.rows(units, scores, events), scores

    def rows(self, units: Any, scores: np.ndarray, events: pa.Table) -> pa.RecordBatch:
        """The rows of one batch: `units` made from `events`, with their `scores`, and the
        reasons of the alerts `most` picks."""
        batch = self.unexplained(units, scores, events)
        alert = np.flatnonzero(scores >= self.threshold)
        explained = self.explain(units, self.most(alert, scores, lambda: batch), events)
        return self.with_reasons(batch, scores, explained)

    def with_reasons(self, batch: pa.RecordBatch, scores: np.ndarray,
                     explained: dict[int, list[Any]]) -> pa.RecordBatch:
        """`batch` (`unexplained` rows) with the reasons `explained` has of its alerts."""
        reasons: list = [None] * len(scores)
        for row in np.flatnonzero(scores >= self.threshold).tolist():
            reasons[row] = explained.get(row)
        at = batch.schema.get_field_index("reasons")
        return batch.set_column(at, "reasons", reasons_column(reasons))

    def unexplained(self, units: Any, scores: np.ndarray, events: pa.Table) -> pa.RecordBatch:
        """The rows of one batch (as `rows`), with no reasons yet."""
        return unit_rows(self.layer.unit_columns(units), scores, events, layer=self.layer.name,
                         threshold=self.threshold, calibration=self.calibration)

    def most(self, rows: np.ndarray, scores: np.ndarray,
             batch: Callable[[], pa.RecordBatch], what: str = "alerts") -> np.ndarray:
        """`rows` (ascending), or past `max_explained` of them those an analyst meets first
        (`incidents.explain_order` of the `batch()` rows: the heaviest unit of each incident,
        the best incidents first, then each one's second and third, then the others, the
        highest-scoring first); warns once that some of `what` go without reasons. An
        incident's heaviest alert is also the heaviest of its part in each batch, so it keeps
        its reasons while a batch holds no more incidents than the cap."""
        cap = self.max_explained
        if len(rows) <= cap:  # a threshold far too low must not stall scoring
            return np.asarray(rows, np.int64)
        if not self.capped:
            logger.warning("more than %d %s in a batch: only %d of each batch carry reasons, "
                           "the heaviest of each incident first, the best incidents first",
                           cap, what, cap)
            self.capped = True
        rows = np.asarray(rows, np.int64)
        return np.sort(rows[explain_order(pa.Table.from_batches([batch()]), rows, cap)])

    def explain(self, units: Any, rows: np.ndarray, events: pa.Table
                ) -> dict[int, list[Any]]:
        """The reasons of units `rows` (`Layer.explain`), by row; none once the layer or its
        detector has said it cannot split its scores (logged once)."""
        rows = np.unique(np.asarray(rows, np.int64))
        if not self.explains or not len(rows):
            return {}
        try:
            return dict(zip(rows.tolist(), self.layer.explain(self.model, units, rows,
                                                              events=events)))
        except NotSupportedError as exc:
            logger.warning("alerts carry no reasons: %s", exc)
            self.explains = False
            return {}


def unit_rows(columns: dict[str, Any], scores: np.ndarray, events: pa.Table, *, layer: str,
              threshold: float, calibration: Any, reasons: pa.Array | None = None
              ) -> pa.RecordBatch:
    """Rows of `OUTPUT_SCHEMA` for scored units, whoever scored them (a layer, the fusion).

    Args:
        columns: per unit, its "unit", "time" and "event_ids" (`Layer.unit_columns`).
        scores: (units,) the scores; a unit alerts at score >= `threshold`.
        events: the canonical events the units were made from (their context).
        layer: what scored the units; calibration: its benign score distribution, or None.
        reasons: per unit, its reasons (`reasons_column`); None: none for any.
    """
    n = len(scores)
    if calibration is None:
        percentile, references = pa.nulls(n, pa.float32()), pa.nulls(n, pa.int32())
    else:
        percentile = pa.array(np.asarray(calibration.percentile(scores), np.float32))
        references = pa.array(np.full(n, calibration.n_scores, np.int32))
    context = unit_context(events, columns["event_ids"])
    arrays = [columns["unit"], columns["time"], pa.array(scores, pa.float32()),
              pa.array(scores >= threshold), columns["event_ids"], pa.array([layer] * n),
              pa.array(np.full(n, threshold, np.float32)), percentile, references,
              *context.columns,
              reasons_column([None] * n) if reasons is None else reasons]
    return pa.RecordBatch.from_arrays([a.combine_chunks() if isinstance(a, pa.ChunkedArray)
                                       else a for a in arrays], schema=OUTPUT_SCHEMA)


MAX_SHOWN = 100  # characters of one value on a terminal line (longer ones end in "...")
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def one_line(value: Any, limit: int = MAX_SHOWN) -> str:
    """A value as one terminal-safe line: whitespace runs with a line break or tab (a Windows
    `Message`) collapse to one space, other control characters (an escape sequence, a bidi
    override) are escaped ("\\x1b"), and past `limit` characters the text is cut with "..."."""
    text = str(value)
    if not text.isprintable():
        out, space = [], False
        for char in text:
            if char.isspace():
                space = True
                continue
            if space and out:
                out.append(" ")
            space = False
            out.append(char if char.isprintable() and char not in _BIDI
                       else char.encode("unicode_escape").decode("ascii"))
        text = "".join(out)
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."


def alert_line(rank: int, row: dict[str, Any]) -> str:
    """One alert of a top-alerts list, one line whatever its values hold: rank, score, unit,
    time, its first event ids and `alert_context`."""
    ids = row.get("event_ids") or []
    events = ", ".join(one_line(i, 40) for i in ids[:3]) + (" ..." if len(ids) > 3 else "")
    return (f"  {rank:>2}. {row['score']:.6g}  {one_line(row['unit'], 60)}  {row['time']}  "
            f"[{events}]{alert_context(row)}")


def alert_context(row: dict[str, Any]) -> str:
    """One alert row's context and first reason as a short line tail for people:
    "  10.0.0.5:51000 -> 8.8.8.8:53 udp dns; dest_port 65000 (typical 53)"; an event without
    addresses shows its type, host, user and process instead ("  process_creation HQ-WS015
    SYSTEM cmd.exe; ..."). Every value is `one_line`."""
    def end(ip: Any, port: Any) -> str:
        host = f"[{ip}]" if ip and ":" in str(ip) and port is not None else ip or "?"  # IPv6
        return one_line(f"{host}{'' if port is None else f':{port}'}")

    parts = []
    if row.get("source_ip") or row.get("dest_ip"):
        parts.append(f"{end(row.get('source_ip'), row.get('source_port'))} -> "
                     f"{end(row.get('dest_ip'), row.get('dest_port'))}")
        parts += [one_line(row[k]) for k in ("protocol", "service") if row.get(k)]
    else:  # a host log, or a log of no flow (Zeek files, x509): what and where instead
        parts += [one_line(row[k]) for k in ("event_type", "host", "user", "process")
                  if row.get(k)]
    text = " ".join(parts)
    reasons = row.get("reasons")
    if reasons:
        first = reasons[0]
        typical = ("" if first.get("typical") is None
                   else f" (typical {one_line(first['typical'])})")
        text += (f"{'; ' if text else ''}{one_line(first['field'])} "
                 f"{one_line(first.get('observed'))}{typical}")
    return f"  {text}" if text else ""
