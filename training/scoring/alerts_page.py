"""The alerts page: top incidents, their heaviest alerts and reasons, as JSON and HTML.

`alerts_document(incidents, units)` is the JSON; `render_alerts_html(document)` shows it, every
value in an element whose `data-key` is its JSON Pointer in that document, formatted by the
evaluation report's `fmt` (the report's convention: page and JSON cannot disagree, and a test
checks it). `score` writes both beside its alerts (`<name>.alerts.json`, `<name>.alerts.html`).
Each top alert shows what happened as well as its score: its time, event type, process and
command line (`ALERT_CONTEXT`), from its row in the scored units (null where the unit's events
do not share one, or no units were given), and its events (`top_events`: an event alert its
own, an edge or a window its most telling ones) with who talked to whom and what ran
(`EVENT_COLUMNS`): a window's row shows no process where its events ran several.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from training.artifacts.atomic import atomic_write
from training.evaluation.report_html import STYLE, fmt, pointer

TOP_INCIDENTS = 20
_INCIDENT_COLUMNS = ("rank", "entity", "window_start", "score", "alerts", "first_seen",
                     "last_seen")
ALERT_CONTEXT = ("time", "event_type", "process", "command_line")  # from the unit's alert row
_ALERT_COLUMNS = ("layer", "unit", *ALERT_CONTEXT, "score", "percentile")
_REASON_COLUMNS = ("field", "contribution", "observed", "typical")
EVENT_COLUMNS = ("timestamp", "event_type", "source_ip", "source_port", "dest_ip", "dest_port",
                 "service", "user", "process", "command_line", "bytes")


def alerts_document(incidents: pa.Table, units: pa.Table | Sequence[pa.Table] = (),
                    top: int = TOP_INCIDENTS) -> dict[str, Any]:
    """The page's JSON: the `top` best incidents (times as ISO 8601 text), each top alert with
    its `ALERT_CONTEXT` from its row in `units` (the scored units, `OUTPUT_SCHEMA` rows, of one
    table or several: the incidents' alert tables)."""
    rows = incidents.slice(0, top).to_pylist()
    for row in rows:
        for key in ("window_start", "first_seen", "last_seen"):
            row[key] = None if row[key] is None else row[key].isoformat()
    alerts = [alert for row in rows for alert in row["top"] or ()]
    found = _context_of(alerts, [units] if isinstance(units, pa.Table) else list(units))
    for alert in alerts:
        context = found.get((alert["layer"], alert["unit"]), {})
        alert.update({key: context.get(key) for key in ALERT_CONTEXT})
        alert["top_events"] = [{key: event.get(key) for key in EVENT_COLUMNS}
                               for event in context.get("top_events") or ()]
    return {"incidents": rows, "total_incidents": incidents.num_rows}


def _context_of(alerts: list[dict[str, Any]], units: list[pa.Table]
                ) -> dict[tuple[str, str], dict[str, Any]]:
    """The `ALERT_CONTEXT` and `top_events` of each (layer, unit) of `alerts`, from the first
    row of `units` that has it (times as ISO 8601 text)."""
    wanted = {(a["layer"], a["unit"]) for a in alerts}
    names = pa.array(sorted({unit for _, unit in wanted}), pa.string())
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for table in units:
        if not len(names) or len(found) == len(wanted):
            break
        columns = ["layer", "unit", *(c for c in (*ALERT_CONTEXT, "top_events")
                                      if c in table.column_names)]
        hits = table.filter(pc.is_in(table["unit"], value_set=names)).select(columns)
        for row in hits.to_pylist():
            key = (row["layer"], row["unit"])
            if key in wanted and key not in found:
                if row.get("time") is not None:
                    row["time"] = row["time"].isoformat()
                for event in row.get("top_events") or ():
                    if event.get("timestamp") is not None:
                        event["timestamp"] = event["timestamp"].isoformat()
                found[key] = row
    return found


def _cell(document: dict[str, Any], *path: Any) -> str:
    node: Any = document
    for part in path:
        node = node[part]
    return f'<td data-key="{html.escape(pointer(*path))}">{html.escape(fmt(node))}</td>'


def _table(document: dict[str, Any], rows: list[tuple[Any, ...]],
           columns: Sequence[str]) -> str:
    """A table of `columns`, one row per JSON path of `rows` in `document`."""
    head = "".join(f"<th>{c}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(document, *row, c) for c in columns) + "</tr>"
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
        cells = "".join(_cell(document, "incidents", i, c) for c in _INCIDENT_COLUMNS)
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
            else:
                parts.append("<p class='note'>no reasons: the detector does not split its "
                             "score into per-feature terms</p>")
    parts.append("</body></html>")
    return "".join(parts)


def alerts_page_paths(alerts_path: str | Path) -> tuple[Path, Path]:
    """Where the page of the alerts file `alerts_path` goes: `<name>.alerts.json`, `.html`."""
    path = Path(alerts_path)
    return path.with_name(f"{path.stem}.alerts.json"), path.with_name(f"{path.stem}.alerts.html")


def write_alerts_page(incidents: pa.Table, alerts_path: str | Path,
                      units: pa.Table | Sequence[pa.Table] = ()) -> tuple[Path, Path]:
    """`<name>.alerts.json` and `<name>.alerts.html` beside the alerts file, atomically (the
    top alerts' context from `units`, the scored units the incidents were built from)."""
    document = alerts_document(incidents, units)
    json_path, html_path = alerts_page_paths(alerts_path)
    with atomic_write(json_path) as handle:
        handle.write(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    with atomic_write(html_path) as handle:
        handle.write(render_alerts_html(document).encode())
    return json_path, html_path
