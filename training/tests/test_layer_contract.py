"""The layer contract, checked on every registered layer by one parametrized suite.

On a real capture (IoT-23 44-1, 237 Zeek conn flows as CSV) each layer must: featurize the
events into units, each mapped back to exactly the events that formed it (checked against an
independent reading of the events table); carry its fitted state through its FeatureSpec (a
layer rebuilt from the spec scores alike); score higher on events made anomalous (the same flows
with volumes and ports no benign flow has); and give identical scores after a model save/load.
The commands that work on any layer (train, evaluate, tune, score, retrain) are checked on each
in test_layer_commands.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch

from training.artifacts.model_files import load_model, save_model
from training.data_collection import DataCollector, DataSource
from training.layers.registry import LAYERS, get_layer, layer_for_spec, layer_names
from training.layers.training import train_layer

CAPTURE = Path("../shared/datasets/iot23/CTU-Malware-Capture-44-1-labeled.csv")
SMALL = {"layer1": {"hidden_dim": 32, "latent_dim": 8}, "layer2": {"hidden_dim": 16},
         "layer3": {"channels": [8, 8]}}


@pytest.fixture(scope="module")
def events() -> pa.Table:
    if not CAPTURE.exists():
        pytest.skip(f"{CAPTURE} is absent (the shared datasets are not on this machine)")
    return DataCollector([DataSource("iot", "csv_file", {"path": str(CAPTURE)})],
                         progress=False).collect_table()


def _oracle(name: str, unit: str, events: pa.Table) -> set[str]:
    """The events that formed `unit`, read from the table without the layer's code."""
    ids = events["event_id"].to_numpy(zero_copy_only=False).astype(str)
    if name == "layer1":
        return {unit}
    what, at = unit.rsplit("@", 1)
    start = np.datetime64(at, "us")
    times = events["timestamp"].cast(pa.timestamp("us")).to_numpy(zero_copy_only=False)
    src = events["source_ip"].to_numpy(zero_copy_only=False).astype(str)
    if name == "layer2":  # a directed edge of a 5-minute window
        a, b = what.split("->")
        dst = events["dest_ip"].to_numpy(zero_copy_only=False).astype(str)
        inside = (times >= start) & (times < start + np.timedelta64(300, "s"))
        return set(ids[inside & (src == a) & (dst == b)])
    inside = (times >= start) & (times < start + np.timedelta64(60, "s"))  # the target minute
    return set(ids[inside & (src == what)])


@pytest.fixture(scope="module", params=sorted(SMALL))
def trained(request, events, tmp_path_factory):
    """A layer fitted on the capture's benign units, with its small detector trained."""
    torch.set_num_threads(1)
    layer = get_layer(request.param)()
    units = layer.featurize(events)
    folder = tmp_path_factory.mktemp(request.param)
    config = layer.default_config(num_epochs=10, batch_size=32, tensorboard=False,
                                  save_last_state=False, checkpoint_dir=str(folder))
    model, results = train_layer(layer, units, None, config, model_args=SMALL[layer.name])
    return layer, units, model, results


def test_every_builtin_layer_is_registered_with_unique_names():
    assert layer_names() == ["layer1", "layer2", "layer3"]
    names = [n for cls in LAYERS.values() for n in (cls.name, *cls.aliases)]
    assert len(names) == len(set(names))
    assert get_layer("layer2_behavioral") is get_layer("2") is get_layer("layer2")


def test_every_unit_maps_back_to_exactly_its_events(trained, events):
    layer, units, _, _ = trained
    columns = layer.unit_columns(units)
    assert len(columns["unit"]) == len(layer.labels(units)) > 20
    for unit, mapped in zip(columns["unit"].to_pylist(), columns["event_ids"].to_pylist()):
        assert len(mapped) == len(set(mapped))
        assert set(mapped) == _oracle(layer.name, unit, events), unit


def test_fitted_state_round_trips_through_the_feature_spec(trained):
    layer, units, model, results = trained
    rebuilt = layer_for_spec(results["feature_spec"])
    assert type(rebuilt) is type(layer)
    assert rebuilt.spec.fingerprint == layer.spec.fingerprint
    assert np.array_equal(rebuilt.score(model, units), layer.score(model, units))


def test_higher_scores_mean_more_anomalous(trained, events):
    layer, units, model, _ = trained
    odd = pc.equal(events["is_threat"], 0)  # make every benign flow huge and odd
    bigger = pc.if_else(odd, pc.multiply(events["bytes_sent"].cast(pa.float64()), 1e6),
                        events["bytes_sent"].cast(pa.float64()))
    ports = pc.if_else(odd, pa.scalar(61_337, pa.int32()), events["dest_port"])
    changed = events.set_column(events.schema.get_field_index("bytes_sent"), "bytes_sent",
                                bigger.cast(events.schema.field("bytes_sent").type))
    changed = changed.set_column(changed.schema.get_field_index("dest_port"), "dest_port",
                                 ports.cast(events.schema.field("dest_port").type))
    before = layer.score(model, units)[layer.labels(units) == 0]
    altered = layer.featurize(changed)
    after = layer.score(model, altered)[layer.labels(altered) == 0]
    assert before.shape == after.shape  # the same units, in the same order
    # most units score higher (those whose flows carry no volume may not change)
    assert (after > before).mean() > 0.7 and np.median(after - before) > 0


def test_save_and_load_give_identical_scores(trained, tmp_path):
    layer, units, model, results = trained
    path = tmp_path / "m.pt"
    save_model(model, path, feature_spec=results["feature_spec"], threshold=1.0)
    loaded = load_model(path)
    again = layer_for_spec(loaded.feature_spec).score(loaded.model, units)
    assert np.array_equal(again, layer.score(model, units))
