"""Layer-3 TCN and its data: causality and receptive field, the exact score and loss, scaling
and batches on the six hand-made events, scores back to events, arguments, and the training
script end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.artifacts.model_files import load_model
from training.detectors.tcn import Layer3TCN
from training.errors import ConfigError, SchemaError
from training.features.layer3 import Layer3WindowBuilder
from training.features.scaling import MIN_STD
from training.layers.layer3_batches import Layer3Data, fit_layer3_scaling
from training.train_layer3_tcn import default_config, main, train_layer3_tcn
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
    # Windows, by entity then time: A minutes 0 (benign), 1 (threat), 2 (unknown), 6
    # (unknown); B minute 3 (benign).
    return Layer3WindowBuilder(history=3).featurize(six_events())


def test_convolutions_are_causal_with_the_stated_receptive_field():
    torch.manual_seed(0)
    model = Layer3TCN(input_dim=2, channels=[4, 4], kernel_size=2, dilations=[1, 2]).eval()
    assert model.receptive_field == 1 + 2 * 1 * 3 == 7
    x = torch.randn(3, 12, 2)
    changed = x.clone()
    changed[:, 8:] += 5.0  # the future of step 7
    with torch.no_grad():
        before = model.blocks(x.transpose(1, 2))
        after = model.blocks(changed.transpose(1, 2))
        assert torch.equal(before[:, :, :8], after[:, :, :8]) and not torch.equal(before, after)
        old = x.clone()
        old[:, :5] -= 5.0  # older than the receptive field of the last step (steps 5..11)
        assert torch.equal(model(old), model(x))
        old[:, 5] -= 5.0
        assert not torch.equal(model(old), model(x))


def test_score_and_loss_are_the_forecast_error():
    model = Layer3TCN(input_dim=3, channels=[4]).eval()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([1.0, 2.0, 3.0]))  # forecast: always (1, 2, 3)
    history = torch.randn(2, 5, 3)
    target = torch.tensor([[1.0, 2.0, 3.0], [2.0, 0.0, 3.0]])
    with torch.no_grad():
        assert model.anomaly_score((history, target)).tolist() == pytest.approx([0.0, 5 / 3])
        assert model.training_step((history, target)).item() == pytest.approx(5 / 6)
        fit = torch.tensor([False, True])
        assert model.training_step((history, target, fit)).item() == pytest.approx(5 / 3)
        assert model.training_step((history, target, ~fit)).item() == 0.0
    assert model.batch_size_of((history, target, fit)) == 1
    assert model.batch_size_of((history, target)) == 2


def test_scaling_is_fitted_on_benign_targets(six):
    scaling = fit_layer3_scaling(six).fitted["scaling"]["bucket"]
    benign = six.target[[0, 4]]  # A minute 0, B minute 3
    np.testing.assert_allclose(scaling["mean"], benign.mean(0), rtol=1e-6)
    np.testing.assert_allclose(scaling["std"], np.maximum(benign.std(0), MIN_STD), rtol=1e-6)
    everything = fit_layer3_scaling(six, benign_only=False).fitted["scaling"]["bucket"]
    np.testing.assert_allclose(everything["mean"], six.target.mean(0), rtol=1e-6)
    with pytest.raises(ConfigError, match="no benign window"):
        fit_layer3_scaling(six.subset(np.array([1, 2])))


def test_data_scales_histories_and_targets_alike(six):
    spec = fit_layer3_scaling(six)
    data = Layer3Data(six, spec)
    mean = np.asarray(spec.fitted["scaling"]["bucket"]["mean"])
    std = np.asarray(spec.fitted["scaling"]["bucket"]["std"])
    np.testing.assert_allclose(data.target.numpy(), (six.target - mean) / std, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(data.history.numpy(), (six.X - mean) / std, rtol=1e-5, atol=1e-6)
    (history, target, fit), = data.batches(10)
    assert history.shape == (5, 3, 11) and fit.tolist() == [True, False, False, False, True]
    (_, train_target, train_fit), = data.batches(10, training=True)
    assert torch.equal(train_target, data.target[[0, 4]]) and train_fit.all()
    assert data.labels().tolist() == [0, 1, -1, -1, 0]
    with pytest.raises(SchemaError, match="another feature transform"):
        Layer3Data(Layer3WindowBuilder(history=4).featurize(six_events()), spec)
    with pytest.raises(SchemaError, match="no fitted scaling"):
        Layer3Data(six, six.spec)


def test_window_scores_map_back_to_target_events(six):
    data = Layer3Data(six, fit_layer3_scaling(six))
    events = data.window_events(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert events["event_id"].tolist() == ["e1", "e2", "e3", "e5", "e4"]
    assert events["score"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert events["event_row"].tolist() == [0, 1, 2, 4, 3]
    with pytest.raises(ConfigError, match=r"shape \(4,\); there are 5 windows"):
        data.window_events(np.zeros(4))


@pytest.mark.parametrize("kwargs, message", [
    ({"input_dim": 0}, "input_dim must be an integer >= 1, got 0"),
    ({"channels": []}, r"channels must be a non-empty list of integers >= 1, got \[\]"),
    ({"channels": [8, 0]}, "got \\[8, 0\\]"),
    ({"kernel_size": 1}, "kernel_size must be an integer >= 2, got 1"),
    ({"channels": [8, 8], "dilations": [1]}, "dilations must have one entry per block \\(2 "
                                             "channels\\), got 1"),
    ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\), got 1.0"),
])
def test_arguments_are_validated(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Layer3TCN(**kwargs)
    assert Layer3TCN(channels=[8, 8, 8]).init_args["dilations"] == [1, 2, 4]


@pytest.fixture(scope="module")
def office():
    """Small office windows: train (benign), val (with a beacon, labeled)."""
    builder = Layer3WindowBuilder(history=10)
    train = builder.featurize(traffic.table(traffic.office_rows(1, hosts=6, minutes=90)))
    beacon = traffic.beacon_rows(3, infected=1, first_minute=0, count=40)
    val = builder.featurize(traffic.table(traffic.office_rows(2, hosts=6, minutes=40) + beacon))
    return train, val


def test_train_layer3_tcn_writes_a_loadable_model(office, tmp_path):
    train, val = office
    config = default_config(num_epochs=3, batch_size=64, checkpoint_dir=str(tmp_path),
                            log_dir=str(tmp_path), tensorboard=False, num_threads=1)
    model, results = train_layer3_tcn(train, val, config, channels=[8, 8], dropout=0.0)
    assert results["epochs_trained"] == 3 and results["train_units"] == len(train)
    assert results["threshold"]["method"] == "best_f1"  # the validation windows have both labels
    loaded = load_model(tmp_path / "layer3_tcn_best.pt", expected_spec=results["feature_spec"])
    assert loaded.model.init_args["channels"] == [8, 8]
    assert loaded.threshold == results["threshold"]["value"]
    data = Layer3Data(val, loaded.feature_spec)
    np.testing.assert_array_equal(data.scores(loaded.model), data.scores(model.eval()))


def test_resume_continues_exactly(office, tmp_path):
    train, val = office

    def run(folder: str, epochs: int, resume: bool):
        config = default_config(num_epochs=epochs, batch_size=64, log_dir=str(tmp_path),
                                checkpoint_dir=str(tmp_path / folder), tensorboard=False,
                                num_threads=1, early_stopping_patience=None, restore_best=False)
        return train_layer3_tcn(train, val, config, channels=[8, 8], resume=resume)[0]

    straight = run("straight", 3, False)
    run("stopped", 2, False)
    resumed = run("stopped", 3, True)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_command_line(office, tmp_path, capsys):
    train, val = office
    train_path, val_path = train.save(tmp_path / "train.npz"), val.save(tmp_path / "val.npz")
    code = main(["--train-data", str(train_path), "--val_data", str(val_path), "--num-epochs", "2",
                 "--channels", "8", "8", "--dilations", "1", "3",
                 "--checkpoint-dir", str(tmp_path / "ck"), "--log_dir", str(tmp_path),
                 "--no_tensorboard"])
    assert code == 0 and "trained 2 epochs on" in capsys.readouterr().out
    args = load_model(tmp_path / "ck/layer3_tcn_best.pt").model.init_args
    assert args["channels"] == [8, 8] and args["dilations"] == [1, 3]
    code = main(["--train_data", str(train_path), "--channels", "8", "8", "8", "--dilations", "1",
                 "--checkpoint_dir", str(tmp_path / "ck")])
    assert code == 2 and "dilations must have one entry per block" in capsys.readouterr().err
