"""Other fixed rules for the fused score, tried on the harness's development captures only.

Each layer's default is trained and calibrated as the harness does (seeds 0, 1, 2, at most 20
epochs); every flow takes each layer's smallest tail probability over its units, and the
rules combine them. Flow ROC-AUC and PR-AUC, mean over the seeds:

    python benchmarks/fusion_rules.py                 # iot23-42, iot23-44, demo

| rule | combined p of the k covering layers (p_i: the layer's smallest over the flow's units) |
|---|---|
| min-p+fisher (the default) | min-p, Fisher's p ordering its ties (`fused_scores`) |
| min-p | k min p_i |
| fisher | P(chi2 with 2k dof >= -2 sum ln p_i) |
| harmonic mean | k / sum (1 / p_i) |
| min-p of diluted units | k min p_i, each unit's p times its flow count n (or sqrt n) first: an
  edge or window of many flows lends less to each |

Evaluation captures are not run here: nothing is chosen on them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.evaluation.fusion import fused_scores  # noqa: E402
from training.evaluation.harness.captures import load_capture  # noqa: E402
from training.evaluation.harness.methods import CANDIDATES  # noqa: E402
from training.evaluation.harness.run import HarnessConfig, run_layer  # noqa: E402
from training.evaluation.harness.units import layer_units  # noqa: E402

DEVELOPMENT = ("iot23-42", "iot23-44", "demo")


def flow_tails(units, tails: np.ndarray, dilute: str) -> np.ndarray:
    """(seeds, flows): each flow's smallest unit tail, each unit's first multiplied by its
    flow count (`n`), its square root (`sqrt`) or nothing (`none`); NaN where none covers it."""
    n = np.bincount(units.pair_unit, minlength=tails.shape[1]).astype(np.float64)
    factor = {"none": np.ones_like(n), "n": n, "sqrt": np.sqrt(n)}[dilute]
    diluted = np.minimum(1.0, tails * factor)
    out = np.full((len(tails), len(units.flow_labels)), np.inf)
    np.minimum.at(out.T, units.pair_flow, diluted.T[units.pair_unit])
    return np.where(np.isinf(out), np.nan, out)


def harmonic(p: np.ndarray) -> np.ndarray:
    covered = ~np.isnan(p)
    inverse = np.where(covered, 1.0 / np.where(covered, p, 1.0), 0.0).sum(axis=1)
    return np.log10(np.maximum(inverse / np.maximum(covered.sum(axis=1), 1), 1.0))


RULES = {
    "min-p+fisher (the default)": ("none", lambda p: fused_scores(p, "min-p+fisher")),
    "min-p": ("none", lambda p: fused_scores(p, "min-p")),
    "fisher": ("none", lambda p: fused_scores(p, "fisher")),
    "harmonic mean": ("none", harmonic),
    "min-p of units diluted by n": ("n", lambda p: fused_scores(p, "min-p")),
    "min-p of units diluted by sqrt n": ("sqrt", lambda p: fused_scores(p, "min-p")),
}


def figures(scores: np.ndarray, labels: np.ndarray) -> str:
    keep = labels >= 0
    scores = np.nan_to_num(scores, neginf=-1e30).astype(np.float32)  # as `score` writes it
    roc = np.mean([roc_auc_score(labels[keep], s[keep]) for s in scores])
    pr = np.mean([average_precision_score(labels[keep], s[keep]) for s in scores])
    return f"{roc:.3f} / {pr:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--captures", nargs="+", default=list(DEVELOPMENT))
    args = parser.parse_args()
    config = HarnessConfig()
    default = [m for m in CANDIDATES if m.name == "default"]
    rows: dict[str, list[str]] = {}
    for name in args.captures:
        capture = load_capture(name, config.datasets)
        measured = []
        for layer in capture.layers:
            units = layer_units(capture, layer)
            run = run_layer(units, default, config.seeds, config.epochs, log=lambda _: None)
            measured.append((units, run["default"]))
            rows.setdefault(f"{layer} default", []).append(
                figures(units.flow_scores(run["default"]["scores"]), units.flow_labels))
        labels = measured[0][0].flow_labels
        for rule, (dilute, combine) in RULES.items():
            p = np.stack([flow_tails(u, r["tails"], dilute) for u, r in measured], axis=-1)
            rows.setdefault(rule, []).append(figures(np.stack([combine(s) for s in p]), labels))
        print(f"{name} done", file=sys.stderr, flush=True)
    print("| flow ROC-AUC / PR-AUC | " + " | ".join(args.captures) + " |")
    print("|---|" + "---|" * len(args.captures))
    for rule, cells in rows.items():
        print(f"| {rule} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
