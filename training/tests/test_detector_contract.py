"""The Detector contract, checked on every model by one parametrized suite.

Each case trains its detector through `LayerTrainer` on a small office network's benign traffic
(training/tests/synthetic_traffic.py), then scores held-out traffic of another seed into which a
realistic, in-range attack was injected:

| detector | unit | injected anomaly |
|---|---|---|
| Layer1VAE | event | a workstation uploading 1-3 GB per HTTPS flow |
| Layer2GNN | edge | a workstation opening SMB to 50 new peers within one 5-minute window |
| Layer3TCN | window | a workstation beaconing to one server every 60 s |

The row detectors (ECOD, kNN distance, isolation forest, the plain autoencoder) run on each of
the three cases, reading one row per unit from the same batches: the event vector, the edge in
its context (its features and both ends'), the target bucket.

Every model must give one finite score per unit, a finite loss (with gradients when it has
parameters; a detector fitted in one pass has none and trains one epoch), identical scores
after a save/load round trip through `training.artifacts.model_files`, and higher scores on the
injected attack than on the normal units.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
import torch

from training.artifacts.model_files import load_model, save_model
from training.detectors.base import Detector
from training.features.encoding import FeatureSpec
from training.tests import synthetic_traffic as traffic
from training.trainer.loop import LayerTrainer, TrainingConfig


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: one intra-op thread is faster, and immune to a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass
class Case:
    """A detector with its data: training and validation batches, and a scored test set."""

    model: Detector
    spec: FeatureSpec
    train: Iterable[Any]
    val: Iterable[Any]
    test: Iterable[Any]  # unshuffled batches covering the test units in order
    test_labels: np.ndarray  # per test unit: 1 injected anomaly, 0 normal
    units: Callable[[Any], int]  # units in one batch
    epochs: int
    batch_size: int


def _gnn_case() -> Case:
    from training.detectors.gnn import Layer2GNN
    from training.features.layer2 import Layer2GraphBuilder
    from training.layers.layer2_batches import Layer2Data, fit_layer2_scaling

    builder = Layer2GraphBuilder()
    train = builder.featurize(traffic.table(traffic.office_rows(1, hosts=16)))
    val = builder.featurize(traffic.table(traffic.office_rows(4, hosts=16, minutes=60)))
    test = builder.featurize(traffic.table(traffic.office_rows(2, hosts=16)
                                       + traffic.fan_out_rows(3, attacker=5, minute=60)))
    spec = fit_layer2_scaling(train)
    data = {name: Layer2Data(g, spec) for name, g in
            zip(("train", "val", "test"), (train, val, test))}
    return Case(Layer2GNN(node_dim=data["train"].node_dim, hidden_dim=32), spec,
                data["train"].batches(8, shuffle=True, training=True), data["val"].batches(64),
                data["test"].batches(64), test.arrays["edge_y"], lambda b: b.num_edges,
                epochs=25, batch_size=8)


def _tcn_case() -> Case:
    from training.detectors.tcn import Layer3TCN
    from training.features.layer3 import Layer3WindowBuilder
    from training.layers.layer3_batches import Layer3Data, fit_layer3_scaling

    builder = Layer3WindowBuilder()
    train = builder.featurize(traffic.table(traffic.office_rows(1, hosts=10, minutes=240)))
    val = builder.featurize(traffic.table(traffic.office_rows(4, hosts=16, minutes=60)))
    test = builder.featurize(traffic.table(traffic.office_rows(2, hosts=10, minutes=240)
                                       + traffic.beacon_rows(3, infected=4, first_minute=30,
                                                             count=180)))
    spec = fit_layer3_scaling(train)
    data = {name: Layer3Data(w, spec) for name, w in
            zip(("train", "val", "test"), (train, val, test))}
    return Case(Layer3TCN(channels=[16, 16, 16, 16]), spec,
                data["train"].batches(128, shuffle=True, training=True),
                data["val"].batches(1024), data["test"].batches(1024), test.labels,
                lambda b: b[0].shape[0], epochs=12, batch_size=128)


def _vae_case() -> Case:
    from training.detectors.vae import Layer1VAE
    from training.features.layer1 import Layer1Featurizer
    from training.trainer.batches import TensorBatches

    featurizer = Layer1Featurizer()

    def features(rows: list[dict]) -> tuple[torch.Tensor, np.ndarray]:
        table = traffic.table(rows)
        return (torch.from_numpy(featurizer.featurize(table)),
                table["is_threat"].to_numpy().astype(np.int64))

    train, _ = features(traffic.office_rows(1, hosts=8, minutes=120))
    val, _ = features(traffic.office_rows(4, hosts=8, minutes=30))
    test, labels = features(traffic.office_rows(2, hosts=8, minutes=120)
                            + traffic.exfiltration_rows(3, infected=4, minute=10))
    return Case(Layer1VAE(hidden_dim=64, latent_dim=16, dropout=0.1), featurizer.spec,
                TensorBatches(train, batch_size=256, shuffle=True),
                TensorBatches(val, batch_size=4096), TensorBatches(test, batch_size=4096),
                labels, lambda b: b.shape[0], epochs=10, batch_size=256)


# The row each row detector reads from each case's batches.
ROW_INPUTS = {"vae": "vector", "gnn": "edge_context", "tcn": "target"}


@functools.cache
def _base_data(base: str) -> Case:
    """A case's data, built once for the row detectors that share it."""
    return CASES[base]()


