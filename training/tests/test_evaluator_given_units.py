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


def test_unlabeled_rows_name_the_label_free_evaluation(datasets):
    """Unlabeled Zeek logs (zat): the evaluator's error names `unlabeled_ok`, the way to the
    label-free figures, where it only said that every row is unknown."""
    from training.errors import SchemaError
    from training.evaluation.score_metrics import evaluate_scores

    table, _ = collect("zeek_logs", datasets / "zeek_zat" / "tsv" / "conn.log")
    layer = get_layer("layer1")()
    units = layer.featurize(table)
    labels = layer.labels(units)
    assert (labels == -1).all()
    with pytest.raises(SchemaError, match="unlabeled_ok=True"):
        ModelEvaluator(Layer1VAE(), layer.unit_features(units), labels).evaluate(
            benchmark_latency=False)
    scores = np.linspace(0.0, 1.0, len(labels))
    metrics = evaluate_scores(scores, labels, threshold=0.5, unlabeled_ok=True)
    assert metrics.n_units == len(labels) and metrics.roc_auc is None


def test_registering_the_evaluators_dict_says_what_to_leave_out(iot_table):
    """`ModelMetadata(metrics=evaluator.evaluate().to_dict())`, a notebook's first try, was
    refused naming the None only; the error now says which values to register."""
    from datetime import datetime

    from training.model_registry import ModelMetadata

    layer = get_layer("layer1")()
    rows = layer.unit_features(layer.featurize(iot_table))
    labels = np.zeros(len(rows), dtype=np.int8)
    labels[:5] = 1
    metrics = ModelEvaluator(Layer1VAE(), rows, labels).evaluate(benchmark_latency=False)
    assert metrics.accuracy is None  # no threshold: the figures at one are not computed
    with pytest.raises(ConfigError, match="finite numbers only"):
        ModelMetadata("layer1_vae", "1", "layer1", datetime(2026, 1, 1), metrics.to_dict(), {})
