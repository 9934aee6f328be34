"""Incidents: alerts grouped by entity and time window across layers, ranked.

A scan is hundreds of event alerts, a few edge alerts and a window alert on one host; an
incident puts them together. An alert's entity is its source address (the host that started
the flows), else its host or user (host logs), else the entity its unit names
(`entity@bucket`, `source->dest@window`); its window is its first-seen time floored to
`window_seconds`.

An (entity, window) with at least one alert is an incident; its score counts every unit scored
there, alerting or not. Each unit's tail probability p is the conformal p-value among its
model's benign validation scores, (1 + n x share at or above its score) / (n + 1), from its
percentile and their number n (`reference_scores`): a score past all of 2,000 benign scores is
a 1-in-2,001 event, not the 1 in a million that the percentile's extrapolated tail may say
(without `reference_scores`, as in files written before it, the share itself; at least
10**-`MAX_TAIL`; where the model has no calibration, 10**-(score / threshold)). In each layer the units' evidence is
-log10 of the p-value of the stronger of two tests: Fisher's (-2 sum ln p is chi-squared with
2n degrees of freedom when the units are benign), which adds up many moderately unusual units
(beacons, a slow exfiltration: no alert each, together far in the tail), and the smallest p
corrected for the n units (Sidak, 1 - (1 - p)**n), which keeps one far-out unit from being
diluted by many ordinary ones. An incident's score is the sum over layers: evidence from
several layers adds up. An (entity, window) without an alert is an incident all the same when
its layers' evidence together is as rare for benign units as one alert at the default threshold
(`quiet_incidents`: a host moving laterally at the 97th-99th percentile of all three layers,
never past a threshold). Chosen on the development data only (`benchmarks/incident_ranks.py`,
BENCHMARKS.md). Ties (alerts past every benign score) go to the incident whose alert is
furthest above its threshold (score / threshold).

Columns of the incidents table (`INCIDENT_SCHEMA`): rank, entity, window_start, score,
alerts, per-layer counts (`layers`: list of {layer, alerts}), first_seen, last_seen, flows
(the alerts' events joined by Community ID: list of {community_id, event_ids, event_types},
so a Zeek conn and the Suricata alert of one flow sit together; `event_types` is null where an
event's type is unknown: a unit of events of mixed types that lists only some in
`top_events`), and top (the heaviest alerts, furthest into the tail first, then furthest
above their threshold: list of {layer, unit, score, percentile, the `TOP_CONTEXT` of its
alert row (event type, addresses, ports, protocol, service, host, user, the sensor's
signature), reasons}); `flows` and `top`
are filled for the `MAX_DETAILED` best incidents and null beyond. An incident without alerts
lists its `TOP_ALERTS` heaviest units instead (their flows, times and `top`; units that do not
alert carry no reasons).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.errors import ConfigError
from training.layers.reasons import REASON_TYPE
from training.scoring.context import CONTEXT_SCHEMA, TIME
from training.scoring.evidence import layer_evidence, quiet_incidents
from training.scoring.scored_units import ScoredUnits, as_units

logger = logging.getLogger(__name__)

MAX_DETAILED = 1000  # incidents whose flows and top alerts are listed (the best first)
WINDOW_SECONDS = 3600.0  # an incident's time window, unless a caller says otherwise
MAX_TAIL = 6.0  # a score above every benign validation score: 1 in a million, at most
TOP_ALERTS = 3
_HEAVY = ("reasons", "top_events")  # nested columns read only where shown
# What a top entry shows of its unit besides its score: what and who, and the sensor's verdict
# (as its alert row has them), so that the incidents file reads on its own.
TOP_CONTEXT = ("event_type", "source_ip", "source_port", "dest_ip", "dest_port", "protocol",
               "service", "host", "user", "sensor_signature")
TOP_ENTRY = pa.struct([("layer", pa.string()), ("unit", pa.string()), ("score", pa.float32()),
                       ("percentile", pa.float32()),
                       *[(name, CONTEXT_SCHEMA.field(name).type) for name in TOP_CONTEXT],
                       ("reasons", pa.list_(REASON_TYPE))])
TOP_FIELDS = tuple(f.name for f in TOP_ENTRY if f.name != "reasons")  # read from its row
INCIDENT_SCHEMA = pa.schema([
    ("rank", pa.int32()), ("entity", pa.string()), ("window_start", TIME),
    ("score", pa.float64()), ("alerts", pa.int64()),
    ("layers", pa.list_(pa.struct([("layer", pa.string()), ("alerts", pa.int64())]))),
    ("first_seen", TIME), ("last_seen", TIME),
    ("flows", pa.list_(pa.struct([("community_id", pa.string()),
                                  ("event_ids", pa.list_(pa.string())),
                                  ("event_types", pa.list_(pa.string()))]))),
    ("top", pa.list_(TOP_ENTRY)),
])


def heaviest_units(units: pa.Table, incidents: pa.Table) -> pa.Table:
    """The `TOP_ALERTS` heaviest of `units` (`keyed_units` rows) in each of `incidents`
    (entity, slot): furthest into the tail, then furthest above their threshold."""
    members = units.join(incidents.select(["entity", "slot"]), keys=["entity", "slot"],
                         join_type="inner").sort_by([
                             ("entity", "ascending"), ("slot", "ascending"),
                             ("log_p", "ascending"), ("peak", "descending"),
                             ("source", "ascending"), ("at", "ascending")])
    return members.filter(pa.array(group_rank(members) < TOP_ALERTS)).select(units.column_names)


def group_rank(table: pa.Table) -> np.ndarray:
    """The position of each row within its (entity, slot) run (the table is sorted by it)."""
    if not table.num_rows:
        return np.zeros(0, np.int64)
    entity = table["entity"].to_numpy(zero_copy_only=False)
    slot = table["slot"].to_numpy()
    starts = np.r_[True, (entity[1:] != entity[:-1]) | (slot[1:] != slot[:-1])]
    first = np.flatnonzero(starts)
    return np.arange(len(starts)) - np.repeat(first, np.diff(np.r_[first, len(starts)]))


def explain_order(units: pa.Table, rows: np.ndarray, limit: int) -> np.ndarray:
    """The first `limit` of `rows` (alerting rows of `units`: one layer's scored units of a
    batch, as `score` writes them) in the order an analyst meets them (positions into `rows`):
    the heaviest alert of each incident (of the default `WINDOW_SECONDS`), the incidents in
    their order (`build_incidents`: evidence, peak, window, entity), then each one's second, up
    to the `TOP_ALERTS` an incident lists (heaviest as `_detailed` has it: weight, peak, file
    order), then the other alerts, the heaviest first. In numpy, sorting every alert once: a
    batch past the cap can hold a million."""
    keyed = keyed_units(units, 0, WINDOW_SECONDS)
    entity = pc.dictionary_encode(pc.fill_null(keyed["entity"], "")).combine_chunks()
    by_name = np.empty(len(entity.dictionary), np.int64)  # ties go by the entity's text
    by_name[pc.sort_indices(entity.dictionary).to_numpy()] = np.arange(len(by_name))
    code, slot = by_name[entity.indices.to_numpy()], keyed["slot"].to_numpy()
    groups, group = np.unique(code * (int(np.ptp(slot)) + 1) + (slot - slot.min()),
                              return_inverse=True)
    log_p = keyed["log_p"].to_numpy()
    least = np.full(len(groups), np.inf)
    np.minimum.at(least, group, log_p)
    evidence = layer_evidence(np.bincount(group, log_p), np.bincount(group), least)
    rows = np.asarray(rows, np.int64)
    g = group[rows]
    weight, peak = (keyed[c].to_numpy()[rows] for c in ("weight", "peak"))
    heaviest = np.lexsort((rows, -peak, -weight))  # within an incident, and among the rest
    within = heaviest[np.argsort(g[heaviest], kind="stable")]
    starts = np.flatnonzero(np.r_[True, g[within][1:] != g[within][:-1]])
    rank = np.empty(len(rows), np.int64)
    rank[within] = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
    peak_max = np.full(len(groups), -np.inf)
    np.maximum.at(peak_max, g, peak)
    first = np.unique(g)  # the incidents with alerts, in their order
    place = np.empty(len(groups), np.int64)
    place[first[np.lexsort((code[rows][within[starts]], slot[rows][within[starts]],
                            -peak_max[first], -evidence[first]))]] = np.arange(len(first))
    top = np.flatnonzero(rank < TOP_ALERTS)
    tops = top[np.lexsort((place[g[top]], rank[top]))]
    if len(tops) >= limit:
        return tops[:limit]
    return np.r_[tops, heaviest[rank[heaviest] >= TOP_ALERTS][:limit - len(tops)]]


def alert_weight(row: dict[str, Any]) -> float:
    """How far into the benign tail one alert is (see the module docstring)."""
    percentile = row.get("percentile")
    if percentile is None:
        threshold = row.get("threshold") or 0.0
        return float(row["score"]) / threshold if threshold > 0 else float(row["score"])
    above = max(1.0 - float(percentile) / 100.0, 0.0)  # share of benign scores at or above it
    n = row.get("reference_scores")
    p = (1.0 + n * above) / (n + 1.0) if n else above
    return MAX_TAIL if p <= 10.0 ** -MAX_TAIL else -math.log10(p)


def build_incidents(alerts: Sequence[pa.Table | ScoredUnits] | pa.Table | ScoredUnits,
                    window_seconds: float = WINDOW_SECONDS,
                    detailed: int = MAX_DETAILED) -> pa.Table:
    """Group scored units (the `score` output, any layers) into ranked incidents.

    Grouping and ranking run on Arrow columns; the lists of an incident (`flows`, `top`) are
    built for the `detailed` best incidents and left null beyond (a threshold that makes
    most units alerts would otherwise spend seconds in Python per 100,000 events).

    Args:
        alerts: scored-unit tables (`training.scoring.alerts.OUTPUT_SCHEMA`), in memory or
            files (`ScoredUnits`: their narrow columns are read, and whole rows for the
            detailed incidents only): every scored unit, so that the ranking counts the units
            that do not alert (module docstring); counts, times, flows and top alerts are the
            alerting units' (an incident without alerts: its heaviest units').
        window_seconds: the length of an incident's time window (> 0).
        detailed: how many of the best incidents get their `flows` and `top` lists.

    Returns:
        The incidents, best first (`INCIDENT_SCHEMA`).
    """
    if not window_seconds > 0:
        raise ConfigError(f"window_seconds must be > 0, got {window_seconds}")
    scored = as_units(alerts)
    units = pa.concat_tables([keyed_units(s.narrow, source, window_seconds)
                              for source, s in enumerate(scored)])
    per_layer = units.group_by(["entity", "slot", "layer"], use_threads=False).aggregate(
        [("log_p", "sum"), ("log_p", "count"), ("log_p", "min"), ("alert", "sum")])
    evidence = layer_evidence(*(per_layer[c].to_numpy() for c in (
        "log_p_sum", "log_p_count", "log_p_min")))
    per_layer = per_layer.append_column("evidence", pa.array(evidence))
    totals = per_layer.group_by(["entity", "slot"], use_threads=False).aggregate(
        [("evidence", "sum"), ("layer", "count"), ("alert_sum", "sum")])
    quiet = totals.filter(pa.array(quiet_incidents(*(totals[c].to_numpy() for c in (
        "evidence_sum", "layer_count", "alert_sum_sum")))))
    rows = pa.concat_tables([units.filter(pc.field("alert")), heaviest_units(units, quiet)])
    incidents = totals.select(["entity", "slot", "evidence_sum"]).join(
        rows.group_by(["entity", "slot"], use_threads=False).aggregate(
            [("peak", "max"), ("seen_first", "min"), ("seen_last", "max"), ("alert", "sum")]),
        keys=["entity", "slot"], join_type="inner")  # windows with an alert, and quiet ones
    incidents = incidents.sort_by([("evidence_sum", "descending"), ("peak_max", "descending"),
                                   ("slot", "ascending"), ("entity", "ascending")])
    lists = _detailed(scored, rows, incidents.slice(0, detailed))
    if incidents.num_rows > detailed:
        logger.info("%d incidents: flows and top alerts listed for the best %d", incidents.num_rows,
                    detailed)
    alerting = per_layer.filter(pc.greater(pc.field("alert_sum"), 0))  # most groups have none
    return _as_table(incidents.combine_chunks(), alerting, lists, window_seconds, detailed)


def _as_table(incidents: pa.Table, alerting: pa.Table,
              lists: dict[tuple[str, int], dict[str, Any]], window_seconds: float,
              detailed: int) -> pa.Table:
    """`INCIDENT_SCHEMA` rows of the ranked `incidents`, column by column (Python objects
    only for the detailed incidents' `lists`): their `layers` from `alerting` (the per-layer
    groups with alerts), sorted by layer."""
    n = incidents.num_rows
    order = incidents.select(["entity", "slot"]).append_column("rank", pa.array(np.arange(n)))
    mine = alerting.join(order, keys=["entity", "slot"]).sort_by(
        [("rank", "ascending"), ("layer", "ascending")])
    offsets = np.r_[0, np.cumsum(np.bincount(mine["rank"].to_numpy(), minlength=n))]
    layer_type = INCIDENT_SCHEMA.field("layers").type
    layers = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.StructArray.from_arrays(
        [mine["layer"].combine_chunks(), pc.cast(mine["alert_sum"], pa.int64()).combine_chunks()],
        fields=list(layer_type.value_type)), type=layer_type)
    # As datetime.fromtimestamp: the fraction of a second rounded to microseconds, half even.
    start = incidents["slot"].to_numpy() * window_seconds
    whole = np.trunc(start)
    micros = whole.astype(np.int64) * 1_000_000 + np.round((start - whole) * 1e6).astype(np.int64)
    keys = zip(*(incidents[c].slice(0, detailed).to_pylist() for c in ("entity", "slot")))
    details = [lists.get(key, {"flows": None, "top": None}) for key in keys]
    columns = {
        "rank": pa.array(np.arange(1, n + 1), pa.int32()), "entity": incidents["entity"],
        "window_start": pa.array(micros, pa.int64()).cast(TIME),
        "score": incidents["evidence_sum"], "alerts": pc.cast(incidents["alert_sum"], pa.int64()),
        "layers": layers, "first_seen": incidents["seen_first_min"],
        "last_seen": incidents["seen_last_max"]}
    for name in ("flows", "top"):
        kind = INCIDENT_SCHEMA.field(name).type
        columns[name] = pa.concat_arrays([pa.array([d[name] for d in details], kind),
                                          pa.nulls(n - len(details), kind)])
    return pa.table(columns, schema=INCIDENT_SCHEMA)


def _column(table: pa.Table, name: str, kind: pa.DataType) -> pa.Array | pa.ChunkedArray:
    return table[name] if name in table.column_names else pa.nulls(table.num_rows, kind)


def keyed_units(table: pa.Table, source: int, window_seconds: float) -> pa.Table:
    """The rows of one table with what grouping and ranking need (see the module docstring):
    entity, window slot, ln of the tail probability, whether it alerts, peak, first and last
    time seen."""
    def text(name: str) -> pa.Array:  # an empty value counts as none
        values = _column(table, name, pa.string())
        return pc.if_else(pc.equal(values, ""), None, values)

    unit = pc.list_element(pc.split_pattern(table["unit"], "@", max_splits=1), 0)
    entity = pc.coalesce(text("source_ip"), text("host"), text("user"),
                         pc.list_element(pc.split_pattern(unit, "->", max_splits=1), 0))
    first, last = _column(table, "first_seen", TIME), _column(table, "last_seen", TIME)
    seen = pc.coalesce(first, table["time"])
    seconds = pc.divide(pc.cast(pc.cast(seen, pa.int64()), pa.float64()), 1e6)
    slot = pc.fill_null(pc.cast(pc.floor(pc.divide(seconds, window_seconds)), pa.int64()), 0)
    score = pc.cast(table["score"], pa.float64())
    threshold = pc.fill_null(pc.cast(_column(table, "threshold", pa.float32()), pa.float64()),
                             0.0)
    by_threshold = pc.if_else(pc.greater(threshold, 0.0), pc.divide(score, threshold), score)
    # Ties past every benign score: how far above its threshold, whatever the threshold's sign.
    peak = pc.if_else(pc.not_equal(threshold, 0.0), pc.divide(score, threshold), score)
    above = pc.max_element_wise(pc.subtract(1.0, pc.divide(pc.cast(
        _column(table, "percentile", pa.float32()), pa.float64()), 100.0)), 0.0,
        skip_nulls=False)
    n = pc.cast(_column(table, "reference_scores", pa.int32()), pa.float64())
    p = pc.coalesce(pc.divide(pc.add(pc.multiply(n, above), 1.0), pc.add(n, 1.0)), above)
    tail = pc.if_else(pc.less_equal(p, 10.0 ** -MAX_TAIL), MAX_TAIL,
                      pc.negate(pc.log10(pc.max_element_wise(p, 10.0 ** -MAX_TAIL))))
    # A window's unit starts at its window, before its first event: its events' times win.
    times = [pc.cast(pc.coalesce(t, table["time"]), pa.int64()) for t in (first, last)]
    alert = pc.fill_null(table["is_alert"], False)
    # -log10 p. Without a calibration (no percentile) score / threshold stands in for an
    # alert's; a unit that does not alert is no evidence then (p = 1): score / threshold is not
    # a tail probability, and summed over many ordinary units it would outweigh real alerts.
    weight = pc.if_else(pc.is_null(above), pc.if_else(alert, by_threshold, 0.0), tail)
    log_p = pc.multiply(pc.min_element_wise(pc.max_element_wise(weight, 0.0), MAX_TAIL),
                        -math.log(10.0))
    n_rows = table.num_rows
    return pa.table({
        "entity": pc.cast(entity, pa.string()), "slot": slot,
        "layer": pc.fill_null(_column(table, "layer", pa.string()), ""),
        "log_p": pc.cast(log_p, pa.float64()),
        # An alert's weight, unclamped, as `alert_weight` gives it: its order among alerts.
        "weight": pc.cast(pc.if_else(pc.is_null(above), by_threshold, tail), pa.float64()),
        "alert": alert,
        "peak": peak,
        "seen_first": pc.cast(pc.min_element_wise(*times), TIME),
        "seen_last": pc.cast(pc.max_element_wise(*times), TIME),
        "source": pa.array(np.full(n_rows, source, np.int32)),
        "at": pa.array(np.arange(n_rows, dtype=np.int64)),
    }).combine_chunks()


def _detailed(scored: list[ScoredUnits], rows: pa.Table, best: pa.Table
              ) -> dict[tuple[str, int], dict[str, Any]]:
    """`flows` and `top` of the incidents in `best`, from their alert rows in `scored` (the
    only whole rows read)."""
    members = rows.join(best.select(["entity", "slot"]), keys=["entity", "slot"],
                        join_type="inner")
    members = members.sort_by([("source", "ascending"), ("at", "ascending")])
    groups: dict[tuple[str, int], list[dict]] = defaultdict(list)
    reasons: list[pa.ChunkedArray | None] = []  # of each source's rows taken
    for source, units in enumerate(scored):
        mine = members.filter(pc.equal(members["source"], source))
        table = units.take(mine["at"].to_numpy())
        reasons.append(table["reasons"] if "reasons" in table.column_names else None)
        light = table.select([n for n in table.column_names if n not in _HEAVY])
        types = event_types_of(table, pa.array(np.arange(table.num_rows)))
        for entity, slot, at, peak, known, row in zip(
                mine["entity"].to_pylist(), mine["slot"].to_pylist(), range(table.num_rows),
                mine["peak"].to_pylist(), types, light.to_pylist()):
            row["_at"], row["_peak"], row["_types"] = (source, at), peak, known
            groups[(entity, slot)].append(row)
    details = {}
    for key, group in groups.items():
        # How far into the tail, then how far above its threshold: alerts past every benign
        # score all weigh MAX_TAIL, and file order would otherwise pick among them.
        order = sorted(range(len(group)),
                       key=lambda i: (-alert_weight(group[i]), -group[i]["_peak"]))[:TOP_ALERTS]
        details[key] = {
            "flows": flows_of(group),
            "top": [{**{k: group[i].get(k) for k in TOP_FIELDS},
                     "reasons": _reasons_of(group[i]["_at"], reasons)} for i in order]}
    return details


def _reasons_of(at: tuple[int, int], reasons: list[pa.ChunkedArray | None]) -> Any:
    column = reasons[at[0]]
    return None if column is None else column[at[1]].as_py()


def event_types_of(table: pa.Table, at: pa.Array) -> list[list[str] | None]:
    """The event types of the events behind each of the rows `at`: the row's own `event_type`
    (its events share it), else those of its `top_events` when they are all its events; None
    where some event's type is unknown (an edge of more events than it lists, of mixed types)."""
    own = _column(table, "event_type", pa.string()).take(at).to_pylist()
    ids = table["event_ids"].take(at).to_pylist()
    top = (table["top_events"].take(at).to_pylist() if "top_events" in table.column_names
           else [None] * len(own))
    out: list[list[str] | None] = []
    for kind, events, listed in zip(own, ids, top):
        if kind:
            out.append([kind])
        elif listed and {e["event_id"] for e in listed} >= set(events or ()) \
                and all(e["event_type"] for e in listed):
            out.append(list(dict.fromkeys(e["event_type"] for e in listed)))
        else:
            out.append(None)
    return out


def flows_of(rows: list[dict]) -> list[dict[str, Any]]:
    """The alerts' events joined by Community ID (alerts without one are left out). A flow's
    `event_types` are its events' types (`_types` of each row, else its `event_type`), null
    where the type of one of its events is unknown."""
    flows: dict[str, dict[str, Any]] = {}
    for row in rows:
        flow_id = row.get("community_id")
        if not flow_id:
            continue
        flow = flows.setdefault(flow_id, {"event_ids": [], "event_types": []})
        flow["event_ids"].extend(i for i in row["event_ids"] if i not in flow["event_ids"])
        types = row.get("_types", [row["event_type"]] if row.get("event_type") else None)
        if types is None or flow["event_types"] is None:
            flow["event_types"] = None
        else:
            flow["event_types"].extend(t for t in types if t not in flow["event_types"])
    return [{"community_id": k, **v} for k, v in flows.items()]
