"""DataPreprocessor: the original API over the vectorized path, and the files it writes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from training.collection.collector import DataCollector, DataSource, DataSourceType
from training.demo.generator import write_demo_file
from training.errors import ConfigError, NotSupportedError, SchemaError, SourceError
from training.features.encoding import FeatureSpec
from training.features.layer1 import Layer1Featurizer
from training.data_preprocessor import (
    DataPreprocessor, LayerArrays, LayerType, PreprocessedSample,
)

# The project README's corrected step 2: the seed's, plus the line that saves the samples.
CORRECTED_STEP_2 = """
from training.data_collection import DataCollector, DataSource, DataSourceType
from training.data_preprocessor import DataPreprocessor, LayerType

source = DataSource(
    name='demo',
    source_type=DataSourceType.JSON_FILE,
    connection_params={'path': 'demo/synthetic_events.json'}
)
collector = DataCollector(sources=[source])
events = list(collector.collect(max_events=10000))

preprocessor = DataPreprocessor()
samples = preprocessor.preprocess_batch([e.to_dict() for e in events], LayerType.LAYER1_SENSORY)
preprocessor.save_samples(samples, 'layer1_samples')
print(f'Preprocessed {len(samples)} samples')
"""

SEED_STEP_3_LOAD = """
import numpy as np
data = np.load('training/data/preprocessed/layer1_samples.npz')
features, labels, sample_ids = data['features'], data['labels'], data['sample_ids'].tolist()
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    path = write_demo_file(folder / "demo" / "synthetic_events.json", n_events=2_000, seed=5)
    return folder, json.loads(path.read_text())["events"]


def _in(folder, code: str) -> dict:
    scope: dict = {}
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        exec(code, scope)
    finally:
        os.chdir(cwd)
    return scope


def test_corrected_step_2_saves_what_step_3_loads(demo):
    folder, events = demo
    _in(folder, CORRECTED_STEP_2)
    loaded = _in(folder, SEED_STEP_3_LOAD)
    truth = {e["event_id"]: e for e in events}
    assert loaded["features"].shape == (2_000, 128) and loaded["features"].dtype == np.float32
    assert sorted(loaded["sample_ids"]) == sorted(truth)
    expected = [0 if truth[i]["label"] == "benign" else 1 for i in loaded["sample_ids"]]
    assert loaded["labels"].tolist() == expected
    with np.load(folder / "training/data/preprocessed/layer1_samples.npz", allow_pickle=False) as data:
        attack = dict(zip(data["sample_ids"].tolist(), data["attack_type"].tolist()))
        assert FeatureSpec.from_npz(data, "layer1_samples.npz") == Layer1Featurizer().spec
    assert all(attack[i] == (truth[i]["attack_type"] or "") for i in truth)


def test_the_seeds_per_event_loop_gives_the_same_samples(demo):
    folder, events = demo
    collector = DataCollector([DataSource("demo", DataSourceType.JSON_FILE,
                                          {"path": str(folder / "demo/synthetic_events.json")})],
                              progress=False)
    collected = list(collector.collect(max_events=50))
    preprocessor = DataPreprocessor(output_dir=folder / "out")
    one_by_one = [preprocessor.preprocess_event(e.to_dict(), layers=[LayerType.LAYER1_SENSORY])
                  for e in collected]
    assert all(isinstance(s, PreprocessedSample) for s in one_by_one)
    batch = preprocessor.featurize(collector.collect_table(max_events=50), LayerType.LAYER1_SENSORY)
    assert np.array_equal(np.stack([s.features for s in one_by_one]), batch.arrays["features"])
    assert [s.sample_id for s in one_by_one] == batch.arrays["sample_ids"].tolist()
    assert [s.label for s in one_by_one] == batch.arrays["labels"].tolist()


def test_samples_round_trip_through_a_file_without_pickle(demo, tmp_path):
    _, events = demo
    preprocessor = DataPreprocessor(output_dir=tmp_path)
    samples = preprocessor.preprocess_batch(events[:40])
    path = preprocessor.save_samples(samples, "some")
    assert path == tmp_path / "some.npz"
    again = preprocessor.load_samples(path)
    assert [s.sample_id for s in again] == [s.sample_id for s in samples]
    assert np.array_equal(np.stack([s.features for s in again]), np.stack([s.features for s in samples]))
    assert [s.metadata["attack_type"] for s in again] == [s.metadata["attack_type"] for s in samples]
    arrays = LayerArrays.load(path)
    assert arrays.arrays["timestamps"].dtype == np.dtype("datetime64[us]")
    first = events[0]
    assert arrays.arrays["entity"][0] == (first["source_ip"] or first["host"] or first["user"])


