"""What the harness compares on every layer: the candidates and the fixed reference baselines.

Candidates: the layer's default detector (whatever `Layer.build_detector` gives without
arguments), then ECOD, kNN distance and the isolation forest with their defaults, each reading
the layer's default row view. Baselines, fixed for good (DESIGN.md principle 13):

| baseline | method |
|---|---|
| IF | isolation forest, 200 trees, `max_samples="auto"` (scikit-learn's defaults otherwise) |
| AE | plain autoencoder d-64-16-64-d (`RowAutoencoder`), the layer's trainer settings |
| port rarity | -log((count + 1) / (N + 1)) of the flow's protocol/destination port (the service when there is no port) among the N fitting flows; a unit takes its flows' maximum |

Every detector is trained by `train_layer` (the one training path) on the capture's train
units with its validation units, under the layer's default TrainingConfig with the harness's
epochs and seed, then scored with `Layer.score` on the test units. Detectors with a `seed`
argument get the run's seed, so an isolation forest's figure can be reproduced with
scikit-learn directly (`random_state=seed`, on the training rows in lexicographic order).

A method is identified by the detector it builds (class and constructor arguments, the seed
aside). A candidate with the identity of a baseline (the candidate isolation forest is the IF
baseline; a layer whose default became one) is not trained twice: it is reported as that
baseline, by name.
"""

from __future__ import annotations

import inspect
import json
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.collection.schema_union import concat_tables
from training.detectors.rows import row_detector, row_detector_names
from training.evaluation.harness.units import LayerUnits
from training.layers.training import train_layer

PORT_RARITY = "port rarity"


@dataclass(frozen=True)
class Method:
    """A detector and its arguments, as the harness runs it.

    Attributes:
        name: the label in tables.
        detector: a name of `Layer.detector_names()`, "" for the layer's default, or None for
            destination-port rarity (not a Detector: it reads the flows' ports).
        args: the detector's arguments (`train_layer`'s model_args besides "detector").
        baseline: a fixed reference baseline.
    """

    name: str
    detector: str | None
    args: dict[str, Any] = field(default_factory=dict)
    baseline: bool = False

    def model_args(self, seed: int) -> dict[str, Any]:
        """`train_layer`'s model_args: the detector's name and arguments, and the seed when
        the detector takes one."""
        args = dict(self.args)
        if self.detector:
            args["detector"] = self.detector
            if (self.detector in row_detector_names()
                    and "seed" in inspect.signature(row_detector(self.detector)).parameters):
                args.setdefault("seed", seed)
        return args


BASELINES = (
    Method("IF", "iforest", {"n_estimators": 200}, baseline=True),
    Method("AE", "autoencoder", {"hidden": [64, 16]}, baseline=True),
    Method(PORT_RARITY, None, baseline=True),
)
CANDIDATES = (
    Method("default", ""),
    Method("ECOD", "ecod"),
    Method("kNN", "knn"),
    Method("IF candidate", "iforest"),
)


def identity(units: LayerUnits, method: Method) -> str:
    """What the method is: the class and constructor arguments (seed aside) of the detector
    it builds for these units, as text; port rarity is itself."""
    if method.detector is None:
        return PORT_RARITY
    model = units.layer.build_detector(units.train, **method.model_args(0))
    args = {k: v for k, v in model.init_args.items() if k != "seed"}
    return f"{type(model).__name__}{json.dumps(args, sort_keys=True)}"


def port_keys(table: pa.Table) -> np.ndarray:
    """"protocol/destination port" of each flow ("protocol/service" without a port)."""
    target = pc.coalesce(table["dest_port"].cast(pa.string()), table["service"], "")
    key = pc.binary_join_element_wise(pc.fill_null(table["protocol"], ""), target, "/")
    return np.asarray(key.to_numpy(zero_copy_only=False), dtype=str)


def port_rarity(units: LayerUnits) -> np.ndarray:
    """The port-rarity baseline's score of every test unit (see the module docstring)."""
    fit = port_keys(concat_tables([units.capture.train, units.capture.val]))
    known, counts = np.unique(fit, return_counts=True)
    test = port_keys(units.capture.test)
    where = np.clip(np.searchsorted(known, test), 0, len(known) - 1)
    count = np.where(known[where] == test, counts[where], 0)
    return units.unit_max(-np.log((count + 1.0) / (len(fit) + 1.0)))


def fit_and_score(units: LayerUnits, method: Method, seed: int, epochs: int
                  ) -> tuple[np.ndarray, dict[str, Any]]:
    """Train `method` on the units' train part (validated on val) and score the test units.

    Returns:
        (scores (units,) float64, {"seconds", "calibration" (the benign validation scores'
        distribution, a dict; none for port rarity), "epochs", "train_units", "max_rows"}).
    """
    start = time.perf_counter()
    if method.detector is None:
        return port_rarity(units), {"seconds": time.perf_counter() - start}
    layer = units.layer
    with tempfile.TemporaryDirectory(prefix="harness-") as folder:
        config = layer.default_config(num_epochs=epochs, seed=seed, num_threads=1,
                                      checkpoint_dir=folder, log_dir=folder, tensorboard=False,
                                      save_last_state=False)
        model, results = train_layer(layer, units.train, units.val, config,
                                     model_args=method.model_args(seed))
    scores = layer.score(model, units.test).astype(np.float64)
    return scores, {"seconds": time.perf_counter() - start,
                    "calibration": results.get("calibration"),  # for the fused score
                    "epochs": results["epochs_trained"], "train_units": results["train_units"],
                    "max_rows": getattr(model, "max_rows", None),
                    "randomized": bool(getattr(model, "randomized", True))}
