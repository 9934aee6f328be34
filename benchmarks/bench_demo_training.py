"""Training time of the layer-2 GNN and the layer-3 TCN on the demo events (target: under a
minute each), formerly `bench_layers23.py --demo`; detection quality is the harness's
(`benchmarks/detection_harness.py`).

The 10,000 demo events of `maximus-train demo`, featurized per layer, split 70/15/15 by time,
each model trained with its layer's defaults (seed 0, one thread): the time of the whole
`train_layer` call (scaling, batches, the loop with validation every epoch, threshold and
checkpoint files), and the test split's ROC-AUC.

    python benchmarks/bench_demo_training.py
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from training.collection.event_dicts import events_table  # noqa: E402
from training.demo.generator import generate_demo_events  # noqa: E402
from training.evaluation.metrics import roc_auc  # noqa: E402
from training.layers.registry import get_layer  # noqa: E402
from training.layers.training import train_layer  # noqa: E402


def demo_timing(seed: int = 0) -> dict:
    table = events_table(generate_demo_events(10_000, seed=42)["events"])
    out = {}
    for name in ("layer2", "layer3"):
        layer = get_layer(name)()
        parts = layer.split(layer.featurize(table), "temporal", (0.7, 0.15, 0.15), seed)
        with tempfile.TemporaryDirectory() as folder:
            config = layer.default_config(seed=seed, checkpoint_dir=folder, log_dir=folder,
                                          tensorboard=False, save_last_state=False,
                                          num_threads=1)
            start = time.perf_counter()
            model, results = train_layer(layer, parts["train"], parts["val"], config)
            seconds = time.perf_counter() - start
        scores, labels = layer.score(model, parts["test"]), layer.labels(parts["test"])
        known = labels >= 0
        out[name] = {"seconds": round(seconds, 1), "epochs": results["epochs_trained"],
                     "best_epoch": results["best_epoch"], "train_units": results["train_units"],
                     "test_roc_auc": roc_auc(scores[known], labels[known] == 1)}
    return out


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    print(json.dumps(demo_timing(), indent=1))
