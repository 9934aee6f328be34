"""The fused score in the harness: the layer defaults' tail probabilities combined per flow.

For each seed, each layer's default detector gives every test unit its tail probability (its
calibration on the benign validation units, as the pipeline's); a flow takes the smallest over
its units in each layer (NaN where none covers it) and the rules of
`training.evaluation.fusion` combine the layers: `fused (min-p+fisher)` (the default),
`fused (min-p)` and `fused (fisher)`, the same rule for every capture, nothing fitted per
capture. They are measured per flow beside every layer's default per flow (candidates) and
every layer's baselines per flow: the best baseline is the best of all of them, whichever layer
it comes from.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from training.evaluation.fusion import RULES, fused_scores
from training.evaluation.harness.units import LayerUnits


def flow_tails(units: LayerUnits, tails: np.ndarray) -> np.ndarray:
    """Each flow's smallest tail probability over its units, NaN where none covers it.

    Shapes:
        tails: (seeds, units) -> (seeds, flows).
    """
    smallest = -units.flow_scores(-np.asarray(tails, dtype=np.float64))
    return np.where(np.isinf(smallest), np.nan, smallest)


def fused_flows(measured: dict[str, tuple[LayerUnits, dict[str, dict[str, Any]]]]
                ) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray], np.ndarray]:
    """The methods, flow scores (seeds, flows) and flow labels of the fused comparison.

    Args:
        measured: layer name -> (its units, `run_layer`'s runs), in layer order; every layer's
            flows are the same rows of the capture's test part.
    """
    methods: dict[str, dict[str, Any]] = {}
    scores: dict[str, np.ndarray] = {}
    labels = None
    per_layer = []
    for layer, (units, runs) in measured.items():
        labels = units.flow_labels
        for name, run in runs.items():
            if run["baseline"]:
                methods[f"{layer} {name}"] = {"baseline": True, "same_as": None, "runs": []}
                scores[f"{layer} {name}"] = units.flow_scores(run["scores"])
        default = runs.get("default")
        if default is None:  # a run of other methods only: no layer default to fuse
            continue
        same = None if default["same_as"] is None else f"{layer} {default['same_as']}"
        methods[f"{layer} default"] = {"baseline": False, "same_as": same,
                                       "runs": default["runs"]}
        scores[f"{layer} default"] = units.flow_scores(default["scores"])
        if "tails" in default:
            per_layer.append(flow_tails(units, default["tails"]))
    if per_layer:
        p = np.stack(per_layer, axis=-1)  # (seeds, flows, layers)
        for rule in RULES:
            name = f"fused ({rule})"
            methods[name] = {"baseline": False, "same_as": None, "runs": []}
            scores[name] = np.stack([fused_scores(seed, rule) for seed in p])
    return methods, scores, labels
