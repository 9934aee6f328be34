"""The terminal report of an `EvaluationMetrics`."""

from __future__ import annotations

from typing import Any

from training.evaluation.result import EvaluationMetrics

NAME_WIDTH = 44  # the attack-type column's width before a name is shortened
ELLIPSIS = "..."


def _f(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _rate(value: float | None) -> str:
    if value is None:
        return "n/a"
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f}{unit}"
    return f"{value:.0f}"


def short_names(names: list[str], width: int = NAME_WIDTH) -> list[str]:
    """`names` shortened to `width` characters where longer, by their middle: the start and
    the end stay, since rule names of one family differ at the end ("ET CINS Active Threat
    Intelligence Poor Reputation IP group 12" reads "ET CINS Activ... Poor Reputation IP
    group 12"). The width grows until no two names read the same.
    """
    longest = max(map(len, names), default=0)
    for room in range(width, longest):
        shown = [_middle(name, room) for name in names]
        if len(set(shown)) == len(set(names)):
            return shown
    return list(names)


def _middle(name: str, width: int) -> str:
    if len(name) <= width:
        return name
    head = (width - len(ELLIPSIS)) // 3  # a third for the family, the rest for the end
    tail = width - len(ELLIPSIS) - head
    return name[:head] + ELLIPSIS + name[-tail:]


def format_report(m: EvaluationMetrics) -> str:
    """A plain-text report (about 30-60 lines) of what the evaluation found."""
    lines = [f"Evaluation of {m.model_name or 'scores'} ({m.model_kind}): {m.n_samples:,} rows "
             f"with a known label, {m.n_unknown_excluded:,} unknown (-1) left out"]
    lines.append("  " + "   ".join(f"{name} {row.get('support', 0):,}"
                                   for name, row in m.per_class_metrics.items()))
    if m.circular:
        lines.append(f"  CIRCULAR: {m.circular}")
    seen = m.training_overlap
    if seen and seen["within"]:
        lines.append(f"  TRAINING DATA: {seen['within']:,} of {seen['units']:,} "
                     f"{seen['unit']}s lie within the time the model was trained and "
                     f"validated on ({seen['first']} to {seen['last']}); see the notes")
    if m.threshold is not None and m.n_alerts is not None:
        lines += ["", f"Alerts at threshold {m.threshold:.6g}"
                      f" ({m.threshold_rule or m.threshold_source})"]
        lines.append(f"  {m.n_alerts:,} of {m.n_units:,} units alert ({_pct(m.alert_rate)})"
                     + ("" if m.expected_alert_rate is None else
                        f"; on benign validation units {_pct(m.expected_alert_rate)}"))
        if m.alerts and m.confusion_matrix is None:
            lines.append(_alert_volume(m.alerts, with_false=False))
    lines += ["", "Without a threshold"]
    if m.model_kind == "anomaly":
        lines.append(f"  ROC-AUC                   {_f(m.roc_auc)}  (the same for both classes)")
        lines.append(f"  PR-AUC threat             {_f(m.pr_auc)}")
        lines.append(f"  PR-AUC benign             {_f(m.per_class_metrics['benign']['pr_auc'])}")
    else:
        lines.append(f"  ROC-AUC (macro, one-vs-rest)  {_f(m.roc_auc)}")
        lines.append(f"  PR-AUC  (macro, one-vs-rest)  {_f(m.pr_auc)}")
    for key, point in m.detection_at_fpr.items():
        label = f"  Detection at FPR <= {100 * point['max_fpr']:g}%"
        if point["detection_rate"] is None:
            lines.append(f"{label:<28}n/a")
            continue
        lines.append(f"{label:<28}{_pct(point['detection_rate'])}  (threshold "
                     f"{_f(point['threshold'], 6)}, FPR {_pct(point['fpr'])}, "
                     f"false positives {point['false_positives']})")
    lines.append("")
    if m.confusion_matrix is not None:
        rule = (f"At threshold {m.threshold:.6g} (source: {m.threshold_source})"
                if m.model_kind == "anomaly" else "At the most probable class")
        lines.append(rule)
        lines.append(f"  accuracy {_f(m.accuracy)}   precision {_f(m.precision)}   "
                     f"recall {_f(m.recall)}   F1 {_f(m.f1_score)}"
                     + ("   (macro)" if m.model_kind == "classifier" else "   (threat class)"))
        width = max(10, *(len(n) for n in m.class_names)) + 2
        head = ("no alert", "alert") if m.model_kind == "anomaly" else tuple(m.class_names)
        lines.append("  confusion matrix (rows: true class)")
        lines.append("  " + " " * width + "".join(f"{h:>12}" for h in head))
        for name, row in zip(m.class_names, m.confusion_matrix):
            lines.append(f"  {name:<{width}}" + "".join(f"{v:>12,}" for v in row))
        if m.alerts:
            lines.append(_alert_volume(m.alerts, with_false=True))
        lines.append("")
    if m.per_attack_type:
        rates = [k for k in next(iter(m.per_attack_type.values())) if k.startswith("rate_")]
        shown = list(m.per_attack_type.items())[:25]
        names = short_names([name for name, _ in shown])
        width = max(len("attack type"), *map(len, names)) + 1
        lines.append("Detection per attack type")
        lines.append(f"  {'attack type':<{width}}{'count':>8}"
                     + "".join(f"{k[5:].replace('_', ' '):>16}" for k in rates))
        for name, (_, row) in zip(names, shown):
            lines.append(f"  {name:<{width}}{row['count']:>8,}"
                         + "".join(f"{_pct(row[k]):>16}" for k in rates))
        if len(m.per_attack_type) > 25:
            lines.append(f"  ... {len(m.per_attack_type) - 25} more types in the JSON report")
        lines.append("")
    if m.latency:
        lat = m.latency
        single = lat["single_event_us"]
        lines.append(f"Latency (model only, {lat['device']}, torch threads {lat['num_threads']})")
        lines.append(f"  single event  p50 {single['p50']:.1f} us   p95 {single['p95']:.1f} us   "
                     f"p99 {single['p99']:.1f} us")
        for row in lat["batch"]:
            lines.append(f"  batch {row['batch_size']:>6,}  {_rate(row['events_per_sec'])} events/s")
        lines.append("")
    if m.notes:
        lines.append("Notes")
        lines += [f"  - {note}" for note in m.notes]
    return "\n".join(lines).rstrip() + "\n"


def _alert_volume(a: dict, with_false: bool) -> str:
    """The alerts-per-day line; under an hour (no rate: `metrics.MIN_RATE_DAYS`) the count and
    the span instead, as "2 alerts over 8.2 minutes (under an hour: no per-day rate)"."""
    if a["alerts_per_day"] is None:
        minutes = a["span_days"] * 1440.0
        span = f"{minutes:.1f} minutes" if minutes >= 1 else f"{minutes * 60:.1f} seconds"
        return (f"  {a['n_alerts']:,} alert{'' if a['n_alerts'] == 1 else 's'} over {span} "
                "(under an hour: no per-day rate)")
    false = f" (false: {_f(a['false_alerts_per_day'], 1)})" if with_false else ""
    return f"  alerts per day {a['alerts_per_day']:.1f}{false} over {a['span_days']:.2f} days"
