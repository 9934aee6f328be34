"""Fields left out of the features (`training.features.dropped_fields`): the event transform,
the names it refuses, and a pipeline run whose models carry the drop into scoring."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from training.errors import ConfigError
from training.features.dropped_fields import check_dropped, without_fields
from training.features.layer1 import DIRECTION

CONN_011 = "stratosphere/011-zeek-mixed/data/conn.log.labeled"


def test_without_fields_nulls_canonical_fields_and_removes_the_others():
    table = pa.table({"event_id": ["a", "b"], "direction": ["inbound", "outbound"],
                      "local_orig": [False, True], "history": ["S", "ShAD"]})
    dropped = without_fields(table, ["direction", "local_orig", "not_there"])
    assert dropped.column_names == ["event_id", "direction", "history"]
    assert dropped["direction"].type == pa.string() and dropped["direction"].null_count == 2
    assert table["direction"].to_pylist() == ["inbound", "outbound"]  # the input is unchanged
    assert "local_orig" in table.column_names


def test_the_fields_are_checked_sorted_and_without_repeats():
    assert check_dropped(["local_orig", "direction", " direction "]) == ("direction",
                                                                         "local_orig")
    with pytest.raises(ConfigError, match="cannot drop timestamp: every layer needs it"):
        check_dropped(["timestamp"])
    with pytest.raises(ConfigError, match="cannot drop detailedlabel: it is a label"):
        check_dropped(["detailedlabel"])
    with pytest.raises(ConfigError, match="drop_fields must name fields, got ''"):
        check_dropped([""])


def test_a_run_without_direction_records_it_and_its_model_scores_without_it(datasets,
                                                                             tmp_path):
    from training.layers.layer1 import Layer1
    from training.layers.registry import layer_for_spec
    from training.pipeline.config import config_from_dict
    from training.pipeline.run import run_pipeline
    from training.registry.registry import ModelRegistry
    from training.tests.conftest import collect

    config = config_from_dict({
        "workdir": tmp_path, "layers": ["layer1"], "drop_fields": ["direction"],
        "sources": [{"type": "zeek", "path": str(datasets / CONN_011)}],
        "train": {"epochs": 1, "benign_only": True}})
    result = run_pipeline(config)
    # the field left out is no longer judged; the other one that leaks is, and the report says
    leaks = [i for i in result.validation["issues"] if "label_leak" in i]
    assert leaks == ["warning: label_leak: field local_orig separates the labels: false holds "
                     "3,951 of 3,951 threats and 0 of 4,771 benign events - a leak? Drop it "
                     "with --drop-field local_orig"]
    report = next(tmp_path.glob("runs/*/report/validation.txt")).read_text()
    assert "field local_orig separates the labels" in report
    model = ModelRegistry(tmp_path / "models", create=False).load_model("layer1_vae",
                                                                         stage="production")
    assert model.feature_spec.config["dropped_fields"] == ["direction"]
    # scoring rebuilds the transform from the model alone: direction's dims stay 0
    events = collect("zeek_logs", datasets / CONN_011)[0]
    layer = layer_for_spec(model.feature_spec)
    scored = layer.featurize(events).features
    plain = Layer1()
    plain.featurizer.counts_ = layer.featurizer.counts_  # what the run's training saw
    plain = plain.featurize(events).features
    direction = slice(DIRECTION, DIRECTION + 4)
    assert not scored[:, direction].any() and plain[:, direction].any()
    others = np.ones(scored.shape[1], bool)
    others[direction] = False
    assert np.array_equal(scored[:, others], plain[:, others])
