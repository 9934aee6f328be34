"""Layer-3 windows: exact bucket values and histories on six hand-made events, labels on a real
labeled capture checked against the file itself, the spec, and save/load without pickle."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pytest

from training.collection.schema import CANONICAL_SCHEMA
from training.errors import ConfigError, SchemaError
from training.features.encoding import FeatureSpec
from training.features.layer2 import Layer2GraphBuilder
from training.features.layer3 import FEATURES, Layer3WindowBuilder
from training.features.layer3_windows import Layer3Windows
from training.tests.conftest import collect
from training.tests.traffic_fixtures import T0, A, B, C, log_scaled, read_labeled_conn, six_events

CONN_011 = "stratosphere/011-zeek-mixed/data/conn.log.labeled"


def bucket_vector(events, sent, received, psent, preceived, peers, ports, failure, alerts,
                  severity, duration):
    """The 11 bucket features from raw aggregates."""
    return np.array([log_scaled(events, 1e6), log_scaled(sent, 1e12), log_scaled(received, 1e12),
                     log_scaled(psent, 1e9), log_scaled(preceived, 1e9), log_scaled(peers, 1e5),
                     log_scaled(ports, 65536), failure, log_scaled(alerts, 1e6), severity,
                     log_scaled(duration, 86400)], dtype=np.float32)


def minute(n: int) -> np.datetime64:
    return np.datetime64(T0.replace(tzinfo=None) + timedelta(minutes=n), "us")


@pytest.fixture(scope="module")
def six() -> Layer3Windows:
    return Layer3WindowBuilder(history=3).featurize(six_events())


def test_six_events_buckets_exact(six):
    assert len(six) == 5 and six.X.shape == (5, 3, 11) and six.X.dtype == np.float32
    assert six.entity.to_pylist() == [A, A, A, A, B]
    assert six.time.tolist() == [minute(n).tolist() for n in (0, 1, 2, 6, 3)]
    a0 = bucket_vector(1, 100, 200, 2, 3, 1, 1, 0, 0, 0, 1.0)
    a1 = bucket_vector(1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0.5)     # REJ
    a2 = bucket_vector(1, 50, 0, 1, 0, 1, 1, 1, 0, 0, 0)      # S0, no duration
    a6 = bucket_vector(1, 1000, 2000, 10, 20, 1, 1, 0, 0, 0, 4.0)
    b3 = bucket_vector(1, 10, 20, 1, 1, 1, 0, 0, 1, 0.5, 2.0)  # notice, no port
    np.testing.assert_allclose(six.target, np.stack([a0, a1, a2, a6, b3]), rtol=1e-6, atol=1e-7)
    zero = np.zeros(11, dtype=np.float32)
    expected_x = np.stack([
        [zero, zero, zero],  # A@0: nothing before
        [zero, zero, a0],    # A@1: minute 0 just before
        [zero, a0, a1],      # A@2
        [zero, zero, zero],  # A@6: minutes 3-5 silent, minute 2 is 4 buckets back
        [zero, zero, zero],  # B@3
    ])
    np.testing.assert_allclose(six.X, expected_x, rtol=1e-6, atol=1e-7)
    assert six.labels.tolist() == [0, 1, -1, -1, 0] and six.labels.dtype == np.int8
    assert six.attack_type.to_pylist() == ["", "scan", "", "", ""]
    assert six.event_ptr.tolist() == [0, 1, 2, 3, 4, 5] and six.event_row.tolist() == [0, 1, 2, 4, 3]
    assert six.event_id.to_pylist() == ["e1", "e2", "e3", "e5", "e4"]
    assert six.stats == {"events": 6, "used": 5, "without_entity": 1, "without_timestamp": 0,
                         "windows": 5, "entities": 2}


@pytest.mark.parametrize("entity, names, labels", [
    ("dest_ip", [B, B, B, C, C], [0, 1, -1, 0, -1]),
    ("user", ["alice"], [1]),
    ("host", ["h1"], [1]),
])
def test_other_entities(entity, names, labels):
    windows = Layer3WindowBuilder(entity=entity).featurize(six_events())
    assert windows.entity.to_pylist() == names and windows.labels.tolist() == labels
    assert windows.X.shape == (len(names), 30, 11)


def test_bucket_length_and_attack_types():
    table = six_events()
    windows = Layer3WindowBuilder(bucket_seconds=300, history=2).featurize(table)
    assert windows.entity.to_pylist() == [A, A, B] and windows.labels.tolist() == [1, -1, 0]
    # A@0 (e1-e3): 3 events, ports {80, 443}, failures REJ and S0; A@5 has A@0 one bucket back
    np.testing.assert_allclose(windows.target[0, [0, 6, 7]],
                               [log_scaled(3, 1e6), log_scaled(2, 65536), 2 / 3], rtol=1e-6)
    np.testing.assert_array_equal(windows.X[1, 1], windows.target[0])
    extra = pa.Table.from_pylist([
        {"timestamp": T0, "source_ip": "x", "is_threat": 1, "attack_type": "b"},
        {"timestamp": T0, "source_ip": "x", "is_threat": 1, "attack_type": "a"},
        {"timestamp": T0, "source_ip": "x", "is_threat": 0, "attack_type": "Microsoft"},
        {"timestamp": T0, "source_ip": "x", "is_threat": 1, "attack_type": "a"},
        {"timestamp": T0, "source_ip": "y", "is_threat": None},
    ], schema=CANONICAL_SCHEMA)
    windows = Layer3WindowBuilder().featurize(extra)
    assert windows.attack_type.to_pylist() == ["a|b", ""] and windows.labels.tolist() == [1, -1]


def test_row_order_does_not_change_windows(six):
    order = np.array([5, 3, 1, 4, 0, 2])
    shuffled = Layer3WindowBuilder(history=3).featurize(six_events().take(order))
    for name in ("X", "target", "labels", "time", "event_ptr"):
        np.testing.assert_array_equal(getattr(shuffled, name), getattr(six, name))
    assert shuffled.entity.equals(six.entity) and shuffled.attack_type.equals(six.attack_type)
    np.testing.assert_array_equal(order[shuffled.event_row], six.event_row)


def test_spec_and_from_spec():
    builder = Layer3WindowBuilder(bucket_seconds=30, history=10, entity="dest_ip")
    spec = builder.spec
    assert (spec.layer, spec.version, spec.fitted) == ("layer3", "l3.v1", None)
    assert spec.config["bucket_seconds"] == 30.0 and spec.config["history"] == 10
    assert spec.config["entity"] == "dest_ip" and spec.config["features"] == list(FEATURES)
    rebuilt = Layer3WindowBuilder.from_spec(FeatureSpec.from_json(spec.to_json()))
    assert rebuilt.spec.fingerprint == spec.fingerprint and rebuilt.history == 10
    with pytest.raises(SchemaError, match="cannot drive the layer-3"):
        Layer3WindowBuilder.from_spec(Layer2GraphBuilder().spec)
    with pytest.raises(SchemaError, match="another feature transform"):
        Layer3WindowBuilder.from_spec(FeatureSpec("layer3", "l3.v1", {**spec.config, "caps": {}}))
    with pytest.raises(SchemaError, match="invalid config"):
        Layer3WindowBuilder.from_spec(FeatureSpec("layer3", "l3.v1", {**spec.config, "history": 0}))


@pytest.mark.parametrize("kwargs, message", [
    ({"bucket_seconds": 0}, "bucket_seconds must be a number of seconds > 0, got 0"),
    ({"bucket_seconds": None}, "got None"),
    ({"history": 0}, r"history must be an integer in 1..10000, got 0"),
    ({"history": 10_001}, "got 10001"),
    ({"history": 2.0}, "got 2.0"),
    ({"entity": "ip"}, "entity must be one of source_ip, dest_ip, host, user, got 'ip'"),
])
def test_arguments_are_validated(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Layer3WindowBuilder(**kwargs)
    Layer3WindowBuilder(history=1), Layer3WindowBuilder(history=10_000)


def test_save_load_identical(six, tmp_path):
    path = six.save(tmp_path / "windows.npz")
    with np.load(path, allow_pickle=False) as data:
        assert data["X"].shape == (5, 3, 11) and data["time"].dtype == np.dtype("datetime64[us]")
    loaded = Layer3Windows.load(path, spec=Layer3WindowBuilder(history=3).spec)
    for name in ("X", "target", "labels", "time", "event_ptr", "event_row"):
        left, right = getattr(six, name), getattr(loaded, name)
        assert left.dtype == right.dtype and np.array_equal(left, right), name
    for name in ("entity", "attack_type", "event_id"):
        assert getattr(six, name).equals(getattr(loaded, name)), name
    assert loaded.spec == six.spec and loaded.stats == six.stats
    with pytest.raises(SchemaError, match="another feature transform"):
        Layer3Windows.load(path, spec=Layer3WindowBuilder().spec)
    graphs = Layer2GraphBuilder().featurize(six_events()).save(tmp_path / "graphs.npz")
    with pytest.raises(SchemaError, match="holds layer2 features"):
        Layer3Windows.load(graphs)


def test_empty_table(tmp_path):
    empty = Layer3WindowBuilder().featurize(six_events().slice(0, 0))
    assert empty.X.shape == (0, 30, 11) and empty.target.shape == (0, 11)
    assert len(Layer3Windows.load(empty.save(tmp_path / "empty.npz"))) == 0


def test_real_capture_labels_match_the_file(datasets):
    """Stratosphere 011 by source IP and minute: every window's entity, time, label and events,
    and the label counts, as computed from the TSV with plain Python."""
    path = datasets / CONN_011
    table, _ = collect("zeek_logs", path)
    windows = Layer3WindowBuilder().featurize(table)
    buckets = defaultdict(list)
    for row in read_labeled_conn(path):
        buckets[row["source"], row["seconds"] // 60 * 60].append(row)
    expected = {key: (max(r["label"] for r in rows), sorted(f"conn:{r['uid']}" for r in rows),
                      "|".join(sorted({r["detail"] for r in rows if r["label"] == 1})))
                for key, rows in buckets.items()}
    ids = windows.event_id.to_pylist()
    seconds = windows.time.astype("datetime64[s]").astype(np.int64).tolist()
    built = {(entity, second): (int(label), sorted(ids[windows.event_ptr[i]:windows.event_ptr[i + 1]]),
                                attack)
             for i, (entity, second, label, attack) in enumerate(zip(
                 windows.entity.to_pylist(), seconds, windows.labels, windows.attack_type.to_pylist()))}
    assert len(built) == len(windows) == len(expected)
    assert built == expected
    counts = Counter(label for label, _, _ in expected.values())
    assert counts == Counter(windows.labels.tolist()) and set(counts) == {-1, 0, 1}
    # every history slot holds its entity's bucket at that offset, or zeros when it was silent
    events = windows.X[:, :, 0]
    active = {key for key in buckets}
    for i in np.flatnonzero(windows.labels == 1)[:50]:
        entity, second = windows.entity[i].as_py(), seconds[i]
        expected_active = [(entity, second - 60 * (30 - k)) in active for k in range(30)]
        assert (events[i] > 0).tolist() == expected_active
