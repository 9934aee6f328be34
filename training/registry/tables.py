"""The registry as plain-text tables: versions, one version's record, the transition log."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from training.registry.history import Transition
from training.registry.metadata import ModelMetadata
from training.registry.names import version_key
from training.sources.recorded import SETTINGS_KEY, settings_text


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell (the last one is not padded)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1]
             for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def format_registry(versions: list[ModelMetadata], empty: str = "the registry is empty") -> str:
    """One row per version, by model, oldest version first: stage, layer, detector class,
    registration time, aliases and up to four metrics."""
    if not versions:
        return empty
    rows = []
    for m in sorted(versions, key=lambda m: (m.model_name, version_key(m.version))):
        metrics = " ".join(f"{k}={_number(v)}" for k, v in sorted(m.metrics.items())[:4])
        rows.append((m.model_name, m.version, m.stage, m.layer_name, m.model_class or "-",
                     m.created_at[:19].replace("T", " "), ",".join(m.aliases) or "-", metrics))
    return table(("MODEL", "VERSION", "STAGE", "LAYER", "DETECTOR", "CREATED (UTC)", "ALIASES",
                  "METRICS"), rows)


def format_metadata(m: ModelMetadata, data_change: str | None = None,
                    tampered: str | None = None) -> str:
    """One version's record: a field per line, then its metrics, hyperparameters and
    dataset fingerprints; `data_change`: how its training data file differs now
    (`training.registry.data_file.change`), shown beside its path; `tampered`: why its files
    are not those registered (`ModelRegistry.verify`), None when they are."""
    data = m.training_dataset or "-"
    if data_change:
        data += f" ({data_change}" + ("; the dataset fingerprints below are what it learnt "
                                      "from)" if m.dataset_fingerprints else ")")
    fields = [("model", m.model_name), ("version", m.version), ("stage", m.stage),
              ("aliases", ", ".join(m.aliases) or "-"), ("layer", m.layer_name),
              ("detector", m.model_class or ("- (opaque: no sidecar)" if m.opaque else "-")),
              ("created", m.created_at), ("framework", m.framework),
              ("training data", data),
              ("anomaly threshold", "-" if m.anomaly_threshold is None
               else _number(m.anomaly_threshold)),
              ("feature fingerprint", m.feature_fingerprint or "-"),
              ("weights sha256", m.weights_sha256 or "-"), ("code", m.code_version or "-"),
              ("description", m.description or "-")]
    if m.files:
        fields.append(("files", ", ".join(sorted(m.files))))
    fields.append(("integrity", "as registered (sha256)" if tampered is None
                   else f"NOT as registered, it will not load: {tampered}"))
    decision = m.details.get("decision") if isinstance(m.details, dict) else None
    if isinstance(decision, dict) and decision.get("reason"):
        fields.append(("gate", decision["reason"]))
    reading = m.details.get(SETTINGS_KEY) if isinstance(m.details, dict) else None
    if reading:  # how its training sources were read, as `score` reads inputs of their type
        fields.append(("read with", settings_text(reading)))
    lines = [table(("FIELD", "VALUE"), fields)]
    for head, values in ((("METRIC", "VALUE"), m.metrics),
                         (("HYPERPARAMETER", "VALUE"), m.hyperparameters),
                         (("DATASET", "FINGERPRINT"), m.dataset_fingerprints)):
        if values:
            lines += ["", table(head, [(k, _value(v)) for k, v in sorted(values.items())])]
    return "\n".join(lines)


def format_history(transitions: list[Transition], empty: str = "no transitions") -> str:
    """One row per transition, oldest first: time, model, version, what changed, who, why."""
    if not transitions:
        return empty
    rows = [(t.at[:19].replace("T", " "), t.model_name, t.version, _change(t), t.actor,
             t.reason or "-") for t in transitions]
    return table(("AT (UTC)", "MODEL", "VERSION", "CHANGE", "ACTOR", "REASON"), rows)


def format_comparison(comparison: Any, stages: dict[str, str]) -> str:
    """One row per version compared: its stage, the metric's value (or that it has none) and
    which is best (`ModelRegistry.compare_models`)."""
    rows = [(version, stages.get(version, "-"),
             "not recorded" if value is None else _number(value),
             "best" if version == comparison.best else "")
            for version, value in comparison.all_values.items()]
    lower = "lower" if comparison.direction == "min" else "higher"
    return table(("VERSION", "STAGE", comparison.metric.upper(), ""), rows) + \
        f"\n{comparison.metric}: {lower} is better"


def _change(t: Transition) -> str:
    if t.event == "stage":
        return f"{t.from_stage} -> {t.to_stage}"
    if t.event in ("alias", "unalias"):
        return f"{t.event} {t.alias}"
    return t.event  # register, delete


def _number(value: float) -> str:
    return f"{value:.4g}"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)
