"""Layer-2 window graphs: exact aggregates on six hand-made events, labels on a real labeled
capture checked against the file itself, the spec, and save/load without pickle."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pyarrow as pa
import pytest
import torch
from torch_geometric.data import Batch

from training.errors import ConfigError, SchemaError, SourceError
from training.features.encoding import SPEC_FIELD, FeatureSpec
from training.features.layer1 import Layer1Featurizer
from training.features.layer2 import EDGE_FEATURES, NODE_FEATURES, Layer2GraphBuilder
from training.features.layer2_graphs import Layer2Graphs
from training.features.layer3 import Layer3WindowBuilder
from training.tests.conftest import collect
from training.tests.traffic_fixtures import T0, A, B, C, log_scaled, read_labeled_conn, six_events

CONN_011 = "stratosphere/011-zeek-mixed/data/conn.log.labeled"
T0_US = int(T0.timestamp()) * 1_000_000


def edge_vector(flows, sent, received, psent, preceived, ports, duration, proto, state, failure):
    """The 18 edge features from raw aggregates (proto: tcp/udp/icmp/other shares; state: the
    six connection-state class shares)."""
    return np.array([log_scaled(flows, 1e6), log_scaled(sent, 1e12), log_scaled(received, 1e12),
                     log_scaled(psent, 1e9), log_scaled(preceived, 1e9), log_scaled(ports, 65536),
                     log_scaled(duration, 86400), *proto, *state, failure], dtype=np.float32)


def node_vector(out_deg, in_deg, peers, flows_out, flows_in, bytes_out, bytes_in, pk_out, pk_in,
                ports_out, ports_in, fail_out, fail_in):
    return np.array([log_scaled(out_deg, 1e5), log_scaled(in_deg, 1e5), log_scaled(peers, 1e5),
                     log_scaled(flows_out, 1e6), log_scaled(flows_in, 1e6),
                     log_scaled(bytes_out, 1e12), log_scaled(bytes_in, 1e12),
                     log_scaled(pk_out, 1e9), log_scaled(pk_in, 1e9),
                     log_scaled(ports_out, 65536), log_scaled(ports_in, 65536), fail_out, fail_in],
                    dtype=np.float32)


def assert_same_graph(left, right, skip=()) -> None:
    assert set(left.keys()) == set(right.keys())
    for key in left.keys():
        if key in skip:
            continue
        a, b = left[key], right[key]
        if isinstance(a, torch.Tensor):
            assert a.dtype == b.dtype and torch.equal(a, b), key
        else:
            assert np.array_equal(a, b), key
    assert left.num_nodes == right.num_nodes


@pytest.fixture(scope="module")
def six() -> Layer2Graphs:
    return Layer2GraphBuilder().featurize(six_events())


def test_six_events_edges_exact(six):
    assert len(six) == 2 and six.stats == {"events": 6, "used": 5, "without_endpoints": 1,
                                           "without_timestamp": 0, "graphs": 2, "nodes": 5,
                                           "edges": 3}
    first, second = six[0], six[1]
    assert first.entity.tolist() == [A, B, C] and second.entity.tolist() == [A, C]
    assert first.window_start.tolist() == [T0_US] and second.window_start.tolist() == [T0_US + 300_000_000]
    assert first.edge_index.tolist() == [[0, 1], [1, 2]] and second.edge_index.tolist() == [[0], [1]]
    expected = np.stack([
        # A->B: SF tcp :80, REJ tcp :443, S0 udp :80 (bytes_received and duration missing)
        edge_vector(3, 150, 200, 4, 4, 2, 0.75, [2 / 3, 1 / 3, 0, 0], [1 / 3, 1 / 3, 1 / 3, 0, 0, 0], 2 / 3),
        # B->C: icmp without port, OTH
        edge_vector(1, 10, 20, 1, 1, 0, 2.0, [0, 0, 1, 0], [0, 0, 0, 0, 1, 0], 0),
    ])
    np.testing.assert_allclose(first.edge_attr.numpy(), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        second.edge_attr.numpy(),
        edge_vector(1, 1000, 2000, 10, 20, 1, 4.0, [1, 0, 0, 0], [1, 0, 0, 0, 0, 0], 0)[None],
        rtol=1e-6, atol=1e-7)
    assert first.edge_attr.shape[1] == len(EDGE_FEATURES) == 18
    assert first.edge_y.tolist() == [1, 0] and second.edge_y.tolist() == [-1]
    assert first.edge_event_ptr.tolist() == [0, 3, 4] and second.edge_event_ptr.tolist() == [0, 1]
    assert first.event_id.tolist() == ["e1", "e2", "e3", "e4"] and first.event_row.tolist() == [0, 1, 2, 3]
    assert second.event_id.tolist() == ["e5"] and second.event_row.tolist() == [4]


def test_six_events_nodes_exact(six):
    first = six[0]
    expected = np.stack([
        node_vector(1, 0, 1, 3, 0, 150, 200, 4, 4, 2, 0, 2 / 3, 0),       # A
        node_vector(1, 1, 2, 1, 3, 200 + 10, 150 + 20, 4 + 1, 4 + 1, 0, 2, 0, 2 / 3),  # B
        node_vector(0, 1, 1, 0, 1, 20, 10, 1, 1, 0, 0, 0, 0),            # C
    ])
    np.testing.assert_allclose(first.x.numpy(), expected, rtol=1e-6, atol=1e-7)
    assert first.x.shape[1] == len(NODE_FEATURES) == 13
    assert first.y.tolist() == [1, 1, 0] and six[1].y.tolist() == [-1, -1]
    assert first.x.dtype == torch.float32 and first.y.dtype == torch.int64


@pytest.mark.parametrize("entity, ends, events", [("host", None, None), ("user", ["alice", "h1"], ["e6"])])
def test_other_entities(entity, ends, events):
    graphs = Layer2GraphBuilder(entity=entity).featurize(six_events())
    if ends is None:  # host -> dest_ip: no event has both
        assert len(graphs) == 0 and graphs.stats["without_endpoints"] == 6
        return
    (graph,) = graphs
    assert graph.entity.tolist() == ends and graph.edge_index.tolist() == [[0], [1]]
    assert graph.event_id.tolist() == events and graph.edge_y.tolist() == [1]
    assert graph.y.tolist() == [1, 1] and graphs.stats["without_endpoints"] == 5


def test_window_length_and_missing_values():
    table = six_events()
    one_hour = Layer2GraphBuilder(window_seconds=3600).featurize(table)
    assert len(one_hour) == 1 and one_hour[0].edge_index.shape[1] == 3
    no_time = table.set_column(0, "timestamp", pa.array([None] * 6, table.schema.field(0).type))
    graphs = Layer2GraphBuilder().featurize(no_time)
    assert len(graphs) == 0 and graphs.stats["without_timestamp"] == 5
    partial = table.select(["timestamp", "source_ip", "dest_ip"])  # nothing else: still builds
    graph = Layer2GraphBuilder().featurize(partial)[0]
    assert graph.edge_y.tolist() == [-1, -1] and graph.event_id.tolist() == [""] * 4


def test_row_order_does_not_change_graphs():
    table = six_events()
    order = np.array([5, 3, 1, 4, 0, 2])
    shuffled = Layer2GraphBuilder().featurize(table.take(order))
    for left, right in zip(Layer2GraphBuilder().featurize(table), shuffled):
        # only the order of an edge's events follows the table
        assert_same_graph(left, right, skip=("event_row", "event_id"))
        ptr = left.edge_event_ptr.tolist()
        for e in range(len(ptr) - 1):
            rows = order[right.event_row[ptr[e]:ptr[e + 1]].numpy()]
            assert sorted(rows) == left.event_row[ptr[e]:ptr[e + 1]].tolist()
            assert sorted(right.event_id[ptr[e]:ptr[e + 1]]) == list(left.event_id[ptr[e]:ptr[e + 1]])


def test_mean_layer1_vector():
    table = six_events()
    builder = Layer2GraphBuilder(layer1=Layer1Featurizer())
    graph = builder.featurize(table)[0]
    vectors = Layer1Featurizer().featurize(table)
    assert graph.x.shape == (3, 13 + 128)
    expected = [vectors[[0, 1, 2]].mean(0), vectors[[0, 1, 2, 3]].mean(0), vectors[[3]].mean(0)]
    np.testing.assert_allclose(graph.x[:, 13:].numpy(), np.stack(expected), rtol=1e-6, atol=1e-7)
    assert builder.spec.config["node_features"][13] == "l1_000"
    assert builder.spec.config["layer1"]["layer"] == "layer1"


def test_spec_and_from_spec():
    builder = Layer2GraphBuilder(window_seconds=60, entity="user")
    spec = builder.spec
    assert (spec.layer, spec.version, spec.fitted) == ("layer2", "l2.v1", None)
    assert spec.config["window_seconds"] == 60.0 and spec.config["entity"] == "user"
    assert spec.config["edge_features"] == list(EDGE_FEATURES)
    rebuilt = Layer2GraphBuilder.from_spec(FeatureSpec.from_json(spec.to_json()))
    assert rebuilt.spec.fingerprint == spec.fingerprint and rebuilt.entity == "user"
    with_l1 = Layer2GraphBuilder(layer1=Layer1Featurizer()).spec
    assert Layer2GraphBuilder.from_spec(with_l1).layer1 is not None
    with pytest.raises(SchemaError, match="cannot drive the layer-2"):
        Layer2GraphBuilder.from_spec(Layer3WindowBuilder().spec)
    changed = FeatureSpec("layer2", "l2.v1", {**spec.config, "edge_features": ["flows"]})
    with pytest.raises(SchemaError, match="another feature transform"):
        Layer2GraphBuilder.from_spec(changed)
    with pytest.raises(SchemaError, match="invalid config"):
        Layer2GraphBuilder.from_spec(FeatureSpec("layer2", "l2.v1", {"entity": "ip"}))


@pytest.mark.parametrize("kwargs, message", [
    ({"window_seconds": 0}, "window_seconds must be a number of seconds > 0, got 0"),
    ({"window_seconds": -5}, "got -5"),
    ({"window_seconds": True}, "got True"),
    ({"window_seconds": "300"}, "got '300'"),
    ({"window_seconds": 1e-9}, "at least one microsecond"),
    ({"entity": "mac"}, "entity must be one of ip, host, user, got 'mac'"),
    ({"layer1": True}, "layer1 must be a Layer1Featurizer or None, got bool"),
])
def test_arguments_are_validated(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Layer2GraphBuilder(**kwargs)
    Layer2GraphBuilder(window_seconds=1e-6)  # the smallest window is accepted


def test_save_load_identical(six, tmp_path):
    path = six.save(tmp_path / "graphs")
    assert path.name == "graphs.npz"
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        assert FeatureSpec.from_npz(data, str(path)) == six.spec and "x" in data.files
    loaded = Layer2Graphs.load(path, spec=Layer2GraphBuilder().spec)
    assert len(loaded) == len(six) and loaded.stats == six.stats and loaded.spec == six.spec
    for left, right in zip(six, loaded):
        assert_same_graph(left, right)
    assert_same_graph(six[-1], loaded[1])
    assert [g.num_nodes for g in six[0:2]] == [3, 2]


def test_load_refuses_other_spec_and_bad_files(six, tmp_path):
    path = six.save(tmp_path / "graphs.npz")
    with pytest.raises(SchemaError, match="another feature transform"):
        Layer2Graphs.load(path, spec=Layer2GraphBuilder(window_seconds=60).spec)
    windows = Layer3WindowBuilder().featurize(six_events()).save(tmp_path / "windows.npz")
    with pytest.raises(SchemaError, match="holds layer3 features"):
        Layer2Graphs.load(windows)
    np.savez(tmp_path / "plain.npz", x=np.zeros(2))
    with pytest.raises(SchemaError, match=SPEC_FIELD):
        Layer2Graphs.load(tmp_path / "plain.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(SourceError, match="not a readable"):
        Layer2Graphs.load(tmp_path / "junk.npz")
    with pytest.raises(SourceError, match="no such file"):
        Layer2Graphs.load(tmp_path / "missing.npz")


def test_empty_table_and_batching(six, tmp_path):
    empty = Layer2GraphBuilder().featurize(six_events().slice(0, 0))
    assert len(empty) == 0 and list(empty) == []
    assert len(Layer2Graphs.load(empty.save(tmp_path / "empty.npz"))) == 0
    batch = Batch.from_data_list(list(six))
    assert batch.num_graphs == 2 and batch.edge_index.tolist() == [[0, 1, 3], [1, 2, 4]]
    assert_same_graph(batch.get_example(0), six[0])
    with pytest.raises(IndexError):
        six[2]


def test_real_capture_labels_match_the_file(datasets):
    """Stratosphere 011: every (window, source, dest) edge, its events and its label, and every
    node label, as computed from the TSV with plain Python."""
    path = datasets / CONN_011
    table, _ = collect("zeek_logs", path)
    graphs = Layer2GraphBuilder().featurize(table)
    edges, nodes = defaultdict(list), defaultdict(lambda: -1)
    for row in read_labeled_conn(path):
        window = row["seconds"] // 300 * 300 * 1_000_000
        edges[window, row["source"], row["dest"]].append(row)
        for end in (row["source"], row["dest"]):
            nodes[window, end] = max(nodes[window, end], row["label"])
    expected = {key: ([f"conn:{r['uid']}" for r in rows], max(r["label"] for r in rows))
                for key, rows in edges.items()}

    built, built_nodes = {}, {}
    for graph in graphs:
        start = int(graph.window_start)
        ptr, ids = graph.edge_event_ptr.tolist(), graph.event_id.tolist()
        for e, (s, d) in enumerate(graph.edge_index.t().tolist()):
            built[start, graph.entity[s], graph.entity[d]] = (ids[ptr[e]:ptr[e + 1]], int(graph.edge_y[e]))
        built_nodes.update({(start, name): int(y) for name, y in zip(graph.entity, graph.y)})
    assert built == expected
    assert built_nodes == dict(nodes)
    edge_labels = Counter(label for _, label in expected.values())
    assert edge_labels == Counter(torch.cat([g.edge_y for g in graphs]).tolist())
    assert set(edge_labels) == {-1, 0, 1}
    assert graphs.stats["used"] == table.num_rows == sum(len(v) for v in edges.values())
    assert len(graphs) == len({key[0] for key in edges})
