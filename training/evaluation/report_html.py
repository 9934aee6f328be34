"""The HTML report: one self-contained file (figures embedded as base64 PNG), no server needed.

Every number shown comes from `EvaluationMetrics.to_dict()` and sits in an element whose
`data-key` is the JSON Pointer (RFC 6901) of that number in the JSON report, formatted by
`fmt`; so the page and the JSON cannot disagree, and a test can check it.
"""

from __future__ import annotations

import base64
import html
from typing import Any

from training.evaluation.figures import figures
from training.evaluation.result import EvaluationMetrics

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f2f2f2; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
.note { color: #444; font-size: 0.9em; }
.circular { background: #fff3cd; border: 1px solid #e0b000; padding: 0.5em; }
"""


def fmt(value: Any) -> str:
    """How a JSON number (or null, or text) is shown: integers in full, floats to 6 significant
    digits, text as it is."""
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    return f"{value:.6g}"


def pointer(*parts: Any) -> str:
    """The JSON Pointer of a value: "/a/b", with "~" and "/" escaped as RFC 6901 says."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class _Page:
    def __init__(self, report: dict[str, Any]) -> None:
        self.report = report
        self.parts: list[str] = []

    def value(self, *path: Any) -> str:
        node: Any = self.report
        for part in path:
            node = node[part]
        return f'<td data-key="{html.escape(pointer(*path))}">{fmt(node)}</td>'

    def add(self, text: str) -> None:
        self.parts.append(text)

    def heading(self, text: str) -> None:
        self.add(f"<h2>{html.escape(text)}</h2>")

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        """`rows` cells are ready HTML (from `value` or `label`)."""
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
        self.add(f"<table><tr>{head}</tr>{body}</table>")


def label(text: str) -> str:
    return f"<td>{html.escape(text)}</td>"


def render_html(m: EvaluationMetrics, title: str = "Evaluation report") -> str:
    """The whole report as one HTML document."""
    report = m.to_dict()
    page = _Page(report)
    who = m.model_name or "scores"
    page.add(f"<h1>{html.escape(title)}: {html.escape(who)} ({html.escape(m.model_kind)})</h1>")
    if m.circular:
        page.add(f'<p class="circular"><strong>Circular figures:</strong> '
                 f'<span data-key="/circular">{html.escape(m.circular)}</span></p>')
    seen = m.training_overlap
    if seen and seen["within"]:
        page.add(f'<p class="circular"><strong>Training data:</strong> {seen["within"]:,} of '
                 f'{seen["units"]:,} {html.escape(seen["unit"])}s lie within the time the model '
                 f'was trained and validated on ({seen["first"]} to {seen["last"]}); see the '
                 'notes.</p>')
    page.table(["rows", "count"], [[label("evaluated (known label)"), page.value("n_samples")],
                                   [label("unknown label, left out"), page.value("n_unknown_excluded")]]
               + [[label(name), page.value("per_class_metrics", name, "support")]
                  for name in report["per_class_metrics"]])

    if report["n_alerts"] is not None:
        page.heading("Alerts at the threshold")
        how = "threshold_rule" if report["threshold_rule"] else "threshold_source"
        page.add(f'<p>threshold <span data-key="/threshold">{fmt(report["threshold"])}</span>: '
                 f'<span data-key="/{how}">{html.escape(fmt(report[how]))}</span>.</p>')
        keys = ["n_units", "n_alerts", "alert_rate", "expected_alert_rate"]
        page.table(["units scored", "alerts", "alert rate", "on benign validation units"],
                   [[page.value(k) for k in keys]])
        if report["alerts"] and report["confusion_matrix"] is None:
            keys = list(report["alerts"])
            page.table(keys, [[page.value("alerts", k) for k in keys]])

    page.heading("Without a threshold")
    keys = ["roc_auc", "pr_auc"]
    page.table(["class"] + ["ROC-AUC", "PR-AUC"],
               [[label(name)] + [page.value("per_class_metrics", name, k) for k in keys]
                for name in report["per_class_metrics"]]
               + [[label("headline" + (" (macro)" if m.model_kind == "classifier" else " (threat)"))]
                  + [page.value(k) for k in keys]])
    if report["detection_at_fpr"]:
        columns = ["max_fpr", "detection_rate", "threshold", "fpr", "false_positives",
                   "allowed_false_positives"]
        page.table(["target"] + columns,
                   [[label(f"FPR <= {key}")] + [page.value("detection_at_fpr", key, c) for c in columns]
                    for key in report["detection_at_fpr"]])

    if report["confusion_matrix"] is not None:
        if m.model_kind == "anomaly":
            page.heading("At the threshold")
            page.add(f'<p>threshold <span data-key="/threshold">{fmt(report["threshold"])}</span>, '
                     f'source: {html.escape(str(report["threshold_source"]))}; a score at or above '
                     "it alerts.</p>")
        else:
            page.heading("At the predicted class")
        metrics = ["precision", "recall", "f1_score"]
        page.table(["class"] + metrics,
                   [[label(name)] + [page.value("per_class_metrics", name, k) for k in metrics]
                    for name in report["per_class_metrics"]])
        page.table(["accuracy", "precision", "recall", "f1_score"],
                   [[page.value(k) for k in ("accuracy", "precision", "recall", "f1_score")]])
        columns = ["no alert", "alert"] if m.model_kind == "anomaly" else m.class_names
        page.table(["true \\ predicted"] + columns,
                   [[label(name)] + [page.value("confusion_matrix", i, j) for j in range(len(columns))]
                    for i, name in enumerate(m.class_names)])
        if report["alerts"]:
            keys = list(report["alerts"])
            page.table(keys, [[page.value("alerts", k) for k in keys]])

    if report["per_attack_type"]:
        page.heading("Detection per attack type (threat rows)")
        keys = list(next(iter(report["per_attack_type"].values())))
        page.table(["attack type"] + keys,
                   [[label(name)] + [page.value("per_attack_type", name, k) for k in keys]
                    for name in report["per_attack_type"]])

    if report["latency"]:
        lat = report["latency"]
        page.heading("Latency (model only)")
        page.add(f"<p>device {html.escape(lat['device'])}, torch threads "
                 f'<span data-key="/latency/num_threads">{fmt(lat["num_threads"])}</span>; '
                 "featurization is not included.</p>")
        page.table(["single event (us)", "p50", "p95", "p99", "mean"],
                   [[label("")] + [page.value("latency", "single_event_us", k)
                                   for k in ("p50", "p95", "p99", "mean")]])
        page.table(["batch_size", "median_ms", "events_per_sec"],
                   [[page.value("latency", "batch", i, k)
                     for k in ("batch_size", "median_ms", "events_per_sec")]
                    for i in range(len(lat["batch"]))])

    if m.notes:
        page.heading("Notes")
        page.add("<ul>" + "".join(f'<li class="note">{html.escape(n)}</li>' for n in m.notes) + "</ul>")

    shown = figures(m)
    if shown:
        page.heading("Figures")
        for caption, data in shown:
            encoded = base64.b64encode(data).decode("ascii")
            page.add(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,'
                     f'{encoded}"></figure>')
    body = "\n".join(page.parts)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n"
            f"<body>\n{body}\n</body></html>\n")
