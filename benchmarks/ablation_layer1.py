"""Layer-1 layout ablation on the harness's development captures only.

    python benchmarks/ablation_layer1.py                 # iot23-42 iot23-44 demo, seed 0
    python benchmarks/ablation_layer1.py --variants l1.v2 l1.v3 --methods VAE

Each variant is a layout, with blocks of its vector zeroed (a constant dim carries nothing for
any of these detectors); each trains the layer's default (the VAE), the isolation forest and kNN
through the harness's own `fit_and_score`, on the capture's train/val/test units. Per event
ROC-AUC and PR-AUC. Evaluation captures are never run here: this is for choosing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from training.evaluation.harness.captures import load_capture  # noqa: E402
from training.evaluation.harness.methods import Method, fit_and_score  # noqa: E402
from training.evaluation.harness.units import layer_units  # noqa: E402
from training.evaluation.metrics import pr_auc, roc_auc  # noqa: E402
from training.features.layer1 import Layer1Featurizer  # noqa: E402

DEV = ("iot23-42", "iot23-44", "demo")
# Blocks of l1.v1 (training/features/layer1.py): the hashed /24 buckets of both addresses,
# the time of day/week, the identity hashes.
ADDRESS_HASHES = [*range(53, 57), *range(61, 65)]
TIME = list(range(81, 85))
IDENTITY = list(range(85, 112))
# variant -> (layout, dims zeroed)
VARIANTS = {"l1.v1": ("l1.v1", []), "no address hashes": ("l1.v1", ADDRESS_HASHES),
            "no address hashes, no time": ("l1.v1", ADDRESS_HASHES + TIME),
            "no address/identity hashes, no time": ("l1.v1", ADDRESS_HASHES + TIME + IDENTITY),
            "l1.v2": ("l1.v2", []), "l1.v3": ("l1.v3", [])}
METHODS = (Method("VAE", ""), Method("IF", "iforest", {"n_estimators": 200}),
           Method("kNN", "knn"))


def _zeroed(units, dims: list[int]):
    out = type(units)(units.layer, units.spec, dict(units.arrays))
    features = np.array(units.features, copy=True)
    features[:, dims] = 0.0
    out.arrays["features"] = features
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--captures", nargs="+", default=list(DEV), choices=DEV)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS)[:4], choices=VARIANTS)
    parser.add_argument("--methods", nargs="+", default=[m.name for m in METHODS],
                        choices=[m.name for m in METHODS])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| capture | variant | method | ROC-AUC | PR-AUC |\n|---|---|---|---:|---:|")
    for name in args.captures:
        capture = load_capture(name, args.datasets)
        layouts = {VARIANTS[v][0] for v in args.variants}
        featurized = {layout: layer_units(capture, "layer1", Layer1Featurizer(layout=layout))
                      for layout in sorted(layouts)}
        for variant in args.variants:
            layout, dims = VARIANTS[variant]
            base = units = featurized[layout]
            known = base.labels >= 0
            if dims:
                units = type(base)(**{**vars(base), **{part: _zeroed(getattr(base, part), dims)
                                                       for part in ("train", "val", "test")}})
            for method in (m for m in METHODS if m.name in args.methods):
                scores, _ = fit_and_score(units, method, args.seed, args.epochs)
                y = base.labels[known] == 1
                print(f"| {name} | {variant} | {method.name} | {roc_auc(scores[known], y):.3f} "
                      f"| {pr_auc(scores[known], y):.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
