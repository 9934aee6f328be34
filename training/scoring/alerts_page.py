"""The alerts page: top incidents, their heaviest alerts and reasons, as JSON and HTML.

`alerts_document(incidents, units)` is the JSON; `render_alerts_html(document)` shows it, every
value in an element whose `data-key` is its JSON Pointer in that document, formatted by the
evaluation report's `fmt` (the report's convention: page and JSON cannot disagree, and a test
checks it). `score` writes both beside its alerts (`<name>.alerts.json`, `<name>.alerts.html`).
Each top alert shows what happened as well as its score: its time, event type, addresses and
ports, protocol, service, Community ID, the sensor's own id and verdict (a Suricata alert's
signature, SID, category and severity), host, user, process and command line
(`ALERT_CONTEXT`), from its row in the scored units (null where the unit's events do not share
one, or no units were given), and its events (`top_events`: an event alert its own, an edge or
a window its most telling ones) with their own context (`EVENT_COLUMNS`): a window's row shows
no process where its events ran several. The JSON has every column; a table on the page shows
those with a value in one of its rows (a flow has no process, a host log no ports), an address
and its port in one cell (`10.0.0.5:51000`, each keyed to its own value). Each incident also
lists its alerts' events joined by Community ID (`flows`: a Zeek conn and the Suricata alert of
one flow together), the first `TOP_FLOWS`. A top alert without reasons says why: its detector
does not explain its scores, or (a layer in `explained_layers`) its batch held more than
`MAX_EXPLAINED` alerts, and more incidents' top alerts than that (`AlertRows.most`).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from training.artifacts.atomic import atomic_write
from training.evaluation.report_html import STYLE, fmt, pointer
from training.scoring.alerts import MAX_EXPLAINED
from training.scoring.context import VERDICT_SCHEMA
from training.scoring.scored_units import ScoredUnits, as_units

Units = pa.Table | ScoredUnits | Sequence[pa.Table | ScoredUnits]  # scored units, any of them

TOP_INCIDENTS = 20
TOP_FLOWS = 10  # flows listed per incident on the page (a scan has thousands; the JSON all)
_INCIDENT_COLUMNS = ("rank", "entity", "window_start", "score", "alerts", "first_seen",
                     "last_seen")
_NETWORK = ("source_ip", "source_port", "dest_ip", "dest_port", "protocol", "service",
            "community_id")
_HOST = ("host", "user", "process", "command_line")
# From the unit's alert row.
ALERT_CONTEXT = ("time", "event_type", *_NETWORK, "sensor_id", *VERDICT_SCHEMA.names, *_HOST)
_ALERT_COLUMNS = ("layer", "unit", *ALERT_CONTEXT, "score", "percentile")
_REASON_COLUMNS = ("field", "contribution", "observed", "typical")
EVENT_COLUMNS = ("event_id", "timestamp", "event_type", *_NETWORK, *VERDICT_SCHEMA.names, *_HOST,
                 "bytes")
_FLOW_COLUMNS = ("community_id", "event_types", "event_ids")
# Shown even where empty: what names the row and what it scored.
_ALWAYS = frozenset({"layer", "unit", "time", "score", "percentile", "event_id", "timestamp",
                     "field", "contribution"})
_PORTS = {"source_ip": "source_port", "dest_ip": "dest_port"}  # one `address:port` cell
_HEADERS = {"source_ip": "source", "dest_ip": "destination"}


def alerts_document(incidents: pa.Table, units: Units = (),
                    top: int = TOP_INCIDENTS) -> dict[str, Any]:
    """The page's JSON: the `top` best incidents (times as ISO 8601 text), each top alert with
    its `ALERT_CONTEXT` from its row in `units` (the scored units, `OUTPUT_SCHEMA` rows, of one
    table or several: the incidents' alert tables, in memory or files)."""
    rows = incidents.slice(0, top).to_pylist()
    for row in rows:
        for key in ("window_start", "first_seen", "last_seen"):
            row[key] = None if row[key] is None else row[key].isoformat()
    alerts = [alert for row in rows for alert in row["top"] or ()]
    scored = as_units(units)
    found = _context_of(alerts, scored)
    for alert in alerts:
        context = found.get((alert["layer"], alert["unit"]), {})
        # the unit's row where given; else what the incident's top entry carries
        alert.update({key: context[key] if key in context else alert.get(key)
                      for key in ALERT_CONTEXT})
        alert["top_events"] = [{key: event.get(key) for key in EVENT_COLUMNS}
                               for event in context.get("top_events") or ()]
    return {"incidents": rows, "total_incidents": incidents.num_rows,
            # The layers of which some scored unit has reasons: their detectors explain, so
            # an alert of theirs without reasons is one past the `MAX_EXPLAINED` of its batch.
            "explained_layers": sorted(set().union(*(u.explained_layers() for u in scored)))}


def _context_of(alerts: list[dict[str, Any]], units: list[ScoredUnits]
                ) -> dict[tuple[str, str], dict[str, Any]]:
    """The `ALERT_CONTEXT` and `top_events` of each (layer, unit) of `alerts`, from the first
    row of `units` that has it (times as ISO 8601 text): found by the narrow columns, and
    only those rows read whole."""
    wanted = {(a["layer"], a["unit"]) for a in alerts}
    names = pa.array(sorted({unit for _, unit in wanted}), pa.string())
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for table in units:
        if not len(names) or len(found) == len(wanted):
            break
        narrow = table.narrow
        hits = np.flatnonzero(pc.fill_null(pc.is_in(narrow["unit"], value_set=names), False)
                              .to_numpy(zero_copy_only=False))
        first: dict[tuple[str, str], int] = {}
        for at, key in zip(hits.tolist(), zip(narrow["layer"].take(hits).to_pylist(),
                                              narrow["unit"].take(hits).to_pylist())):
            if key in wanted and key not in found:
                first.setdefault(key, at)
        rows = table.take(np.array(sorted(first.values()), np.int64),
                          ["layer", "unit", *ALERT_CONTEXT, "top_events"])
        for row in rows.to_pylist():
            if row.get("time") is not None:
                row["time"] = row["time"].isoformat()
            for event in row.get("top_events") or ():
                if event.get("timestamp") is not None:
                    event["timestamp"] = event["timestamp"].isoformat()
            found[(row["layer"], row["unit"])] = row
    return found


def _node(document: dict[str, Any], path: Sequence[Any]) -> Any:
    node: Any = document
    for part in path:
        node = node[part]
    return node


def _value(document: dict[str, Any], path: Sequence[Any], tag: str = "td") -> str:
    key = html.escape(pointer(*path))
    return f'<{tag} data-key="{key}">{html.escape(fmt(_node(document, path)))}</{tag}>'


def _cell(document: dict[str, Any], row: Sequence[Any], keys: tuple[str, ...]) -> str:
    """One cell: a value, an address and its port (`_PORTS`), or a list, item by item."""
    node = _node(document, row)
    if len(keys) == 2:  # address:port, each keyed; an IPv6 address in brackets before a port
        address, port = node.get(keys[0]), node.get(keys[1])
        text = _value(document, (*row, keys[0]), "span")
        if port is not None:
            six = address is not None and ":" in str(address)
            text = (f"[{text}]" if six else text) + ":" + _value(document, (*row, keys[1]),
                                                                  "span")
        return f"<td>{text}</td>"
    value = node.get(keys[0])
    if isinstance(value, list):
        return "<td>" + ", ".join(_value(document, (*row, keys[0], k), "span")
                                  for k in range(len(value))) + "</td>"
    return _value(document, (*row, keys[0]))


def _shown(document: dict[str, Any], rows: Sequence[tuple[Any, ...]],
           columns: Sequence[str]) -> list[tuple[str, ...]]:
    """The cells of `columns` that `rows` show: those with a value in one of them (and
    `_ALWAYS`), an address with its port."""
    nodes = [_node(document, row) for row in rows]
    shown = []
    for column in columns:
        if column in _PORTS.values():
            continue  # in its address's cell
        keys = (column, _PORTS[column]) if column in _PORTS else (column,)
        if column in _ALWAYS or any(node.get(k) not in (None, "", []) for node in nodes
                                    for k in keys):
            shown.append(keys)
    return shown


def _table(document: dict[str, Any], rows: list[tuple[Any, ...]],
           columns: Sequence[str]) -> str:
    """A table of those of `columns` that `rows` (JSON paths in `document`) show (`_shown`)."""
    cells = _shown(document, rows, columns)
    head = "".join(f"<th>{_HEADERS.get(keys[0], keys[0])}</th>" for keys in cells)
    body = "".join("<tr>" + "".join(_cell(document, row, keys) for keys in cells) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_alerts_html(document: dict[str, Any], title: str = "Alerts") -> str:
    """The page of `alerts_document(...)`: one self-contained HTML file."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p class='note'>Showing {len(document['incidents'])} of "
             f"<span data-key='/total_incidents'>{fmt(document['total_incidents'])}</span> "
             "incidents, best first.</p>"]
    head = "".join(f"<th>{c}</th>" for c in (*_INCIDENT_COLUMNS, "layers"))
    rows = []
    for i, incident in enumerate(document["incidents"]):
        cells = "".join(_value(document, ("incidents", i, c)) for c in _INCIDENT_COLUMNS)
        layers = ", ".join(f"{html.escape(x['layer'])}: {x['alerts']}" for x in incident["layers"])
        rows.append(f"<tr>{cells}<td>{layers}</td></tr>")
    parts.append(f"<h2>Top incidents</h2><table><tr>{head}</tr>{''.join(rows)}</table>")
    for i, incident in enumerate(document["incidents"]):
        parts.append(f"<h2 id='incident-{i + 1}'>#{incident['rank']} "
                     f"{html.escape(incident['entity'])}</h2>")
        quiet = not incident["alerts"]
        if quiet:
            parts.append("<p class='note'>No alert: its units, in every layer together, are as "
                         "rare for benign traffic as one alert. Its heaviest units:</p>")
        for j, alert in enumerate(incident["top"] or ()):
            at = ("incidents", i, "top", j)
            parts.append(_table(document, [at], _ALERT_COLUMNS))
            events = alert.get("top_events") or []
            if events:
                parts.append(_table(document, [(*at, "top_events", k) for k in
                                               range(len(events))], EVENT_COLUMNS))
            reasons = alert.get("reasons") or []
            if reasons:
                parts.append(_table(document, [(*at, "reasons", k) for k in range(len(reasons))],
                                    _REASON_COLUMNS))
            elif quiet:
                parts.append("<p class='note'>no reasons: they are given for alerts</p>")
            elif alert["layer"] in document.get("explained_layers", ()):
                parts.append(f"<p class='note'>no reasons: only {MAX_EXPLAINED:,} alerts of "
                             "each scored batch get them, each incident's top alerts first, "
                             "and this one's batch held more top alerts than that</p>")
            else:
                parts.append("<p class='note'>no reasons: the detector does not split its "
                             "score into per-feature terms</p>")
        flows = incident.get("flows") or []
        if flows:
            whose = "heaviest units'" if quiet else "alerts'"  # an hour without alerts
            parts.append(f"<p class='note'>Its {whose} events joined by Community ID: "
                         f"{min(len(flows), TOP_FLOWS)} of {len(flows)} flows.</p>")
            parts.append(_table(document, [("incidents", i, "flows", k) for k in
                                           range(min(len(flows), TOP_FLOWS))], _FLOW_COLUMNS))
    parts.append("</body></html>")
    return "".join(parts)


def alerts_page_paths(alerts_path: str | Path) -> tuple[Path, Path]:
    """Where the page of the alerts file `alerts_path` goes: `<name>.alerts.json`, `.html`."""
    path = Path(alerts_path)
    return path.with_name(f"{path.stem}.alerts.json"), path.with_name(f"{path.stem}.alerts.html")


def write_alerts_page(incidents: pa.Table, alerts_path: str | Path,
                      units: Units = ()) -> tuple[Path, Path]:
    """`<name>.alerts.json` and `<name>.alerts.html` beside the alerts file, atomically (the
    top alerts' context from `units`, the scored units the incidents were built from)."""
    document = alerts_document(incidents, units)
    json_path, html_path = alerts_page_paths(alerts_path)
    with atomic_write(json_path) as handle:
        handle.write(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    with atomic_write(html_path) as handle:
        handle.write(render_alerts_html(document).encode())
    return json_path, html_path
