"""Layer-2 GNN and its data: exact scaling and batching on the six hand-made events, scores
back to events, the model's own rules (node = max over edges, negatives within a window,
symmetric when undirected), arguments, and the training script end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from training.artifacts.model_files import load_model, read_sidecar
from training.detectors.gnn import Layer2GNN, _corrupt
from training.errors import ConfigError, SchemaError
from training.features.layer2 import Layer2GraphBuilder
from training.features.scaling import MIN_STD, data_spec
from training.layers.layer2_batches import Layer2Data, fit_layer2_scaling
from training.train_layer2_gnn import default_config, main, train_layer2_gnn
from training.tests import synthetic_traffic as traffic
from training.tests.traffic_fixtures import six_events


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: one intra-op thread is faster, and immune to a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def six():
    return Layer2GraphBuilder().featurize(six_events())


def test_scaling_is_fitted_on_benign_edges_and_their_ends(six):
    # Edges: A->B (threat), B->C (benign) in window 0; A->C (unknown) in window 1.
    a = six.arrays
    scaling = fit_layer2_scaling(six).fitted["scaling"]
    np.testing.assert_allclose(scaling["edge"]["mean"], a["edge_attr"][1], rtol=1e-6)
    assert scaling["edge"]["std"] == [MIN_STD] * 18  # one edge: every deviation floored
    nodes = a["x"][[1, 2]]  # B and C of window 0
    np.testing.assert_allclose(scaling["node"]["mean"], nodes.mean(0), rtol=1e-6)
    np.testing.assert_allclose(scaling["node"]["std"], np.maximum(nodes.std(0), MIN_STD), rtol=1e-6)
    everything = fit_layer2_scaling(six, benign_only=False).fitted["scaling"]
    np.testing.assert_allclose(everything["edge"]["mean"], a["edge_attr"].mean(0), rtol=1e-6)
    np.testing.assert_allclose(everything["node"]["mean"], a["x"].mean(0), rtol=1e-6)


def test_model_spec_carries_the_data_spec(six):
    spec = fit_layer2_scaling(six)
    assert spec.layer == "layer2" and spec.config == six.spec.config
    assert data_spec(spec).fingerprint == six.spec.fingerprint != spec.fingerprint
    with pytest.raises(SchemaError, match="no fitted scaling"):
        Layer2Data(six, six.spec)
    other = Layer2GraphBuilder(window_seconds=60).featurize(six_events())
    with pytest.raises(SchemaError, match="another feature transform"):
        Layer2Data(other, spec)
    unknown = Layer2GraphBuilder(window_seconds=300, entity="user").featurize(six_events())
    with pytest.raises(ConfigError, match="no benign"):
        fit_layer2_scaling(unknown.subset(np.array([], dtype=np.int64)))


def test_batches_cut_windows_out_of_the_arrays(six):
    data = Layer2Data(six, fit_layer2_scaling(six))
    batch = data.batch(np.array([1, 0]))  # window 1 (A, C; A->C) first, then window 0
    assert batch.num_graphs == 2 and batch.window.tolist() == [1, 0]
    assert batch.ptr.tolist() == [0, 2, 5] and batch.batch.tolist() == [0, 0, 1, 1, 1]
    assert batch.edge_index.tolist() == [[0, 2, 3], [1, 3, 4]]
    scaled = data.tensors
    assert torch.equal(batch.x, scaled["x"][[3, 4, 0, 1, 2]])
    assert torch.equal(batch.edge_attr, scaled["edge_attr"][[2, 0, 1]])
    assert batch.edge_y.tolist() == [-1, 1, 0] and batch.fit_mask.tolist() == [False, False, True]
    # Standardized with the fitted values: the one benign edge becomes all zeros.
    assert torch.allclose(scaled["edge_attr"][1], torch.zeros(18), atol=1e-5)
    assert [b.window.tolist() for b in data.batches(1, training=True)] == [[0]]  # has B->C
    assert [b.window.tolist() for b in data.batches(5)] == [[0, 1]]
    assert data.labels().tolist() == [1, 0, -1] and data.fit_edges == 1
    all_edges = Layer2Data(six, fit_layer2_scaling(six), benign_only=False)
    assert all_edges.fit_edges == 3 and len(all_edges.batches(1, training=True)) == 2
    with pytest.raises(ConfigError, match="batch_size must be an integer >= 1, got 0"):
        data.batches(0)


def test_batches_shard_across_processes(office):
    train, _ = office
    data = Layer2Data(train, fit_layer2_scaling(train))
    shares = [[w for b in data.batches(3, shuffle=True, seed=7, rank=r, world_size=2)
               for w in b.window.tolist()] for r in (0, 1)]
    assert len(shares[0]) == len(shares[1]) == len(train) // 2
    assert not set(shares[0]) & set(shares[1])
    again = [w for b in data.batches(3, shuffle=True, seed=7, rank=0, world_size=2)
             for w in b.window.tolist()]
    assert again == shares[0]  # the same seed, the same order in every process
    with pytest.raises(ConfigError, match="needs a seed"):
        data.batches(3, shuffle=True, rank=0, world_size=2)
    with pytest.raises(ConfigError, match=r"rank must be in \[0, world_size=2\), got 2"):
        data.batches(3, rank=2, world_size=2)


def test_edge_scores_map_back_to_events(six):
    data = Layer2Data(six, fit_layer2_scaling(six))
    events = data.edge_events(np.array([10.0, 20.0, 30.0]))
    assert events["event_id"].tolist() == ["e1", "e2", "e3", "e4", "e5"]
    assert events["score"].tolist() == [10.0, 10.0, 10.0, 20.0, 30.0]
    assert events["event_row"].tolist() == [0, 1, 2, 3, 4]
    assert events["edge"].tolist() == [0, 0, 0, 1, 2]
    with pytest.raises(ConfigError, match=r"shape \(2,\); the graphs have 3 edges"):
        data.edge_events(np.zeros(2))


def test_node_score_is_the_maximum_over_its_edges(six):
    torch.manual_seed(0)
    model = Layer2GNN(hidden_dim=8).eval()
    data = Layer2Data(six, fit_layer2_scaling(six))
    edge = data.edge_scores(model)  # A->B, B->C | A->C
    node = data.node_scores(model)  # A, B, C | A, C
    assert edge.shape == (3,) and node.shape == (5,)
    expected = [edge[0], max(edge[0], edge[1]), edge[1], edge[2], edge[2]]
    np.testing.assert_allclose(node, expected, rtol=1e-6)


def test_negative_samples_stay_in_their_window(six):
    batch = Layer2Data(six, fit_layer2_scaling(six)).batch(np.array([0, 1]))
    torch.manual_seed(1)
    for _ in range(20):
        negative = _corrupt(batch)
        assert torch.equal(negative[0], batch.edge_index[0])
        assert torch.equal(batch.batch[negative[1]], batch.batch[negative[0]])


def test_undirected_model_ignores_edge_direction(six):
    torch.manual_seed(0)
    data = Layer2Data(six, fit_layer2_scaling(six))
    batch = data.batch(np.array([0]))
    flipped = batch.clone()
    flipped.edge_index = batch.edge_index.flip(0)
    undirected = Layer2GNN(hidden_dim=8, directed=False).eval()
    directed = Layer2GNN(hidden_dim=8).eval()
    with torch.no_grad():
        assert torch.allclose(undirected.anomaly_score(batch), undirected.anomaly_score(flipped),
                              atol=1e-6)
        assert not torch.allclose(directed.anomaly_score(batch), directed.anomaly_score(flipped))


def test_gat_encoder_and_supervised_head(six):
    torch.manual_seed(0)
    data = Layer2Data(six, fit_layer2_scaling(six, benign_only=False), benign_only=False)
    batch = data.batch(np.array([0, 1]))
    model = Layer2GNN(hidden_dim=16, conv="gat", supervised=True, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = model.training_step(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        p = model.anomaly_score(batch)  # P(threat) per edge: A->B threat, B->C benign
    assert ((p >= 0) & (p <= 1)).all() and p[0] > 0.9 > 0.1 > p[1]


@pytest.mark.parametrize("kwargs, message", [
    ({"node_dim": 0}, "node_dim must be an integer >= 1, got 0"),
    ({"hidden_dim": 2.0}, "hidden_dim must be an integer >= 1, got 2.0"),
    ({"num_layers": 7}, r"num_layers must be an integer in \[1, 6\], got 7"),
    ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\), got 1.0"),
    ({"existence_weight": -1}, "existence_weight must be a number >= 0.0, got -1"),
    ({"conv": "gcn"}, "conv must be one of gat, sage, got 'gcn'"),
    ({"directed": 1}, "directed must be True or False, got 1"),
])
def test_arguments_are_validated(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Layer2GNN(**kwargs)
    Layer2GNN(num_layers=1, dropout=0.0, existence_weight=0)  # the edges are allowed


@pytest.fixture(scope="module")
def office():
    """Small office graphs: train (benign), val (with a fan-out, labeled)."""
    builder = Layer2GraphBuilder()
    train = builder.featurize(traffic.table(traffic.office_rows(1, hosts=6, minutes=60)))
    val = builder.featurize(traffic.table(traffic.office_rows(2, hosts=6, minutes=30)
                                      + traffic.fan_out_rows(3, attacker=1, minute=10, peers=20)))
    return train, val


def test_train_layer2_gnn_writes_a_loadable_model(office, tmp_path):
    train, val = office
    config = default_config(num_epochs=3, batch_size=4, checkpoint_dir=str(tmp_path),
                            log_dir=str(tmp_path), tensorboard=False, num_threads=1)
    model, results = train_layer2_gnn(train, val, config, hidden_dim=16)
    assert results["epochs_trained"] == 3 and results["train_units"] == train.stats["edges"]
    assert results["threshold"]["method"] == "best_f1"  # the validation edges have both labels
    loaded = load_model(tmp_path / "layer2_gnn_best.pt", expected_spec=results["feature_spec"])
    assert loaded.model.init_args["hidden_dim"] == 16
    assert loaded.threshold == results["threshold"]["value"]
    data = Layer2Data(val, loaded.feature_spec)
    np.testing.assert_array_equal(data.edge_scores(loaded.model), data.edge_scores(model.eval()))
    sidecar = read_sidecar(tmp_path / "layer2_gnn_best.pt")
    assert json.loads(sidecar["feature_spec"])["fitted"]["scaling"]["edge"]["std"]


def test_unlabeled_graphs_train_on_every_edge(office, tmp_path):
    train, _ = office
    unlabeled = train.subset(np.arange(len(train)))
    unlabeled.arrays["edge_y"][:] = -1
    config = default_config(num_epochs=1, checkpoint_dir=str(tmp_path), log_dir=str(tmp_path),
                            tensorboard=False, num_threads=1)
    _, results = train_layer2_gnn(unlabeled, None, config, hidden_dim=8)
    assert results["train_units"] == train.stats["edges"] and results["threshold"] is None
    with pytest.raises(ConfigError, match="no benign"):
        train_layer2_gnn(unlabeled, None, config, benign_only=True)


def test_resume_continues_exactly(office, tmp_path):
    train, val = office

    def run(folder: str, epochs: int, resume: bool):
        config = default_config(num_epochs=epochs, batch_size=4, log_dir=str(tmp_path),
                                checkpoint_dir=str(tmp_path / folder), tensorboard=False,
                                num_threads=1, early_stopping_patience=None, restore_best=False)
        return train_layer2_gnn(train, val, config, hidden_dim=8, resume=resume)[0]

    straight = run("straight", 3, False)
    run("stopped", 2, False)
    resumed = run("stopped", 3, True)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_command_line(office, tmp_path, capsys):
    train, val = office
    train_path, val_path = train.save(tmp_path / "train.npz"), val.save(tmp_path / "val.npz")
    code = main(["--train-data", str(train_path), "--val_data", str(val_path), "--num-epochs", "2",
                 "--batch_size", "4", "--hidden-dim", "8", "--conv", "sage", "--checkpoint_dir",
                 str(tmp_path / "ck"), "--log-dir", str(tmp_path), "--no-tensorboard"])
    assert code == 0 and "trained 2 epochs on" in capsys.readouterr().out
    assert load_model(tmp_path / "ck/layer2_gnn_best.pt").model.init_args["conv"] == "sage"
    other = Layer2GraphBuilder(window_seconds=60).featurize(six_events()).save(tmp_path / "other.npz")
    code = main(["--train_data", str(train_path), "--val_data", str(other), "--checkpoint_dir",
                 str(tmp_path / "ck")])
    # data made by another transform: a pipeline error (exit 1), as for every command
    assert code == 1 and "another feature transform" in capsys.readouterr().err