def test_unknown_labels_stay_unknown(tmp_path):
    samples = DataPreprocessor().preprocess_batch([
        {"event_id": "a", "label": "Background"}, {"event_id": "b", "label": "normal"},
        {"event_id": "c", "label": "neptune"}, {"event_id": "d"}])
    assert [s.label for s in samples] == [-1, 0, 1, -1]
    assert [s.metadata["attack_type"] for s in samples] == [None, None, "neptune", None]


def test_preprocess_event_layers_argument():
    preprocessor = DataPreprocessor()
    event = {"event_id": "x", "source_ip": "10.0.0.1", "dest_ip": "10.0.0.2",
             "timestamp": "2024-03-04T10:00:05Z", "bytes_sent": 300}
    assert isinstance(preprocessor.preprocess_event(event, layers=[LayerType.LAYER1_SENSORY]),
                      PreprocessedSample)
    # "all": every layer the event can feed; a flow feeds all three
    assert [s.layer for s in preprocessor.preprocess_event(event)] == [
        LayerType.LAYER1_SENSORY, LayerType.LAYER2_BEHAVIORAL, LayerType.LAYER3_OPERATIONAL]
    process_event = {"event_id": "p", "host": "ws1", "process": "cmd.exe",
                     "timestamp": "2024-03-04T10:00:05Z"}
    assert preprocessor.preprocess_event(process_event).layer is LayerType.LAYER1_SENSORY
    with pytest.raises(SchemaError, match="cannot feed layer2"):
        preprocessor.preprocess_event(process_event, layers=[LayerType.LAYER2_BEHAVIORAL])
    for layer in (LayerType.LAYER4_TACTICAL, LayerType.LAYER5_STRATEGIC):
        with pytest.raises(NotSupportedError, match="not available"):
            preprocessor.preprocess_event(event, layers=[layer])
    with pytest.raises(ConfigError, match="unknown layer .layer9.; use one of layer1"):
        preprocessor.preprocess_event(event, layers=["layer9"])


def test_a_bad_event_is_refused_with_its_field():
    with pytest.raises(SchemaError, match=r"event 1: dest_port = 99999 is not a port"):
        DataPreprocessor().preprocess_batch([{"event_id": "ok"}, {"event_id": "x", "dest_port": 99999}])
    with pytest.raises(SchemaError, match="non-empty dict"):
        DataPreprocessor().preprocess_batch([{}])


