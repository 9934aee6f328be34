"""The pipeline run's front page: events, validation, and one row per layer with its decision."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the run imports this module to write its page
    from training.pipeline.run import PipelineResult


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.4f}" if isinstance(value, float) else html.escape(str(value))


def render_index(result: PipelineResult) -> str:
    """The run's front page: events, validation, and one row per layer with its decision."""
    rows = []
    for o in result.layers:
        at1 = (o.metrics.get("detection_at_fpr") or {}).get("0.01") or {}
        link = f'<a href="{html.escape(o.report)}">{o.layer}</a>' if o.report else o.layer
        rows.append(
            f"<tr><td>{link}</td><td>{o.model_name} {o.version}</td><td>{o.stage}</td>"
            f"<td>{o.metrics.get('n_samples', '–')} {o.unit}s</td>"
            f"<td>{_fmt(o.metrics.get('roc_auc'))}</td><td>{_fmt(o.metrics.get('pr_auc'))}</td>"
            f"<td>{_fmt(at1.get('detection_rate'))}</td>"
            f"<td>{_fmt(o.metrics.get('threshold'))}</td>"
            f"<td>{_fmt(o.train.get('epochs_trained'))}</td>"
            f"<td>{html.escape(str(o.decision.get('reason', '')))}</td></tr>")
    issues = "".join(f"<li>{html.escape(i)}</li>" for i in result.validation["issues"]) or "<li>none</li>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MAXIMUS pipeline run</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:75em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}
th{{background:#f3f3f3}}</style></head><body>
<h1>MAXIMUS pipeline run</h1>
<p>{result.events:,} events collected, {result.quarantined:,} records quarantined;
whole run {result.seconds:.1f} s. Working directory: <code>{html.escape(result.workdir)}</code>.</p>
<h2>Detectors (test part)</h2>
<table><tr><th>layer</th><th>model</th><th>stage</th><th>test units</th><th>ROC-AUC</th>
<th>PR-AUC</th><th>detection at 1% FPR</th><th>threshold</th><th>epochs</th><th>gate</th></tr>
{''.join(rows)}</table>
<p>Each layer's report (ROC and PR curves, score histograms, confusion matrix, attack types,
training curves) is linked from its name. Scores: higher is more anomalous; the threshold was
calibrated on validation data.</p>
<h2>Data validation (<a href="validation.txt">text</a>, <a href="validation.json">JSON</a>)</h2>
<ul>{issues}</ul>
</body></html>
"""
