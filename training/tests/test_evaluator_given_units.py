"""`ModelEvaluator` given a layer's units instead of feature rows (trial Q).

A notebook user who trained layer 2 or 3 passes the split's units to the evaluator as
`test_features`. Layer 2's graphs made numpy fail with "setting an array element with a
sequence ... inhomogeneous shape", layer 3's windows with "len() of unsized object". The
evaluator now refuses them with a ConfigError naming `evaluate_units`, the function for them.
"""

from __future__ import annotations

import numpy as np
import pytest

from training.errors import ConfigError
from training.evaluator import ModelEvaluator
from training.layers.registry import get_layer
from training.tests.conftest import collect
from training.train_layer1_vae import Layer1VAE


@pytest.fixture(scope="module")
def iot_table(datasets):
    table, _ = collect("csv_file", datasets / "iot23" / "CTU-Honeypot-Capture-4-1-labeled.csv")
    return table


@pytest.mark.parametrize("name", ["layer2", "layer3"])
def test_units_are_refused_naming_evaluate_units(iot_table, name):
    layer = get_layer(name)()
    units = layer.featurize(iot_table)
    assert len(layer.labels(units)) > 0
    with pytest.raises(ConfigError, match="evaluate_units"):
        ModelEvaluator(Layer1VAE(), units, layer.labels(units))


def test_layer1_rows_and_text_attack_types_still_evaluate(iot_table):
    layer = get_layer("layer1")()
    rows = layer.unit_features(layer.featurize(iot_table))
    labels = np.zeros(len(rows), dtype=np.int8)
    labels[:5] = 1  # both classes, for the threshold-free figures
    attack_types = np.array([None] * len(rows), dtype=object)
    attack_types[:5] = "PartOfAHorizontalPortScan"
    metrics = ModelEvaluator(Layer1VAE(), rows, labels, attack_types=attack_types).evaluate(
        benchmark_latency=False)
    assert metrics.roc_auc is not None
