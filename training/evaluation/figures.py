"""The report's figures, as PNG bytes whose 'Title' text chunk is the figure's title.

Figures are drawn on `matplotlib.figure.Figure` objects directly (no pyplot, no global backend
state), so rendering works in any process, headless or not.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from training.console.quiet import quiet_font_fallback
from training.evaluation.report_text import short_names
from training.evaluation.result import EvaluationMetrics

MAX_ATTACK_TYPES = 20
NOT_CURVES = ("epoch", "learning_rate", "epoch_time", "grad_norm")  # not losses: other scales


def png(fig: Figure, title: str) -> bytes:
    fig.suptitle(title)
    buffer = io.BytesIO()
    with quiet_font_fallback():  # text is laid out from here on
        fig.tight_layout()
        fig.savefig(buffer, format="png", dpi=90, metadata={"Title": title})
    return buffer.getvalue()


def _one_vs_rest(m: EvaluationMetrics) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(class name, is-that-class, score for that class) for each class the curves show."""
    data = m.data
    keep = data.labels >= 0
    labels = data.labels[keep]
    if m.model_kind == "anomaly":
        scores = data.scores[keep]
        yield "threat", labels == 1, scores
        yield "benign", labels == 0, -scores
        return
    for c, name in enumerate(m.class_names):
        yield name, labels == c, data.probabilities[keep][:, c]


def roc_figure(m: EvaluationMetrics) -> bytes:
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot()
    curves = list(_one_vs_rest(m))
    for name, positive, scores in curves[:1] if m.model_kind == "anomaly" else curves:
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, scores)
        ax.plot(fpr, tpr, label=name, drawstyle="steps-post")
    for key, point in m.detection_at_fpr.items():
        if point["detection_rate"] is not None:
            ax.plot([point["fpr"]], [point["detection_rate"]], "o",
                    label=f"operating point at FPR <= {key}")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("detection rate (true-positive rate)")
    ax.legend(loc="lower right", fontsize=8)
    return png(fig, "ROC curve")


def pr_figure(m: EvaluationMetrics) -> bytes:
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot()
    for name, positive, scores in _one_vs_rest(m):
        if positive.all() or not positive.any():
            continue
        precision, recall, _ = precision_recall_curve(positive, scores)
        ax.plot(recall, precision, label=f"{name} (base rate {positive.mean():.3g})",
                drawstyle="steps-post")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower left", fontsize=8)
    return png(fig, "Precision-recall curves")


def histogram_figure(m: EvaluationMetrics) -> bytes:
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.add_subplot()
    data = m.data
    scores, labels = data.scores, data.labels
    log = bool(scores.min() > 0 and scores.max() / scores.min() > 1e3)
    values = np.log10(scores) if log else scores
    bins = np.histogram_bin_edges(values, bins=60)
    for value, name in ((0, "benign"), (1, "threat"), (-1, "unknown")):
        chosen = values[labels == value]
        if len(chosen):
            ax.hist(chosen, bins=bins, density=True, histtype="stepfilled", alpha=0.45,
                    label=f"{name} ({len(chosen):,})")
    marks = [] if m.threshold is None else [(m.threshold, "threshold", "-")]
    point = m.detection_at_fpr.get("0.01")
    if point and point["threshold"] is not None:
        marks.append((point["threshold"], "FPR <= 0.01 operating point", "--"))
    for value, name, style in marks:
        ax.axvline(np.log10(value) if log and value > 0 else value, color="black",
                   linestyle=style, label=name)
    ax.set_xlabel("log10(anomaly score)" if log else "anomaly score")
    ax.set_ylabel("density (each class sums to 1)")
    ax.legend(fontsize=8)
    return png(fig, "Score distribution per class")


def confusion_figure(m: EvaluationMetrics) -> bytes:
    matrix = np.asarray(m.confusion_matrix)
    size = 2.2 + 0.6 * len(matrix)
    fig = Figure(figsize=(size + 1, size))
    ax = fig.add_subplot()
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    columns = ["no alert", "alert"] if m.model_kind == "anomaly" else m.class_names
    ax.set_xticks(range(len(columns)), columns)
    ax.set_yticks(range(len(m.class_names)), m.class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true class")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, f"{count:,}", ha="center", va="center",
                color="white" if shares[i, j] > 0.5 else "black")
    return png(fig, "Confusion matrix")


def attack_type_labels(m: EvaluationMetrics) -> list[str]:
    """The figure's row labels: each attack type (shortened by its middle, as the text report
    does, so that rule names of one family stay apart) and its count."""
    items = list(m.per_attack_type.items())[:MAX_ATTACK_TYPES]
    names = short_names([name for name, _ in items], width=40)
    return [f"{short} ({row['count']:,})" for short, (_, row) in zip(names, items)]


def attack_type_figure(m: EvaluationMetrics) -> bytes:
    items = list(m.per_attack_type.items())[:MAX_ATTACK_TYPES]
    rates = [k for k in items[0][1] if k.startswith("rate_")]
    fig = Figure(figsize=(7, 1.2 + 0.35 * len(items) * max(1, len(rates)) ** 0.5))
    ax = fig.add_subplot()
    y = np.arange(len(items))
    height = 0.8 / max(1, len(rates))
    for k, key in enumerate(rates):
        ax.barh(y + k * height, [row[key] for _, row in items], height=height,
                label=key[5:].replace("_", " "))
    ax.set_yticks(y + height * (len(rates) - 1) / 2, attack_type_labels(m), fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("detection rate")
    ax.legend(fontsize=8)
    return png(fig, "Detection rate per attack type")


def training_figure(m: EvaluationMetrics) -> bytes:
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    history = m.training_history
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
    keys = [k for k in history[0] if k not in NOT_CURVES
            and all(isinstance(r.get(k), (int, float)) for r in history)]
    for key in keys:
        ax.plot(epochs, [row[key] for row in history], marker=".", label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (validation terms as recorded)")
    if keys and min(min(r[k] for r in history) for k in keys) > 0:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    return png(fig, "Training curves")


def figures(m: EvaluationMetrics) -> list[tuple[str, bytes]]:
    """(title, PNG) of every figure the metrics can show."""
    out = []
    data = m.data
    if data is not None and m.roc_auc is not None:
        out += [("ROC curve", roc_figure(m)), ("Precision-recall curves", pr_figure(m))]
    if data is not None and data.scores is not None and len(data.scores):
        out.append(("Score distribution per class", histogram_figure(m)))
    if m.confusion_matrix is not None:
        out.append(("Confusion matrix", confusion_figure(m)))
    if m.per_attack_type and any(k.startswith("rate_") for k in next(iter(m.per_attack_type.values()))):
        out.append(("Detection rate per attack type", attack_type_figure(m)))
    if m.training_history:
        out.append(("Training curves", training_figure(m)))
    return out
