"""Layer1VAE: sizes, exact losses on hand-made weights, score direction, the score's error
weights, file compatibility."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from training.artifacts.model_files import load_model, save_model
from training.detectors import DETECTORS, detector_class
from training.detectors.vae import Layer1VAE
from training.errors import ConfigError, TrainingError


@pytest.fixture(autouse=True)
def one_thread():
    # Two intra-op threads on a loaded 2-core machine run small models ~20x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _zeroed(**kwargs) -> Layer1VAE:
    model = Layer1VAE(**kwargs).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    return model


def test_default_architecture_is_128_96_96_64() -> None:
    model = Layer1VAE()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == {
        "encoder.0.weight": (96, 128), "encoder.0.bias": (96,),
        "encoder.3.weight": (96, 96), "encoder.3.bias": (96,),
        "fc_mean.weight": (64, 96), "fc_mean.bias": (64,),
        "fc_logvar.weight": (64, 96), "fc_logvar.bias": (64,),
        "decoder.0.weight": (96, 64), "decoder.0.bias": (96,),
        "decoder.3.weight": (96, 96), "decoder.3.bias": (96,),
        "output.weight": (128, 96), "output.bias": (128,),
        "error_weights": (0,),  # the score's per-dim weights, fitted when training ends
    }
    assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)] == [0.2] * 4
    assert model.init_args == {"input_dim": 128, "hidden_dim": 96, "latent_dim": 64,
                               "dropout": 0.2, "num_hidden_layers": 2, "beta": 0.01,
                               "reconstruction": "mse", "score": "reconstruction",
                               "error_floor": None}
    assert DETECTORS["Layer1VAE"] is Layer1VAE is detector_class("Layer1VAE")


def test_every_size_is_configurable() -> None:
    model = Layer1VAE(input_dim=10, hidden_dim=[8, 6, 4], latent_dim=3, dropout=0.0).eval()
    x = torch.rand(5, 10)
    recon, mean, logvar = model(x)
    assert recon.shape == (5, 10) and mean.shape == logvar.shape == (5, 3)
    assert [m.out_features for m in model.encoder if isinstance(m, torch.nn.Linear)] == [8, 6, 4]
    assert [m.out_features for m in model.decoder if isinstance(m, torch.nn.Linear)] == [4, 6, 8]
    assert model.get_latent(x).shape == (5, 3)
    assert model.anomaly_score(x).shape == (5,)
    three = Layer1VAE(hidden_dim=32, num_hidden_layers=3)
    assert sum(isinstance(m, torch.nn.Linear) for m in three.encoder) == 3
    assert ((recon > 0) & (recon < 1)).all()


@pytest.mark.parametrize("kwargs, message", [
    ({"dropout": 1.0}, "dropout must be in [0, 1), got 1.0"),
    ({"dropout": -0.1}, "dropout must be in [0, 1), got -0.1"),
    ({"latent_dim": 0}, "latent_dim must be >= 1, got 0"),
    ({"hidden_dim": []}, "hidden_dim must be >= 1"),
    ({"hidden_dim": 0}, "hidden_dim must be >= 1"),
    ({"beta": -1.0}, "beta must be >= 0, got -1.0"),
    ({"reconstruction": "l1"}, "reconstruction must be one of mse, bce, got 'l1'"),
    ({"score": "x"}, "score must be one of reconstruction, elbo, got 'x'"),
])
def test_invalid_arguments_name_parameter_rule_and_value(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)")):
        Layer1VAE(**kwargs)
    Layer1VAE(dropout=0.0, beta=0.0)  # the edges that are allowed


def test_losses_exact_on_zero_weights() -> None:
    # All weights zero: mean = logvar = 0 (KL 0), output sigmoid(0) = 0.5 for every feature.
    model = _zeroed(input_dim=4, latent_dim=3)
    x = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.5, 0.0]])
    metrics = model.validation_step(x)
    # per event: 4 * 0.25 = 1.0, and 0.25 * 3 + 0 = 0.75 -> mean 0.875
    assert metrics["recon"].item() == pytest.approx(0.875)
    assert metrics["kl"].item() == 0.0
    assert model.anomaly_score(x).tolist() == pytest.approx([1.0, 0.75])
    bce = _zeroed(input_dim=4, latent_dim=3, reconstruction="bce")
    assert bce.anomaly_score(x).tolist() == pytest.approx([4 * math.log(2)] * 2)


def test_kl_term_and_beta_exact() -> None:
    model = _zeroed(input_dim=4, latent_dim=3, beta=2.0, score="elbo")
    with torch.no_grad():
        model.fc_mean.bias.fill_(1.0)  # mean 1, logvar 0: KL = 0.5 * 1 per latent dim
    x = torch.zeros(2, 4)
    metrics = model.validation_step(x)
    assert metrics["kl"].item() == pytest.approx(1.5)
    assert metrics["loss"].item() == pytest.approx(1.0 + 2.0 * 1.5)
    # the negative-ELBO score counts the KL with weight 1 whatever beta is
    assert model.anomaly_score(x).tolist() == pytest.approx([2.5, 2.5])
    # a batch may be a tuple whose first item is the features
    assert model.anomaly_score((x, torch.zeros(2))).tolist() == pytest.approx([2.5, 2.5])


def test_score_is_deterministic_and_train_step_samples() -> None:
    torch.manual_seed(0)
    model = Layer1VAE(input_dim=8, hidden_dim=8, latent_dim=4, dropout=0.0)
    x = torch.rand(6, 8)
    model.train()
    assert not torch.equal(model.training_step(x), model.training_step(x))  # z is sampled
    assert torch.equal(model.anomaly_score(x), model.anomaly_score(x))  # mean code


def test_higher_score_for_events_unlike_training_data() -> None:
    torch.manual_seed(0)
    model = Layer1VAE(input_dim=16, hidden_dim=16, latent_dim=4, dropout=0.0)
    benign = torch.rand(256, 16) * 0.2
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(150):
        optimizer.zero_grad()
        model.training_step(benign).backward()
        optimizer.step()
    model.eval()
    odd = 0.8 + torch.rand(32, 16) * 0.2
    with torch.no_grad():
        assert model.anomaly_score(odd).min() > model.anomaly_score(benign).max()


def test_seed_step5_loading_and_sidecar_round_trip(tmp_path) -> None:
    model = Layer1VAE()
    save_model(model, tmp_path / "layer1_vae_best.pt", threshold=1.5)
    again = Layer1VAE()  # the seed's step 5, as written
    again.load_state_dict(torch.load(tmp_path / "layer1_vae_best.pt"))
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    custom = Layer1VAE(hidden_dim=[32, 16], latent_dim=8, beta=0.5)
    save_model(custom, tmp_path / "custom.pt")
    loaded = load_model(tmp_path / "custom.pt").model
    assert loaded.init_args == {**custom.init_args, "hidden_dim": [32, 16]}
    assert loaded.fc_mean.out_features == 8 and loaded.beta == 0.5


@pytest.mark.parametrize("reconstruction", ["mse", "bce"])
def test_eval_scoring_shortcut_equals_the_full_reconstruction_term(reconstruction) -> None:
    torch.manual_seed(0)
    model = Layer1VAE(dropout=0.3, reconstruction=reconstruction).eval()
    x = torch.rand(64, 128)
    with torch.no_grad():
        recon, _ = model._terms(x, sample=False)
        # The same kernels on the same inputs: equal to the bit, for a batch and for one event.
        assert torch.equal(model.anomaly_score(x), recon)
        assert torch.equal(model.anomaly_score(x[:1]), model._terms(x[:1], sample=False)[0])
        elbo = Layer1VAE(dropout=0.3, reconstruction=reconstruction, score="elbo")
        elbo.load_state_dict(model.state_dict())
        recon, kl = elbo.eval()._terms(x, sample=False)
        assert torch.allclose(elbo.anomaly_score(x), recon + kl)


def _two_mode_events(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 24) event-like vectors: most events set one of 4 service and 2 port-kind one-hot dims
    with volumes near 0.3; a rare benign mode (5%) sets 2 other services and port kinds with
    volumes near 0.7 (as 44-1's benign flows from well-known ports). Returns (x, rare mask)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 24), np.float32)
    rows = np.arange(n)
    rare = rng.random(n) < 0.05
    x[rows, np.where(rare, 4 + rng.integers(0, 2, n), rng.integers(0, 4, n))] = 1
    x[rows, np.where(rare, 10, 8) + rng.integers(0, 2, n)] = 1
    x[:, 16:20] = np.where(rare, 0.7, 0.3)[:, None] + 0.05 * rng.standard_normal((n, 4))
    return torch.from_numpy(np.clip(x, 0, 1)), torch.from_numpy(rare)


def _trained(model: Layer1VAE, x: torch.Tensor, epochs: int = 15) -> Layer1VAE:
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        for rows in torch.randperm(len(x)).split(64):
            optimizer.zero_grad()
            model.training_step(x[rows]).backward()
            optimizer.step()
    return model.eval()


def test_fitted_error_weights_weigh_most_the_dims_benign_events_never_set() -> None:
    torch.manual_seed(0)
    model = _trained(Layer1VAE(input_dim=24, hidden_dim=32, latent_dim=8, dropout=0.0,
                               error_floor=0.01), _two_mode_events(0, 2000)[0])
    val, _ = _two_mode_events(2, 500)
    with torch.no_grad():
        plain = model.anomaly_score(val)
        model.fit_after_training([val[:200], (val[200:], None)])  # tensors or (x, y) batches
        mean = (model.reconstruct(val) - val).pow(2).mean(dim=0)
        weighted = model.anomaly_score(val)
        terms = model.feature_terms(val)
    expected = 1.0 / (mean + 0.01)
    assert torch.allclose(model.error_weights, expected * mean.sum() / (mean * expected).sum(),
                          rtol=1e-4)
    assert float(weighted.mean()) == pytest.approx(float(plain.mean()), rel=1e-4)
    assert torch.allclose(terms.sum(dim=1), weighted, atol=1e-5)
    never = [6, 7, 12, 13, 14, 15, 20, 21, 22, 23]  # no benign event sets these
    seen = [0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 16, 17, 18, 19]
    assert model.error_weights[never].min() > model.error_weights[seen].max()
    unweighted = Layer1VAE(input_dim=24, hidden_dim=32, latent_dim=8)  # the default: none
    unweighted.fit_after_training([val])
    assert unweighted.error_weights.numel() == 0
    broken = val.clone()
    broken[3, 5] = float("nan")
    with pytest.raises(TrainingError, match="NaN or inf"):
        model.fit_after_training([broken])
    for floor in (0.0, float("inf")):
        with pytest.raises(ConfigError, match="error_floor must be > 0 and finite, or None"):
            Layer1VAE(error_floor=floor)


def test_a_file_saved_before_the_error_weights_scores_with_the_plain_sum(tmp_path) -> None:
    torch.manual_seed(0)
    model, x = Layer1VAE(error_floor=0.01).eval(), torch.rand(32, 128)
    with torch.no_grad():
        plain = model.anomaly_score(x)
    old = Layer1VAE().eval()  # as a release before the weights saved it: no buffer, no argument
    old.load_state_dict(model.state_dict())
    del old._buffers["error_weights"]
    old.init_args.pop("error_floor")
    save_model(old, tmp_path / "old.pt", threshold=1.0)
    assert "error_weights" not in torch.load(tmp_path / "old.pt", weights_only=True)
    loaded = load_model(tmp_path / "old.pt").model
    with torch.no_grad():
        assert loaded.error_weights.numel() == 0 and torch.equal(loaded.anomaly_score(x), plain)
        model.fit_after_training([x])
        save_model(model, tmp_path / "new.pt", threshold=1.0)
        again = load_model(tmp_path / "new.pt").model
        assert torch.equal(again.error_weights, model.error_weights)
        assert torch.equal(again.anomaly_score(x), model.anomaly_score(x))
        assert not torch.equal(again.anomaly_score(x), plain)


@pytest.mark.parametrize("beta, collapses", [(None, False), (1.0, True)])
def test_the_default_kl_weight_keeps_a_rare_benign_mode_below_a_novel_event(beta, collapses):
    # With beta 1 (the default before issue 21) the squared error loses to the KL term: no
    # latent dim is used, every event is decoded alike, and the rare benign mode, far from the
    # mean, outscores events that set a dim training never set (medians 3.05 and 2.24). The
    # default (0.01) keeps a code (8 dims) and ranks them the right way round (0.14 and 1.01).
    torch.manual_seed(0)
    args = {} if beta is None else {"beta": beta}
    x, _ = _two_mode_events(0, 2000)
    model = _trained(Layer1VAE(input_dim=24, hidden_dim=32, latent_dim=8, dropout=0.0, **args), x)
    test, rare = _two_mode_events(1, 400)
    novel = test[~rare][:40].clone()
    novel[:, 12] = 1.0  # a flag no training event sets
    with torch.no_grad():
        mean, logvar = model.encode(x)
        used = int(((-0.5 * (1 + logvar - mean.pow(2) - logvar.exp())).mean(0) > 0.05).sum())
        rare_scores = model.anomaly_score(test[rare])
        novel_scores = model.anomaly_score(novel)
    assert (used == 0) == collapses
    assert bool(rare_scores.median() < novel_scores.median()) == (not collapses)
