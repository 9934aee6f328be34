"""The harness's results as Markdown tables, and their place in BENCHMARKS.md.

`markdown(results)` gives one table per layer and level (unit and flow; layer 1's units are its
flows, so it has one), evaluation captures first, then development captures, then subsets
(NSL-KDD's difficulty < 21), and a summary of each layer default against the best baseline.
The fused scores (`harness.fused`) have a table per role, per flow, beside every layer's
default and the best baselines of every layer.
A cell is the mean over seeds with its 95% bootstrap interval; a candidate's Δ cell is the
paired 95% interval of (candidate - best baseline) and names that baseline; the best baseline's
value is in bold. A candidate that is the same method as a baseline says so instead of a Δ.

`write_section(path, text)` puts the tables between two marker comments of a Markdown file
(replacing what was there, or appending them), atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.artifacts.atomic import atomic_write
from training.layers.registry import get_layer

BEGIN, END = "<!-- detection-harness:begin -->", "<!-- detection-harness:end -->"
LABELS = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "dr_at_fpr": "DR@1%FPR"}


def _value(figure: dict[str, Any], bold: bool) -> str:
    text = f"{figure['mean']:.3f} ({figure['ci'][0]:.2f}-{figure['ci'][1]:.2f})"
    return f"**{text}**" if bold else text


def _delta(entry: dict[str, Any], metric: str, same_as: str | None) -> str:
    if same_as is not None:
        return f"same method as {same_as}"
    if "delta" not in entry:
        return ""
    d = entry["delta"][metric]
    return f"{d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] vs {d['vs']}"


def method_label(name: str, run: dict[str, Any]) -> str:
    """The method's name in tables: the default says which detector it is; baselines say so."""
    if name == "default":
        return f"default ({run['identity'].split('{')[0]})"
    return f"{name} (baseline)" if run["baseline"] else name


def level_table(results: dict[str, Any], layer: str, level: str, role: str) -> list[str]:
    """Rows of one table: every capture of `role` that has `layer` measured at `level`."""
    rows = []
    for capture, entry in results["captures"].items():
        report = entry["layers"].get(layer)
        if entry["role"] != role or report is None or not report["levels"].get(level):
            continue
        rows += _rows(capture, report["methods"], report["levels"][level])
    return _table(rows)


def _rows(capture: str, methods: dict[str, Any], figures: dict[str, Any],
          keep: Any = lambda name, run: True) -> list[str]:
    rows = []
    for name, run in methods.items():
        if not keep(name, run):
            continue
        f = figures["methods"][name]
        cells = []
        for metric in ("roc_auc", "pr_auc"):
            cells.append(_value(f[metric], figures["best_baseline"][metric] == name))
            cells.append(_delta(f, metric, run["same_as"]))
        cells.append(_value(f["dr_at_fpr"], figures["best_baseline"]["dr_at_fpr"] == name))
        seconds = sum(r.get("seconds", 0.0) for r in run["runs"])
        rows.append(f"| {capture} | {method_label(name, run)} | " + " | ".join(cells)
                    + f" | {seconds:.0f} |")
    return rows


def _table(rows: list[str]) -> list[str]:
    if not rows:
        return []
    return ["| capture | method | ROC-AUC | Δ ROC-AUC vs best baseline | PR-AUC | "
            "Δ PR-AUC vs best baseline | DR@1%FPR | train+score s |",
            "|---|---|---|---|---|---|---|---:|", *rows]


def fused_table(results: dict[str, Any], role: str) -> list[str]:
    """Per flow: the fused scores, each layer's default, and the baselines that are the best
    (of every layer's) on some metric."""
    rows = []
    for capture, entry in results["captures"].items():
        fused = entry.get("fused") or {}
        if entry["role"] != role or not fused.get("flow"):
            continue
        best = set(fused["flow"]["best_baseline"].values())
        rows += _rows(capture, fused["methods"], fused["flow"],
                      keep=lambda name, run: not run["baseline"] or name in best)
    return _table(rows)


def summary_table(results: dict[str, Any]) -> list[str]:
    """Each layer default against the best baseline, per capture (unit and flow ROC/PR)."""
    rows = []
    for capture, entry in results["captures"].items():
        for layer, report in entry["layers"].items():
            run = report["methods"]["default"]
            cells = []
            for level in ("unit", "flow"):
                figures = report["levels"].get(level)
                for metric in ("roc_auc", "pr_auc"):
                    cells.append(_delta(figures["methods"]["default"], metric, run["same_as"])
                                 if figures else "")
            rows.append(f"| {capture} | {entry['role']} | {layer} | "
                        f"{method_label('default', run)} | " + " | ".join(cells) + " |")
        fused = (entry.get("fused") or {}).get("flow")
        for name in (n for n in (fused or {}).get("methods", {}) if n.startswith("fused")):
            cells = ["", "", *(_delta(fused["methods"][name], m, None)
                               for m in ("roc_auc", "pr_auc"))]
            rows.append(f"| {capture} | {entry['role']} | all | {name} | " + " | ".join(cells)
                        + " |")
    return ["| capture | role | layer | default | Δ unit ROC-AUC | Δ unit PR-AUC | "
            "Δ flow ROC-AUC | Δ flow PR-AUC |", "|---|---|---|---|---|---|---|---|", *rows]


def markdown(results: dict[str, Any]) -> str:
    """Every table of a harness run (see the module docstring)."""
    jobs = results.get("jobs", 1)
    out = [f"Seeds {', '.join(map(str, results['seeds']))}; at most {results['epochs']} "
           f"epochs; {results['bootstrap']} stratified resamples; "
           f"{results['seconds'] / 60:.1f} minutes in {jobs} process{'es' if jobs > 1 else ''}, "
           f"{results['cpu_seconds'] / 60:.1f} minutes of CPU (load average "
           f"{results['load_before'][0]:.1f} before, {results['load_after'][0]:.1f} after).", "",
           "**Layer defaults against the best baseline** (paired 95% intervals):", "",
           *summary_table(results)]
    reports = [(layer, report) for entry in results["captures"].values()
               for layer, report in entry["layers"].items()]
    layers = sorted({layer for layer, _ in reports})
    # A level the layer measured on its own (the flows of a per-event layer are its units).
    own = {(layer, level) for layer, report in reports for level, figures in
           report["levels"].items() if level == "unit" or figures != report["levels"]["unit"]}
    for role in ("evaluation", "development"):
        rows = fused_table(results, role)
        if rows:
            out += ["", f"**{role.capitalize()} captures, fused score per flow** (each layer's "
                    "default and the best baselines of every layer, per flow):", "", *rows]
        for layer in layers:
            unit = get_layer(layer).unit
            for level in sorted((lv for la, lv in own if la == layer),
                                key=lambda lv: (lv != "unit", lv != "flow", lv)):
                rows = level_table(results, layer, level, role)
                if not rows:
                    continue
                what = {"unit": f"per {unit}", "flow": "per flow (max over its units)"}.get(
                    level, f"test rows with {level}")
                out += ["", f"**{role.capitalize()} captures, {layer}, {what}:**", "", *rows]
    return "\n".join(out) + "\n"


def write_section(path: str | Path, text: str) -> Path:
    """Put `text` between the harness markers of the Markdown file `path` (appended at the
    end when the markers are absent), replacing the file atomically."""
    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{BEGIN}\n{text.rstrip()}\n{END}"
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + block + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + block + "\n"
    with atomic_write(path) as handle:
        handle.write(new.encode("utf-8"))
    return path
