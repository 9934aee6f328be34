"""Incidents under live scoring: each poll's scored units update their incidents, and each
incident that gained alerts, or whose hour is over, goes out again as an ECS document.

    incidents = LiveIncidents(rule, saved=state.saved.get("incidents"))
    docs = incidents.update(rows)      # the rows of one poll: every unit scored, alert or not
    state.commit(..., incidents=incidents.saved())

An incident is what `training.scoring.incidents` makes of scored units: an entity's alerts in
one hour, scored by the evidence of every unit scored there (Fisher's and Sidak's tests per
layer, summed over layers). Live, it is kept as running aggregates per (entity, hour): for
each layer the number of units, the sum and the minimum of their ln p and their alerts; the
first and last time seen; the `TOP_ALERTS` heaviest alerts and the flows of its alerts
(joined by Community ID, at most `MAX_FLOWS`), and the `TOP_ALERTS` heaviest units that did not
alert. An incident is sent when it gains alerts, and once more when its hour is over (units of
a later hour have been read) if units scored since its last update changed its score: so the
update it last received carries what `build_incidents` gives for the same units in batch (the
tests compare them), its flows cut to the first `MAX_FLOWS`. An hour without alerts whose
evidence is as rare as an alert's (`quiet_incidents`) is sent when it is over, listing its
heaviest units.

An update is an ECS document: `event.kind: alert`, `event.action: incident-update`,
`event.id` the incident's stable id (an index keyed on it keeps its latest state),
`event.start`/`event.end` its hour, `event.risk_score` 100 x (1 - 10**-score) (its score is
-log10 of a p-value), the entity as `source.ip` and `related.ip` (as `host.name` when it is
not an address), and the incident under `maximus.incident`. Incidents two hours older than the
latest unit are let go: their last update stands, and units that arrive for their hour later
leave them as they were (their own alerts still go out).
The aggregates are small (a few numbers per entity, layer and hour) and are checkpointed in
the follow state with the read positions.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.kernels.netaddr import is_address
from training.scoring.ecs import AlertRule
from training.scoring.incidents import (
    TOP_ALERTS, TOP_CONTEXT, TOP_FIELDS, WINDOW_SECONDS, alert_weight, event_types_of, flows_of,
    group_rank, keyed_units, layer_evidence, quiet_incidents,
)

MAX_FLOWS = 10  # flows listed per incident (a scan has thousands)
_KEPT_SLOTS = 2  # hours kept behind the latest one
# What an incident keeps of its alerts (`alert_weight`, the top alerts, the flows).
_ALERT_FIELDS = ("layer", "unit", "score", "threshold", "percentile", "reference_scores",
                 "reasons", "community_id", "event_ids", *TOP_CONTEXT)


class LiveIncidents:
    """Incidents kept up to date poll by poll (see the module docstring).

    Args:
        rule: the model whose units are scored (the incidents' `rule.*`).
        saved: what `saved()` returned at the last checkpoint, or None.
    """

    def __init__(self, rule: AlertRule, saved: dict | None = None) -> None:
        self.rule = rule
        # (entity, slot) -> incident aggregates (JSON-able: they go into the state file)
        self.open: dict[tuple[str, int], dict[str, Any]] = {
            (item["entity"], item["slot"]): {"calm": [], **item}  # "calm": saved before it
            for item in (saved or {}).get("open", [])}
        self.latest: int | None = (saved or {}).get("latest")  # the latest hour seen

    def saved(self) -> dict[str, Any]:
        return {"latest": self.latest, "open": list(self.open.values())}

    def update(self, rows: pa.Table | pa.RecordBatch, created: datetime | None = None
               ) -> list[dict[str, Any]]:
        """Add one poll's scored rows; the updates of the incidents that gained alerts and of
        those whose hour is over and changed since their last update."""
        if not len(rows):
            return []
        table = pa.Table.from_batches([rows]) if isinstance(rows, pa.RecordBatch) else rows
        keyed = keyed_units(table, 0, WINDOW_SECONDS)
        if self.latest is not None:  # hours already let go keep their last update
            current = pa.array(keyed["slot"].to_numpy() >= self.latest - _KEPT_SLOTS)
            table, keyed = table.filter(current), keyed.filter(current)
            if not table.num_rows:
                return []
        groups = keyed.group_by(["entity", "slot", "layer"], use_threads=False).aggregate(
            [("log_p", "sum"), ("log_p", "count"), ("log_p", "min"), ("alert", "sum")])
        for entity, slot, layer, total, n, low, alerts in zip(*(groups[c].to_pylist() for c in (
                "entity", "slot", "layer", "log_p_sum", "log_p_count", "log_p_min",
                "alert_sum"))):
            item = self.open.setdefault((entity, slot), _new(entity, slot))
            mine = item["layers"].setdefault(layer, [0, 0.0, 0.0, 0])
            mine[0] += n
            mine[1] += total
            mine[2] = min(mine[2], low)
            mine[3] += alerts
            item["changed"] = True
        latest = int(pc.max(keyed["slot"]).as_py())
        self.latest = latest if self.latest is None else max(self.latest, latest)
        gained = self._add_alerts(table, keyed)
        self._add_heaviest(table, keyed)
        over = [k for k, item in self.open.items()  # its hour is over: its final score
                if k[1] < self.latest and item["changed"] and k not in gained]
        created_text = (created or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
        items = [self.open[key] for key in [*gained, *over]]
        scores = _scores(items)
        layers = np.array([len(item["layers"]) for item in items])
        alerts = np.array([item["alerts"] for item in items])
        sent = (alerts > 0) | quiet_incidents(np.array(scores), layers, alerts)
        docs = [self._document(item, score, created_text)
                for item, score, send in zip(items, scores, sent) if send]
        for item in items:
            item["changed"] = False
        for key in [k for k in self.open if k[1] < self.latest - _KEPT_SLOTS]:
            del self.open[key]
        return docs

    def _add_alerts(self, table: pa.Table, keyed: pa.Table) -> dict[tuple[str, int], None]:
        """Count the alerting rows into their incidents; returns those incidents, in the order
        of their first alert. Grouped in Arrow: Python only visits each incident and the few
        rows it may keep (its heaviest alerts, its first flows), not every alert."""
        at = np.flatnonzero(keyed["alert"].to_numpy(zero_copy_only=False))
        if not len(at):
            return {}
        rows = table.take(pa.array(at)).select(
            [c for c in _ALERT_FIELDS if c in table.column_names])
        keys = keyed.take(pa.array(at))
        weights = _weights(rows)
        alerts = pa.table({"entity": keys["entity"], "slot": keys["slot"],
                           "first": keys["seen_first"].cast(pa.int64()),
                           "last": keys["seen_last"].cast(pa.int64()),
                           "weight": pa.array(weights, pa.float64()),
                           "peak": keys["peak"], "i": pa.array(np.arange(len(at)))})
        groups = alerts.group_by(["entity", "slot"], use_threads=False).aggregate(
            [("i", "count"), ("i", "min"), ("first", "min"), ("last", "max")]).sort_by("i_min")
        touched: dict[tuple[str, int], None] = {}
        for entity, slot, count, first_us, last_us in zip(*(groups[c].to_pylist() for c in (
                "entity", "slot", "i_count", "first_min", "last_max"))):
            item = self.open[(entity, slot)]
            item["alerts"] += count
            for name, value, pick in (("first_us", first_us, min), ("last_us", last_us, max)):
                if value is not None:
                    item[name] = value if item[name] is None else pick(item[name], value)
            touched[(entity, slot)] = None
        heaviest = _first_of_groups(alerts.sort_by([("entity", "ascending"),
                                                    ("slot", "ascending"),
                                                    ("weight", "descending"),
                                                    ("peak", "descending"),
                                                    ("i", "ascending")]), TOP_ALERTS)
        picked = rows.take(heaviest["i"]).to_pylist()
        for row, entity, slot, weight, peak in zip(picked, *(heaviest[c].to_pylist() for c in (
                "entity", "slot", "weight", "peak"))):
            item = self.open[(entity, slot)]
            item["top"] = _heaviest(item["top"], row, weight, peak)
        self._add_flows(table.take(pa.array(at)), alerts)  # with the events they list
        return touched

    def _add_heaviest(self, table: pa.Table, keyed: pa.Table) -> None:
        """Keep each incident's `TOP_ALERTS` heaviest units that do not alert: an hour without
        alerts whose evidence makes it an incident lists them instead (`quiet_incidents`).
        Only the units that can enter their incident's list are read into Python: once an
        hour is busy, most units of a poll weigh no more than the lightest it keeps."""
        calm = np.flatnonzero(~keyed["alert"].to_numpy(zero_copy_only=False))
        if not len(calm):
            return
        units = keyed.take(pa.array(calm)).append_column("i", pa.array(calm))
        units = _first_of_groups(units.sort_by([("entity", "ascending"), ("slot", "ascending"),
                                                ("log_p", "ascending"), ("peak", "descending"),
                                                ("i", "ascending")]), TOP_ALERTS)
        weights = _weights(table.take(units["i"]))
        # Against each list as it was before this poll: a unit that cannot enter it then cannot
        # after this poll's units entered either (they only make its lightest heavier).
        entering = [j for j, (entity, slot, weight, peak) in enumerate(zip(
            *(units[c].to_pylist() for c in ("entity", "slot")), weights,
            units["peak"].to_pylist())) if _may_enter(self.open[(entity, slot)]["calm"],
                                                      weight, peak)]
        if not entering:
            return
        units = units.take(pa.array(entering, pa.int64()))
        weights = [weights[j] for j in entering]
        rows = table.take(units["i"])
        kinds = event_types_of(rows, pa.array(np.arange(rows.num_rows)))
        rows = rows.select([c for c in _ALERT_FIELDS if c in rows.column_names]).to_pylist()
        for row, weight, types, entity, slot, peak, first, last in zip(
                rows, weights, kinds, *(units[c].to_pylist() for c in ("entity", "slot", "peak")),
                *(units[c].cast(pa.int64()).to_pylist() for c in ("seen_first", "seen_last"))):
            row.update({"_types": types, "_first": first, "_last": last})
            item = self.open[(entity, slot)]
            item["calm"] = _heaviest(item["calm"], row, weight, peak, keep=True)

    def _add_flows(self, rows: pa.Table, alerts: pa.Table) -> None:
        """Join the alerts' events into their incidents' flows by Community ID (the first
        `MAX_FLOWS` flows of each incident)."""
        if "community_id" not in rows.column_names:
            return
        flow_ids = rows["community_id"].cast(pa.string())
        flows = alerts.select(["entity", "slot", "i"]).append_column("flow", flow_ids).filter(
            pc.fill_null(pc.not_equal(flow_ids, ""), False))  # as `flows_of`: none, or ""
        firsts = flows.group_by(["entity", "slot", "flow"], use_threads=False).aggregate(
            [("i", "min")]).sort_by([("entity", "ascending"), ("slot", "ascending"),
                                     ("i_min", "ascending")])
        known = [f for item in self.open.values() for f in item["flows"]]
        keep = pc.or_(group_rank(firsts) < MAX_FLOWS,
                      pc.is_in(firsts["flow"], value_set=pa.array(known, pa.string())))
        wanted = firsts.filter(keep).select(["entity", "slot", "flow"])
        members = flows.join(wanted, keys=["entity", "slot", "flow"],
                             join_type="inner").sort_by("i")
        picked = rows.take(members["i"])
        kinds = event_types_of(picked, pa.array(np.arange(picked.num_rows)))
        for events, types, entity, slot, flow in zip(
                picked["event_ids"].to_pylist(), kinds,
                *(members[c].to_pylist() for c in ("entity", "slot", "flow"))):
            _add_flow(self.open[(entity, slot)]["flows"], flow, events, types)

    def _document(self, item: dict[str, Any], score: float, created: str) -> dict[str, Any]:
        layers = sorted(item["layers"].items())
        start = item["slot"] * WINDOW_SECONDS
        first, last = item["first_us"], item["last_us"]
        if not item["alerts"]:  # a quiet incident: the times of the units it lists
            first = min((t["_first"] for t in item["calm"] if t["_first"] is not None),
                        default=None)
            last = max((t["_last"] for t in item["calm"] if t["_last"] is not None),
                       default=None)
        incident = {
            "entity": item["entity"], "window_start": _iso(start * 1e6), "score": score,
            "alerts": item["alerts"],
            "layers": [{"layer": name, "alerts": v[3]} for name, v in layers if v[3]],
            "first_seen": _iso(first), "last_seen": _iso(last),
            "top": [_shown(t) for t in item["top"] or item["calm"]],
            "flows": ([{"community_id": k, **v} for k, v in item["flows"].items()]
                      if item["alerts"] else flows_of(item["calm"])),
        }
        key = f"{self.rule.model_name}\x00{self.rule.version}\x00{item['entity']}\x00{start}"
        risk = 100.0 * -math.expm1(-score * math.log(10.0))
        doc: dict[str, Any] = {
            "@timestamp": incident["last_seen"] or created,
            "event": {"kind": "alert", "action": "incident-update",
                      "id": hashlib.blake2b(key.encode(), digest_size=16).hexdigest(),
                      "created": created, "start": incident["window_start"],
                      "end": _iso((start + WINDOW_SECONDS) * 1e6), "risk_score": round(risk, 3),
                      "severity": int(round(risk))},
            "rule": {"name": self.rule.name, "id": self.rule.model_name,
                     "version": self.rule.version, "ruleset": "maximus"},
        }
        if is_address(item["entity"]):
            doc["source"] = {"ip": item["entity"]}
            doc["related"] = {"ip": [item["entity"]]}
        elif item["entity"]:
            doc["host"] = {"name": item["entity"]}
        doc["maximus"] = {"incident": incident}
        return doc


def _scores(items: list[dict[str, Any]]) -> list[float]:
    """Each incident's score: its layers' evidence summed (one call for all: the chi-squared
    tail costs about 0.1 ms a call)."""
    owner = [i for i, item in enumerate(items) for _ in item["layers"]]
    if not owner:
        return [0.0] * len(items)
    n, total, low = (np.array([v[k] for item in items for v in item["layers"].values()],
                              np.float64) for k in range(3))
    scores = np.zeros(len(items))
    np.add.at(scores, owner, layer_evidence(total, n, low))
    return scores.tolist()


def _new(entity: str, slot: int) -> dict[str, Any]:
    return {"entity": entity, "slot": slot, "layers": {}, "alerts": 0, "first_us": None,
            "last_us": None, "top": [], "flows": {}, "calm": [], "changed": False}


def _heaviest(top: list[dict], row: dict[str, Any], weight: float, peak: float,
              keep: bool = False) -> list[dict]:
    """`top` with the alert `row` in its place: the heaviest first, then the furthest above its
    threshold (alerts past every benign score all weigh MAX_TAIL), the earlier on ties.
    `keep`: the entry keeps the row's events (for `flows_of`)."""
    entry = {**{k: row.get(k) for k in (*TOP_FIELDS, "reasons")}, "weight": weight,
             "peak": peak}
    if keep:  # the events only where `flows_of` joins them: a window unit may list thousands
        entry.update({k: row.get(k) for k in ("community_id", "_types", "_first", "_last")},
                     event_ids=row.get("event_ids") if row.get("community_id") else None)
    ranked = sorted([*top, entry],  # stable: earlier first
                    key=lambda t: (-t["weight"], -(t.get("peak") or 0.0)))
    return ranked[:TOP_ALERTS]


def _may_enter(top: list[dict], weight: float, peak: float | None) -> bool:
    """Whether `_heaviest` could keep an entry of `weight` and `peak` in `top`: it keeps fewer
    than `TOP_ALERTS`, or the entry ranks before its last (on a tie the earlier stays)."""
    if len(top) < TOP_ALERTS:
        return True
    last = top[-1]
    return not (-weight, -(peak or 0.0)) >= (-last["weight"], -(last.get("peak") or 0.0))


def _weights(rows: pa.Table) -> list[float]:
    """Each row's `alert_weight`, from its columns (the ones it lacks count as null)."""
    fields = ("score", "threshold", "percentile", "reference_scores")
    return [alert_weight(dict(zip(fields, values)))
            for values in zip(*(_column(rows, c).to_pylist() for c in fields))]


def _add_flow(flows: dict[str, dict], flow: str, events: list[str] | None,
              types: list[str] | None) -> None:
    """Add an alert's events and their types (`event_types_of`: None where one is unknown) to
    its flow (a new flow only while there are fewer than MAX_FLOWS), as `flows_of` joins them
    in batch."""
    known = flows.get(flow)
    if known is None:
        if len(flows) >= MAX_FLOWS:
            return
        known = flows[flow] = {"event_ids": [], "event_types": []}
    for event_id in events or ():  # as `flows_of`: each id once
        if event_id not in known["event_ids"]:
            known["event_ids"].append(event_id)
    if types is None or known["event_types"] is None:
        known["event_types"] = None
    else:
        known["event_types"].extend(t for t in types if t not in known["event_types"])


def _shown(entry: dict[str, Any]) -> dict[str, Any]:
    """A top entry as the incident shows it (as `build_incidents`' `top`)."""
    return {k: entry.get(k) for k in (*TOP_FIELDS, "reasons")}


def _first_of_groups(table: pa.Table, n: int) -> pa.Table:
    """The first `n` rows of each (entity, slot) run of a table sorted by it."""
    return table.filter(pa.array(group_rank(table) < n))


def _column(table: pa.Table, name: str) -> pa.ChunkedArray | pa.Array:
    return table[name] if name in table.column_names else pa.nulls(table.num_rows)


def _iso(micros: float | None) -> str | None:
    if micros is None:
        return None
    return str(np.datetime64(int(micros), "us")) + "Z"
