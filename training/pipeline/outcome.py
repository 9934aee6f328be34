"""What one layer of a pipeline run produced, and its one-line summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The evaluation figures a run keeps per layer (pipeline.json, the report's front page).
REPORTED = ("pr_auc", "roc_auc", "precision", "recall", "f1_score", "accuracy",
            "detection_at_fpr", "n_samples", "n_unknown_excluded", "n_units", "threshold",
            "threshold_rule", "n_alerts", "alert_rate", "expected_alert_rate", "circular",
            "per_attack_type", "alerts", "per_class_metrics")


@dataclass
class LayerOutcome:
    """What one layer produced; `skipped` says why a layer did not train (then most fields
    are empty). Metrics that could not be computed (no labels, one class) are None or absent."""

    layer: str
    model_name: str
    unit: str
    version: str | None = None
    stage: str | None = None
    decision: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    report: str = ""
    seconds: float = 0.0
    threshold_rule: str | None = None
    circular: str | None = None
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)

    def figures(self) -> str:
        """The test figures in words, whichever exist."""
        m = self.metrics
        if not m:
            return "not evaluated"
        units = f"{m.get('n_units', 0):,} test {self.unit}s"
        found = [f"{name} {m[key]:.3f}" for key, name in (("roc_auc", "ROC-AUC"),
                                                            ("pr_auc", "PR-AUC"))
                 if m.get(key) is not None]
        support = (m.get("per_class_metrics") or {})
        benign = (support.get("benign") or {}).get("support", 0)
        threat = (support.get("threat") or {}).get("support", 0)
        if not m.get("n_samples"):
            found.append("no labels")
        elif not (benign and threat):
            found.append(f"one class: {benign:,} benign, {threat:,} threat")
        if m.get("n_alerts") is not None:
            found.append(f"{m['n_alerts']:,} alert{'' if m['n_alerts'] == 1 else 's'} "
                         f"({100 * (m.get('alert_rate') or 0):.2f}%)")
        text = f"{', '.join(found)} on {units}"
        return f"CIRCULAR {text}" if self.circular else text

    def summary(self) -> str:
        """One line: what was trained and decided, or why the layer was skipped."""
        if self.skipped:
            return f"{self.layer}: skipped: {self.skipped}"
        rule = f"; threshold: {self.threshold_rule}" if self.threshold_rule else ""
        return (f"{self.layer}: {self.model_name} {self.version} -> {self.stage} "
                f"({self.figures()}{rule}; {self.decision.get('reason', '')})")
