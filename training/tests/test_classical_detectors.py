"""The row detectors (training/detectors: ecod, knn, iforest, autoencoder, fitted, rows) on
small hand-made inputs: exact scores, per-feature terms, the fit through the one trainer,
argument checks, and choosing a detector per layer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.ensemble import IsolationForest

from training.detectors.autoencoder import RowAutoencoder
from training.detectors.ecod import ECOD
from training.detectors.iforest import IsolationForestDetector, average_path_length
from training.detectors.knn import KNNDistance
from training.detectors.rows import row_detector, row_detector_names, row_view
from training.errors import ConfigError, NotSupportedError, SchemaError
from training.trainer.batches import TensorBatches
from training.trainer.loop import LayerTrainer, TrainingConfig


def rows(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


# -- ECOD ---------------------------------------------------------------------------------------

def test_ecod_scores_are_the_tail_probabilities_of_the_training_values():
    # Column 0: 0, 1, 2, 3 (no skew: both tails count); column 1: 0, 0, 0, 10 (right skew).
    model = ECOD(input_dim=2).fit(np.array([[0, 0], [1, 0], [2, 0], [3, 10]], np.float32))
    terms = model.feature_terms(rows([[1.5, 0.0], [10.0, 20.0]])).double().numpy()
    # 1.5: 2 values <= it and 2 >= it, each tail (1 + 2) / 5; no skew: term = both tails.
    # 10: every value <= it (left 0), none >= it (right log 5): term = log 5.
    assert terms[:, 0] == pytest.approx([2 * math.log(5 / 3), math.log(5)])
    # Column 1 is right-skewed: term = max(right tail, mean of both tails).
    # 0: right (1 + 4) / 5 -> 0, left (1 + 3) / 5 -> log(5/4): max(0, log(5/4) / 2).
    # 20: right 1 / 5 -> log 5, left 0: max(log 5, log 5 / 2).
    assert terms[:, 1] == pytest.approx([math.log(5 / 4) / 2, math.log(5)])
    scores = model.anomaly_score(rows([[1.5, 0.0], [10.0, 20.0]])).double().numpy()
    assert scores == pytest.approx(terms.sum(axis=1), rel=1e-6)


def test_ecod_constant_feature_scores_any_other_value_on_both_sides():
    model = ECOD(input_dim=1).fit(np.zeros((4, 1), np.float32))
    assert model.anomaly_score(rows([[0.0], [1.0], [-1.0]])).numpy() == pytest.approx(
        [0.0, math.log(5), math.log(5)])


# -- kNN ----------------------------------------------------------------------------------------

def test_knn_score_is_the_squared_distance_to_the_kth_neighbour():
    reference = np.array([[0, 0], [1, 0], [0, 2], [5, 5]], np.float32)
    model = KNNDistance(input_dim=2, k=2).fit(reference)
    x = rows([[0, 0], [4, 5]])
    # (0, 0): neighbours at 0, 1, 2 -> the 2nd is (1, 0); (4, 5): (5, 5) at 1, (0, 2) at 5.
    assert model.anomaly_score(x).numpy() == pytest.approx([1.0, 25.0])
    np.testing.assert_allclose(model.feature_terms(x).numpy(), [[1.0, 0.0], [16.0, 9.0]])


def test_knn_needs_k_rows():
    with pytest.raises(ConfigError, match="needs at least 3 training rows, got 2"):
        KNNDistance(input_dim=1, k=3).fit(np.zeros((2, 1), np.float32))


# -- isolation forest ---------------------------------------------------------------------------

def test_isolation_forest_gives_scikit_learns_scores_exactly():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(700, 6)).astype(np.float32)
    test = (rng.normal(size=(300, 6)) * 1.5).astype(np.float32)
    model = IsolationForestDetector(input_dim=6, n_estimators=50, seed=7).fit(train)
    # The detector fits on its rows in lexicographic order, so that batch order does not matter.
    forest = IsolationForest(n_estimators=50, random_state=7).fit(
        train[np.lexsort(train.T[::-1])])
    assert np.array_equal(model.score_array(test), -forest.score_samples(test))
    assert np.array_equal(model.anomaly_score(torch.from_numpy(test)).numpy(),
                          (-forest.score_samples(test)).astype(np.float32))


def test_isolation_forest_fit_ignores_row_order():
    train = np.random.default_rng(1).normal(size=(300, 3)).astype(np.float32)
    first = IsolationForestDetector(input_dim=3, n_estimators=10, seed=0).fit(train)
    shuffled = IsolationForestDetector(input_dim=3, n_estimators=10, seed=0).fit(train[::-1])
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(),
                                                 shuffled.state_dict().values()))


def test_average_path_length_matches_the_paper():
    # c(n) = 2 H(n - 1) - 2 (n - 1) / n with H(i) ~ ln(i) + Euler's constant; c(1) = 0, c(2) = 1.
    assert average_path_length(np.array([1, 2, 256])) == pytest.approx(
        [0.0, 1.0, 2 * (math.log(255) + 0.5772156649) - 2 * 255 / 256])


def test_isolation_forest_has_no_per_feature_terms():
    model = IsolationForestDetector(input_dim=2, n_estimators=3, seed=0).fit(np.eye(2, dtype="f4"))
    with pytest.raises(NotSupportedError, match="no per-feature terms"):
        model.feature_terms(rows([[0, 0]]))


# -- the plain autoencoder ----------------------------------------------------------------------

def test_autoencoder_is_d_64_16_64_d_and_its_terms_sum_to_the_score():
    model = RowAutoencoder(input_dim=10)
    widths = [(m.in_features, m.out_features) for m in model.net if isinstance(m, torch.nn.Linear)]
    assert widths == [(10, 64), (64, 16), (16, 64), (64, 10)]
    x = torch.rand(5, 10)
    assert torch.allclose(model.feature_terms(x).sum(1), model.anomaly_score(x))


# -- one pass through the trainer ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["ecod", "knn", "iforest"])
def test_one_pass_detector_trains_one_epoch_through_layer_trainer(tmp_path, name):
    torch.manual_seed(0)
    train, val = torch.rand(500, 4), torch.rand(100, 4)
    model = row_detector(name)(input_dim=4, seed=0)
    config = TrainingConfig(model_name=name, num_epochs=30, batch_size=64, seed=0,
                            checkpoint_dir=str(tmp_path), log_dir=str(tmp_path),
                            tensorboard=False, save_last_state=False, num_threads=1)
    trainer = LayerTrainer(model, config=config)
    history = trainer.train(TensorBatches(train, batch_size=64, shuffle=True),
                            TensorBatches(val, batch_size=1000))
    assert len(history) == 1 and history[0].train_loss == 0.0
    assert list(model.parameters()) == []
    direct = row_detector(name)(input_dim=4, seed=0).fit(train)  # the same rows, in one array
    assert torch.equal(model.anomaly_score(val), direct.anomaly_score(val))
    assert history[0].val_loss == pytest.approx(float(direct.anomaly_score(val).mean()), rel=1e-5)
    assert trainer.threshold is not None and (tmp_path / f"{name}_best.pt").exists()


def test_unfitted_detector_refuses_to_score():
    with pytest.raises(ConfigError, match="ECOD is not fitted"):
        ECOD(input_dim=2).anomaly_score(rows([[0, 0]]))


def test_rows_of_the_wrong_width_are_refused():
    model = KNNDistance(input_dim=3).fit(np.zeros((5, 3), np.float32))
    with pytest.raises(SchemaError, match="reads rows of 3 'vector' features; this batch gives "
                                          r"shape \(2, 4\)"):
        model.anomaly_score(torch.zeros(2, 4))


@pytest.mark.parametrize("make, message", [
    (lambda: ECOD(input_dim=0), "input_dim must be an integer >= 1, got 0"),
    (lambda: ECOD(input_dim=1, inputs="edges"), "inputs must be one of vector, edge, "
                                                "edge_context, target, window, got 'edges'"),
    (lambda: ECOD(input_dim=1, seed=-1), "seed must be None or an integer >= 0, got -1"),
    (lambda: ECOD(input_dim=1, max_rows=0), "max_rows must be None or an integer >= 1, got 0"),
    (lambda: KNNDistance(input_dim=1, k=0), "k must be an integer >= 1, got 0"),
    (lambda: IsolationForestDetector(input_dim=1, n_estimators=0),
     "n_estimators must be an integer >= 1, got 0"),
    (lambda: IsolationForestDetector(input_dim=1, max_samples=0),
     "max_samples must be 'auto' or an integer >= 1, got 0"),
    (lambda: RowAutoencoder(input_dim=1, hidden=[]), "hidden must be a non-empty list"),
])
def test_arguments_are_checked(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_smallest_valid_arguments_are_accepted():
    ECOD(input_dim=1, seed=0, max_rows=1)
    KNNDistance(input_dim=1, k=1)
    IsolationForestDetector(input_dim=1, n_estimators=1, max_samples=1)
    RowAutoencoder(input_dim=1, hidden=[1])


def test_max_rows_subsamples_before_fitting():
    model = KNNDistance(input_dim=1, k=1, max_rows=10, seed=0).fit(
        np.arange(100, dtype=np.float32)[:, None])
    assert model.reference.shape == (10, 1)


# -- views and choosing a detector per layer ----------------------------------------------------

def test_views_read_rows_and_fit_masks_from_layer_batches():
    history, target = torch.arange(12.0).view(2, 3, 2), torch.tensor([[6.0, 7.0], [8.0, 9.0]])
    fit = torch.tensor([True, False])
    assert torch.equal(row_view("target").rows((history, target, fit)), target)
    assert torch.equal(row_view("window").rows((history, target, fit))[1],
                       torch.tensor([6.0, 7, 8, 9, 10, 11, 8, 9]))
    assert torch.equal(row_view("target").fit_mask((history, target, fit)), fit)
    assert row_view("vector").fit_mask(target) is None


def test_every_layer_offers_the_row_detectors():
    from training.layers.registry import get_layer

    assert row_detector_names() == ["autoencoder", "ecod", "iforest", "knn"]
    for name, own in (("layer1", "vae"), ("layer2", "gnn"), ("layer3", "tcn")):
        assert get_layer(name).detector_names() == [own, *row_detector_names()]


def test_build_detector_names_the_valid_choices():
    from training.layers.layer1 import Layer1

    units = type("Units", (), {"features": np.zeros((3, 128), np.float32)})()
    layer = Layer1()
    model = layer.build_detector(units, detector="iforest", n_estimators=5)
    assert isinstance(model, IsolationForestDetector) and model.input_dim == 128
    assert model.init_args["n_estimators"] == 5 and model.init_args["inputs"] == "vector"
    with pytest.raises(ConfigError, match="layer1 detector must be one of vae, autoencoder, "
                                          "ecod, iforest, knn, got 'svm'"):
        layer.build_detector(units, detector="svm")
    with pytest.raises(ConfigError, match="inputs of a layer1 knn must be one of vector, got "
                                          "'edge'"):
        layer.build_detector(units, detector="knn", inputs="edge")
    with pytest.raises(ConfigError, match="ecod takes seed, max_rows .*not hidden_dim"):
        layer.build_detector(units, detector="ecod", hidden_dim=3)
