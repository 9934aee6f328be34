"""The pipeline run's front page: events, notes, validation, one row per layer with its
threshold rule and decision (or why it was skipped), the fused score and the alerts page."""

from __future__ import annotations

import html
import os
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the run imports this module to write its page
    from training.pipeline.run import PipelineResult


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.4f}" if isinstance(value, float) else html.escape(str(value))


def _row(o: Any) -> str:
    if o.skipped:
        return (f"<tr><td>{o.layer}</td><td colspan=\"9\">skipped: {html.escape(o.skipped)}"
                "</td></tr>")
    m = o.metrics
    at1 = (m.get("detection_at_fpr") or {}).get("0.01") or {}
    link = f'<a href="{html.escape(o.report)}">{o.layer}</a>' if o.report else o.layer
    mark = ' <strong title="circular">(circular)</strong>' if o.circular else ""
    alerts = ("–" if m.get("n_alerts") is None else
              f"{m['n_alerts']:,} ({100 * (m.get('alert_rate') or 0):.2f}%)")
    notes = "".join(f"<br><small>{html.escape(n)}</small>" for n in o.notes)
    return (f"<tr><td>{link}{mark}</td><td>{o.model_name} {o.version}</td><td>{o.stage}</td>"
            f"<td>{m.get('n_units', '–')} {o.unit}s ({m.get('n_samples', 0)} labeled)</td>"
            f"<td>{_fmt(m.get('roc_auc'))}</td><td>{_fmt(m.get('pr_auc'))}</td>"
            f"<td>{_fmt(at1.get('detection_rate'))}</td>"
            f"<td>{_fmt(m.get('threshold'))}: {html.escape(o.threshold_rule or 'not recorded')}"
            f"</td><td>{alerts}</td>"
            f"<td>{html.escape(str(o.decision.get('reason', '')))}{notes}</td></tr>")


def _fused(fusion: dict[str, Any]) -> str:
    if not fusion:
        return ""
    from training.pipeline.fusion import fusion_summary  # the run imports this module too

    return f"<h2>Fused score (per event)</h2><p>{html.escape(fusion_summary(fusion))}</p>"


def _alerts(alerts: dict[str, Any]) -> str:
    if not alerts.get("page"):
        return ""
    return (f"<h2>Alerts (test part)</h2><p>{alerts['alerts']:,} alerts in "
            f"{alerts['incidents']:,} incidents: <a href=\"{html.escape(alerts['page'])}\">the "
            "top incidents, their events and reasons</a> (<a href=\""
            f"{html.escape(alerts['json'])}\">JSON</a>).</p>")


def render_index(result: PipelineResult) -> str:
    """The run's front page (see the module docstring)."""
    rows = "".join(_row(o) for o in result.layers)
    issues = "".join(f"<li>{html.escape(i)}</li>" for i in result.validation["issues"]) or "<li>none</li>"
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    circular = "".join(f"<li><strong>{o.layer}</strong>: {html.escape(o.circular)}</li>"
                       for o in result.layers if o.circular and o.metrics)
    tested = ("" if result.test_events is None else
              f" The test part is the test sources' {result.test_events:,} events.")
    return page_head("MAXIMUS pipeline run") + f"""
<p>{result.events:,} events collected, {result.quarantined:,} records quarantined;
whole run {result.seconds:.1f} s. Working directory: <code>{html.escape(result.workdir)}</code>.{tested}</p>
{f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""}
{f"<h2>Circular figures</h2><ul>{circular}</ul>" if circular else ""}
<h2>Detectors (test part)</h2>
<table><tr><th>layer</th><th>model</th><th>stage</th><th>test units</th><th>ROC-AUC</th>
<th>PR-AUC</th><th>detection at 1% FPR</th><th>threshold: how it was set</th><th>alerts</th>
<th>gate</th></tr>
{rows}</table>
<p>Each layer's report (score histograms, alerts at the threshold; with labels ROC and PR
curves, confusion matrix, attack types; training curves) is linked from its name. Scores:
higher is more anomalous; each threshold was calibrated on validation data by the rule shown.
A dash: the figure needs labels of both classes in the test part.</p>
{_fused(result.fusion)}
{_alerts(result.alerts)}
<h2>Data validation (<a href="validation.txt">text</a>, <a href="validation.json">JSON</a>)</h2>
<ul>{issues}</ul>
</body></html>
"""


def page_head(title: str) -> str:
    """The start of a pipeline page, to its <h1> `title`: one look for the run and the runs."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:75em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}
th{{background:#f3f3f3}}</style></head><body>
<h1>{html.escape(title)}</h1>"""


def render_unfinished(workdir: str) -> str:
    """The front page while a run is going: what a killed run leaves in place of a report that
    would name an older run's versions as current."""
    at = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MAXIMUS pipeline run (unfinished)</title>
</head><body><h1>MAXIMUS pipeline run: unfinished</h1>
<p>The run started at {at} (pid {os.getpid()}) in <code>{html.escape(workdir)}</code> did not finish
(or is still going): this report is incomplete. What it registered and promoted is in the
registry (<code>maximus-train registry list --workdir {html.escape(workdir)}</code>); run the
pipeline again for a full report.</p>
</body></html>
"""