def test_a_file_that_is_not_ours_is_refused(tmp_path):
    np.savez(tmp_path / "foreign.npz", features=np.zeros((2, 3)))
    with pytest.raises(SchemaError, match="feature_spec"):
        LayerArrays.load(tmp_path / "foreign.npz")
    np.save(tmp_path / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(SourceError, match="not a readable"):
        LayerArrays.load(tmp_path / "pickled.npy")


def test_a_single_flow_gives_a_one_edge_graph_and_a_one_bucket_window():
    event = {"event_id": "f1", "source_ip": "10.0.0.1", "dest_ip": "8.8.8.8", "dest_port": 53,
             "protocol": "udp", "timestamp": "2024-03-04T10:00:05Z", "label": "dns-tunnel"}
    graph, window = DataPreprocessor().preprocess_event(
        event, layers=[LayerType.LAYER2_BEHAVIORAL, LayerType.LAYER3_OPERATIONAL])
    # 10:00:05 falls in the 5-minute window that starts at 10:00:00
    assert graph.sample_id == f"window:{np.datetime64('2024-03-04T10:00:00', 'us').astype(int)}"
    assert graph.features.shape == (2, 13) and graph.label == 1
    assert graph.metadata["edge_index"].tolist() == [[0], [1]]
    assert graph.metadata["entity"].tolist() == ["10.0.0.1", "8.8.8.8"]
    assert graph.metadata["event_ids"].tolist() == ["f1"]
    # the window forecasts the 10:00 bucket of 10.0.0.1 from 30 empty buckets before it
    assert window.sample_id == "10.0.0.1@2024-03-04T10:00:00.000000"
    assert window.features.shape == (30, 11) and not window.features.any()
    assert window.metadata["target"].any() and window.label == 1
    assert window.metadata["event_ids"].tolist() == ["f1"]


@pytest.mark.parametrize("layer", [LayerType.LAYER2_BEHAVIORAL, LayerType.LAYER3_OPERATIONAL])
def test_layer2_and_layer3_samples_round_trip_through_save_samples(demo, tmp_path, layer):
    _, events = demo
    preprocessor = DataPreprocessor(output_dir=tmp_path)
    built = preprocessor.featurize(events, layer)
    samples = preprocessor.preprocess_batch(events, layer)
    assert len(samples) == len(built) > 0
    path = preprocessor.save_samples(built, f"{layer.value}_samples")
    loaded = preprocessor.load_samples(path)
    assert [s.sample_id for s in loaded] == [s.sample_id for s in samples]
    assert all(np.array_equal(a.features, b.features) and a.label == b.label
               for a, b in zip(loaded, samples))
    # every demo flow event is in exactly one unit's provenance
    ids = np.concatenate([s.metadata["event_ids"] for s in samples])
    assert len(ids) == len(set(ids.tolist())) == built.stats["used"]


def test_the_original_per_layer_preprocessors_keep_a_rolling_layer3_window():
    from training.data_preprocessor import (
        Layer1Preprocessor, Layer2Preprocessor, Layer3Preprocessor, LayerPreprocessor,
    )

    flow = {"source_ip": "10.0.0.1", "dest_ip": "8.8.8.8", "dest_port": 53, "protocol": "udp"}
    first = {**flow, "event_id": "a", "timestamp": "2024-03-04T10:00:05Z"}
    layer1, layer2 = Layer1Preprocessor(), Layer2Preprocessor()
    np.testing.assert_array_equal(layer1.preprocess(first).features, DataPreprocessor(
        ).preprocess_event(first, layers=[LayerType.LAYER1_SENSORY]).features)
    assert layer2.preprocess(first).features.shape == (2, layer2.get_feature_dim())
    assert [s.sample_id for s in layer1.preprocess_batch([first, first])] == ["a", "a"]

    layer3 = Layer3Preprocessor(window_size=3)
    assert isinstance(layer3, LayerPreprocessor) and layer3.get_feature_dim() == 11
    minutes = [0, 1, 3, 7]  # 10:00, 10:01, 10:03, 10:07
    windows = [layer3.preprocess({**flow, "event_id": f"e{m}",
                                  "timestamp": f"2024-03-04T10:0{m}:05Z"}) for m in minutes]
    # Each window holds the 3 buckets before its own: which of them had an event.
    assert [(w.features[:, 0] > 0).tolist() for w in windows] == [
        [False, False, False], [False, False, True], [True, True, False], [False, False, False]]
    assert [w.metadata["event_ids"].tolist() for w in windows] == [["e0"], ["e1"], ["e3"], ["e7"]]
    with pytest.raises(SchemaError, match="no timestamp"):
        layer3.preprocess(flow)
    with pytest.raises(SchemaError, match="no source_ip"):
        layer3.preprocess({"dest_ip": "8.8.8.8", "timestamp": "2024-03-04T10:08:00Z"})
    with pytest.raises(ConfigError, match="window_size must be an integer >= 1, got 0"):
        Layer3Preprocessor(window_size=0)
    with pytest.raises(SchemaError, match="cannot feed layer2"):
        layer2.preprocess({"source_ip": "10.0.0.1"})


@pytest.mark.parametrize("layer", [LayerType.LAYER2_BEHAVIORAL, LayerType.LAYER3_OPERATIONAL])
def test_the_seed_save_samples_saves_layer2_and_layer3_samples(datasets, tmp_path, layer):
    """The original step 2 with the samples preprocess_batch returned, as the seed README does
    it; a list that is not that unchanged list is refused naming the call that saves them."""
    from training.tests.conftest import collect

    events = collect("zeek_logs", datasets / "stratosphere/001-zeek-scenario-malicious/"
                                             "labeled-conn.log")[0].slice(0, 400)
    preprocessor = DataPreprocessor(output_dir=tmp_path)
    samples = preprocessor.preprocess_batch(events, layer)
    path = preprocessor.save_samples(samples, layer.value)
    loaded = preprocessor.load_samples(path)
    assert len(loaded) == len(samples) > 0
    for a, b in zip(loaded, samples):
        assert (a.sample_id, a.label) == (b.sample_id, b.label)
        np.testing.assert_array_equal(a.features, b.features)
        np.testing.assert_array_equal(a.metadata["event_ids"], b.metadata["event_ids"])
    name = layer.name.split("_")[0].lower()
    refusal = (f"{name} samples cannot be packed back one by one, and these are not the "
               "unchanged list preprocess_batch returned: save the units whole: units = "
               f"preprocessor.featurize(events, LayerType.{layer.name}) "
               "(DataPreprocessor.featurize), then preprocessor.save_samples(units, filename)")
    samples[0].label = 1 - samples[0].label  # an edit the units do not have
    for changed in (samples, samples[1:]):
        with pytest.raises(NotSupportedError) as caught:
            preprocessor.save_samples(changed, "changed")
        assert str(caught.value) == refusal