def _row_case(detector: str, base: str) -> Callable[[], Case]:
    def make() -> Case:
        from training.detectors.rows import row_detector, row_view

        case = _base_data(base)
        inputs = ROW_INPUTS[base]
        width = row_view(inputs).rows(next(iter(case.test))).shape[1]
        return replace(case, model=row_detector(detector)(input_dim=int(width), inputs=inputs))

    return make


CASES: dict[str, Callable[[], Case]] = {"vae": _vae_case, "gnn": _gnn_case, "tcn": _tcn_case}
CASES.update({f"{detector}-{base}": _row_case(detector, base)
              for detector in ("ecod", "knn", "iforest", "autoencoder")
              for base in ("vae", "gnn", "tcn")})


@pytest.fixture(scope="module", params=list(CASES))
def trained(request, tmp_path_factory) -> tuple[Case, LayerTrainer]:
    """The case's detector trained through LayerTrainer (once per detector)."""
    torch.manual_seed(0)
    case = CASES[request.param]()
    folder = tmp_path_factory.mktemp(request.param)
    config = TrainingConfig(model_name=request.param, num_epochs=case.epochs,
                            batch_size=case.batch_size, learning_rate=3e-3, seed=0,
                            checkpoint_dir=str(folder), log_dir=str(folder), tensorboard=False,
                            save_last_state=False, early_stopping_patience=None, num_threads=1)
    trainer = LayerTrainer(case.model, config=config, feature_spec=case.spec)
    trainer.train(case.train, case.val)
    return case, trainer


def scores(model: Detector, batches: Iterable[Any]) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat([model.anomaly_score(b) for b in batches])


def test_one_finite_score_per_unit(trained):
    case, _ = trained
    case.model.eval()
    for batch in case.test:
        with torch.no_grad():
            out = case.model.anomaly_score(batch)
        assert out.shape == (case.units(batch),) and out.dtype == torch.float32
        assert torch.isfinite(out).all()
    assert scores(case.model, case.test).shape == (len(case.test_labels),)


def test_loss_is_a_finite_scalar_with_gradients(trained):
    case, trainer = trained
    assert all(np.isfinite(m.train_loss) and np.isfinite(m.val_loss) for m in trainer.history)
    parameters = [p for p in case.model.parameters() if p.requires_grad]
    # A detector fitted in one pass has no parameters and trains exactly one epoch.
    assert len(trainer.history) == (case.epochs if parameters else 1) == min(
        case.epochs, case.model.max_epochs or case.epochs)
    case.model.train()
    loss = case.model.training_step(next(iter(case.train)))
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    assert not parameters or any(p.grad is not None and p.grad.abs().sum() > 0
                                 for p in parameters)
    case.model.zero_grad(set_to_none=True)


def test_save_load_round_trip_gives_identical_scores(trained, tmp_path):
    case, trainer = trained
    path = tmp_path / "model.pt"
    save_model(case.model, path, feature_spec=case.spec, threshold=trainer.threshold.value)
    loaded = load_model(path, expected_spec=case.spec)
    assert type(loaded.model) is type(case.model) and loaded.threshold == trainer.threshold.value
    assert loaded.feature_spec.fingerprint == case.spec.fingerprint
    assert torch.equal(scores(loaded.model, case.test), scores(case.model, case.test))


def test_scores_higher_on_the_injected_anomaly(trained):
    case, _ = trained
    s = scores(case.model, case.test).numpy()
    normal, attack = s[case.test_labels == 0], s[case.test_labels == 1]
    # Most attack units must stand above nearly all normal ones, not just on average.
    assert np.median(attack) > np.quantile(normal, 0.95), (np.median(attack),
                                                          np.quantile(normal, [0.5, 0.9, 0.99]))
