"""Why a fused min-p score can fall below its best layer: ties at the conformal floor.

    python benchmarks/fused_floor_ties.py --capture iot23-42 --seed 1
    python benchmarks/fused_floor_ties.py --capture iot23-42 --seed 1 --error-floor 0.01

Trains each layer's default as the harness does (`training.evaluation.harness`: its units, 20
epochs, thresholds and calibrations on the benign validation units), gives every test flow its
smallest tail probability per layer and the min-p fused score, and prints the flow ROC-AUC, which
layer gives the threats their smallest tail, and how many benign flows tie or beat the
lowest-scored threat, by the layer that gives them their smallest tail. A tail at the
calibration's floor (1 / (validation units + 1)) cannot be told from another at the floor.
`--error-floor` sets the layer-1 VAE's (default `none`: the plain sum, as layer 1 trains by
default). Development captures only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from training.evaluation.calibration import Calibration  # noqa: E402
from training.evaluation.fusion import fused_scores  # noqa: E402
from training.evaluation.harness.captures import load_capture  # noqa: E402
from training.evaluation.harness.fused import flow_tails  # noqa: E402
from training.evaluation.harness.units import layer_units  # noqa: E402
from training.layers.training import train_layer  # noqa: E402

LAYERS = ("layer1", "layer2", "layer3")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--capture", default="iot23-42", choices=("iot23-42", "iot23-44", "demo"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--error-floor", default="none",
                        help="the layer-1 VAE's error_floor, or none (the default: the plain "
                             "sum)")
    parser.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    args = parser.parse_args()
    torch.set_num_threads(1)
    floor = None if args.error_floor == "none" else float(args.error_floor)
    capture = load_capture(args.capture, args.datasets)
    tails = []
    for name in LAYERS:
        units = layer_units(capture, name)
        model_args = {"error_floor": floor} if name == "layer1" else {}
        with tempfile.TemporaryDirectory(prefix="ties-") as folder:
            config = units.layer.default_config(num_epochs=20, seed=args.seed, num_threads=1,
                                                checkpoint_dir=folder, log_dir=folder,
                                                tensorboard=False, save_last_state=False)
            model, results = train_layer(units.layer, units.train, units.val, config,
                                         model_args=model_args)
        calibration = Calibration.from_dict(results["calibration"])
        unit_tails = calibration.tail_probability(units.layer.score(model, units.test))
        tails.append(flow_tails(units, unit_tails[None, :])[0])
        labels = units.flow_labels
    p = np.stack(tails, axis=-1)  # (flows, layers)
    fused = fused_scores(p)
    smallest = np.argmin(np.where(np.isnan(p), np.inf, p), axis=1)
    threat, benign = labels == 1, labels == 0
    reached = benign & (fused >= fused[threat].min())
    print(f"{args.capture}, seed {args.seed}, layer-1 error_floor {floor}: fused min-p flow "
          f"ROC-AUC {roc_auc_score(labels[labels >= 0], fused[labels >= 0]):.3f}")
    print(f"threats' smallest tail from: {[LAYERS[i] for i in smallest[threat]]}")
    by_layer = np.bincount(smallest[reached], minlength=len(LAYERS))
    print(f"benign flows tying or beating the lowest threat: {int(reached.sum()):,} of "
          f"{int(benign.sum()):,} ({reached.sum() / benign.sum():.1%}); through "
          + ", ".join(f"{LAYERS[i]} {int(n):,}" for i, n in enumerate(by_layer)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
