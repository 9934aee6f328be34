"""LayerTrainer, TrainingConfig, callbacks and TensorBatches on small hand-made problems."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from training.artifacts.model_files import load_model
from training.detectors.vae import Layer1VAE
from training.errors import CheckpointError, ConfigError, TrainingError
from training.evaluation.thresholds import calibrate_threshold
from training.trainer.batches import TensorBatches
from training.trainer.callbacks import Callback, EarlyStopping
from training.trainer.loop import LayerTrainer, TrainingConfig, TrainingMetrics
from training.trainer.resume import load_state


@pytest.fixture(autouse=True)
def one_thread():
    # Two intra-op threads on a loaded 2-core machine run small models ~20x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def config(tmp_path, **changes) -> TrainingConfig:
    base = dict(model_name="m", layer_name="layer1", checkpoint_dir=str(tmp_path / "ck"),
                log_dir=str(tmp_path / "logs"), tensorboard=False, seed=0, num_epochs=3,
                device="cpu")
    return TrainingConfig(**{**base, **changes})


def small_vae() -> Layer1VAE:
    return Layer1VAE(input_dim=8, hidden_dim=8, latent_dim=2, dropout=0.0)


def data(n: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 8, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------- TensorBatches

def test_batches_in_order_with_last_partial_batch() -> None:
    x, y = torch.arange(10.0).reshape(10, 1), torch.arange(10)
    batches = list(TensorBatches(x, y, batch_size=4))
    assert [b[1].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(TensorBatches(x, batch_size=4)) == 3
    dropped = TensorBatches(x, batch_size=4, drop_last=True)
    assert len(dropped) == 2 and [b.shape[0] for b in dropped] == [4, 4]
    assert isinstance(next(iter(TensorBatches(x, batch_size=4))), torch.Tensor)


def test_shuffle_is_a_permutation_per_epoch_and_reproducible() -> None:
    x = torch.arange(20)
    batches = TensorBatches(x, x * 10, batch_size=6, shuffle=True, seed=3)
    first = torch.cat([b[0] for b in batches])
    second = torch.cat([b[0] for b in batches])
    assert sorted(first.tolist()) == list(range(20)) == sorted(second.tolist())
    assert first.tolist() != second.tolist()
    assert all(torch.equal(b[1], b[0] * 10) for b in batches)  # rows stay aligned
    again = TensorBatches(x, x * 10, batch_size=6, shuffle=True, seed=3)
    state = again.state_dict()
    assert torch.cat([b[0] for b in again]).tolist() == first.tolist()
    again.load_state_dict(state)
    assert torch.cat([b[0] for b in again]).tolist() == first.tolist()


def test_shards_are_disjoint_and_equal_sized() -> None:
    x = torch.arange(11)
    shards = [torch.cat(list(TensorBatches(x, batch_size=2, shuffle=True, seed=1, rank=r,
                                           world_size=2))) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 5
    assert not set(shards[0].tolist()) & set(shards[1].tolist())
    assert len(TensorBatches(x, batch_size=2, rank=1, world_size=2)) == 3


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
    ({"batch_size": 2, "rank": 2, "world_size": 2}, r"rank must be in \[0, world_size=2\), got 2"),
    ({"batch_size": 2, "world_size": 2, "shuffle": True}, "needs a seed"),
])
def test_batches_validate_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TensorBatches(torch.zeros(4), **kwargs)
    with pytest.raises(ConfigError, match=r"same length along dim 0, got \[4, 3\]"):
        TensorBatches(torch.zeros(4), torch.zeros(3), batch_size=1)


# ---------------------------------------------------------------- configuration

def test_config_defaults_are_the_original_ones_and_round_trip() -> None:
    cfg = TrainingConfig("layer1_vae", "layer1")
    assert (cfg.batch_size, cfg.num_epochs, cfg.learning_rate, cfg.weight_decay, cfg.optimizer,
            cfg.lr_scheduler, cfg.gradient_clip_value, cfg.early_stopping_patience,
            cfg.early_stopping_min_delta, cfg.save_best_only, cfg.save_frequency,
            cfg.use_amp) == (32, 100, 1e-3, 1e-5, "adam", "reduce_on_plateau", 1.0, 10, 1e-4,
                             True, 5, True)
    assert TrainingConfig.from_dict(json.loads(cfg.to_json())) == cfg
    assert TrainingConfig(lr_scheduler="ReduceLROnPlateau").lr_scheduler == "reduce_on_plateau"
    with pytest.raises(ConfigError, match="unknown TrainingConfig field"):
        TrainingConfig.from_dict({"batchsize": 3})


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
    ({"learning_rate": 0.0}, "learning_rate must be > 0, got 0.0"),
    ({"optimizer": "rmsprop"}, "optimizer must be one of adam, adamw, sgd, got 'rmsprop'"),
    ({"lr_scheduler": "cyclic"}, "lr_scheduler must be one of"),
    ({"scheduler_factor": 1.0}, r"scheduler_factor must be in \(0, 1\), got 1.0"),
    ({"mode": "up"}, "mode must be 'min' or 'max', got 'up'"),
    ({"model_name": "a/b"}, "model_name must be a non-empty file-name stem"),
    # a number as text failed in a comparison, naming no field (trial Q)
    ({"num_epochs": "3"}, "num_epochs must be a number, got '3'"),
    ({"learning_rate": True}, "learning_rate must be a number, got True"),
])
def test_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainingConfig(**kwargs)


def test_early_stopping_counts_epochs_without_improvement_beyond_min_delta() -> None:
    stop = EarlyStopping(patience=2, min_delta=0.1)
    # 0.95 and 0.9 do not improve on 1.0 by more than 0.1; 0.85 does.
    assert [stop(v) for v in [1.0, 0.95, 0.85, 0.8, 0.76]] == [False, False, False, False, True]
    assert stop.best == 0.85
    up = EarlyStopping(patience=1, mode="max")
    assert [up(v) for v in [1.0, 2.0, 2.0]] == [False, False, True]
    with pytest.raises(ConfigError, match="patience must be >= 1, got 0"):
        EarlyStopping(patience=0)


# --------------------------------------------------------------------- training

class Recorder(Callback):
    def __init__(self) -> None:
        self.events: list[str] = []

    def on_train_start(self, trainer):
        self.events.append("train_start")

    def on_epoch_start(self, trainer, epoch):
        self.events.append(f"epoch_start {epoch}")

    def on_validation_end(self, trainer, epoch, metrics):
        self.events.append(f"validation_end {epoch} {sorted(metrics)}")

    def on_epoch_end(self, trainer, metrics):
        self.events.append(f"epoch_end {metrics.epoch} improved={trainer.improved}")

    def on_train_end(self, trainer, history):
        self.events.append(f"train_end {len(history)}")

    def teardown(self, trainer):
        self.events.append("teardown")


def test_callback_events_in_order_and_best_checkpoint_with_threshold(tmp_path) -> None:
    torch.manual_seed(0)
    model, recorder = Layer1VAE(input_dim=8, hidden_dim=8, latent_dim=2, dropout=0.0,
                                error_floor=0.01), Recorder()
    trainer = LayerTrainer(model, config=config(tmp_path, num_epochs=2), callbacks=[recorder])
    val = data(32, seed=1)
    labels = np.r_[np.zeros(27, np.int8), np.ones(5, np.int8)]  # 5 threats: best F1
    history = trainer.train(TensorBatches(data(), batch_size=16, shuffle=True),
                            TensorBatches(val, batch_size=10), val_labels=labels)
    names = "['val_kl', 'val_loss', 'val_recon']"
    assert recorder.events == [
        "train_start", "epoch_start 1", f"validation_end 1 {names}", "epoch_end 1 improved=True",
        "epoch_start 2", f"validation_end 2 {names}",
        f"epoch_end 2 improved={trainer.best_epoch == 2}", "train_end 2", "teardown"]
    assert [m.epoch for m in history] == [1, 2] and trainer.history is history
    loaded = load_model(tmp_path / "ck" / "m_best.pt")
    assert loaded.sidecar["best_epoch"] == trainer.best_epoch
    best = history[trainer.best_epoch - 1].val_loss
    assert trainer.best_val_loss == best == min(m.val_loss for m in history)
    # the model holds the best weights, its score's error weights fitted on the validation
    # batches, and the threshold is calibrated on their scores
    assert model.error_weights.shape == (model.input_dim,)
    model.eval()
    with torch.no_grad():
        scores = model.anomaly_score(val).numpy()
        assert model.validation_step(val)["loss"].item() == pytest.approx(best, rel=1e-6)
    assert loaded.threshold == calibrate_threshold(scores, labels).value == trainer.threshold.value
    assert loaded.sidecar["threshold"]["method"] == "best_f1"
    for a, b in zip(model.state_dict().values(), loaded.model.state_dict().values()):
        assert torch.equal(a, b)


def test_should_stop_ends_after_the_epoch_and_exceptions_propagate_after_teardown(
        tmp_path) -> None:
    class StopAt(Callback):
        def on_validation_end(self, trainer, epoch, metrics):
            trainer.should_stop = epoch == 2

    trainer = LayerTrainer(small_vae(), config=config(tmp_path, num_epochs=5),
                           callbacks=[StopAt()])
    assert len(trainer.train(TensorBatches(data(), batch_size=16), TensorBatches(data(8, 1),
                                                                                 batch_size=8))) == 2

    class Pruned(Exception):
        pass

    class Prune(Recorder):
        def on_validation_end(self, trainer, epoch, metrics):
            super().on_validation_end(trainer, epoch, metrics)
            if epoch == 2:
                raise Pruned

    prune = Prune()
    trainer = LayerTrainer(small_vae(), config=config(tmp_path, model_name="p", num_epochs=5),
                           callbacks=[prune])
    with pytest.raises(Pruned):
        trainer.train(TensorBatches(data(), batch_size=16), TensorBatches(data(8, 1), batch_size=8))
    assert prune.events[-1] == "teardown" and "train_end" not in " ".join(prune.events)
    assert load_state(tmp_path / "ck" / "p_last_state.pt")["epoch"] == 1


def test_early_stopping_callback_stops_training(tmp_path) -> None:
    # lr so small that nothing improves by min_delta: stop after `patience` epochs + the first
    cfg = config(tmp_path, num_epochs=20, learning_rate=1e-9, early_stopping_patience=2,
                 early_stopping_min_delta=1.0)
    history = LayerTrainer(small_vae(), config=cfg).train(
        TensorBatches(data(), batch_size=32), TensorBatches(data(8, 1), batch_size=8))
    assert len(history) == 3


def test_original_loss_fn_api_with_any_module_and_any_loader(tmp_path) -> None:
    # The original package's form: loss_fn(model, batch) and metric_fns (model, batch) -> float.
    torch.manual_seed(0)
    x = torch.randn(256, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.25
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32,
                                         shuffle=True)
    model = nn.Linear(3, 1)
    cfg = config(tmp_path, num_epochs=60, learning_rate=0.05, lr_scheduler="none",
                 early_stopping_patience=None, save_last_state=False)

    def loss_fn(module, batch):
        inputs, targets = batch
        return nn.functional.mse_loss(module(inputs), targets)

    def mae(module, batch):
        inputs, targets = batch
        return (module(inputs) - targets).abs().mean()

    trainer = LayerTrainer(model, loss_fn, cfg, metric_fns={"mae": mae})
    history = trainer.train(loader, loader)
    assert model.weight.detach().squeeze().tolist() == pytest.approx([1.0, -2.0, 0.5], abs=1e-3)
    assert model.bias.item() == pytest.approx(0.25, abs=1e-3)
    assert set(history[-1].val_metrics) == {"val_loss", "val_mae"}
    assert history[-1].val_metrics["val_mae"] < 1e-3
    assert trainer.threshold is None  # a plain module has no anomaly scores to calibrate
    assert (tmp_path / "ck" / "m_best.pt").exists()
    assert not (tmp_path / "ck" / "m_best.json").exists()  # no sidecar: nothing to rebuild from
    state = torch.load(tmp_path / "ck" / "m_best.pt", weights_only=True)
    assert set(state) == {"weight", "bias"}  # the module's own keys: the original load works
    # A notebook goes on with `trainer.model`: it runs the module, and an evaluator takes it
    # for what the module is (here a regressor's outputs: no anomaly scores to ask for).
    assert torch.equal(trainer.model(x[:4]), model(x[:4]))
    from training.evaluation.evaluator import ModelEvaluator
    assert ModelEvaluator(trainer.model, x[:4].numpy(), [0, 1, 0, 1]).is_anomaly_model is False
    nn.Linear(3, 1).load_state_dict(state)
    with pytest.raises(ConfigError, match="pass loss_fn"):
        LayerTrainer(nn.Linear(3, 1), config=cfg)
    with pytest.raises(ConfigError, match="metric_fns go with loss_fn"):
        LayerTrainer(small_vae(), config=cfg, metric_fns={"mae": mae})


def test_any_iterable_of_batches_trains_like_tensor_batches(tmp_path) -> None:
    # (A DataLoader draws a seed from the global generator per epoch, which changes the
    # VAE's sampled codes; a list of (features,) tuples consumes nothing.)
    x = data(48)
    results = []
    for make in (lambda: TensorBatches(x, batch_size=16),
                 lambda: [(x[i:i + 16],) for i in range(0, 48, 16)]):
        torch.manual_seed(0)
        model = small_vae()
        LayerTrainer(model, config=config(tmp_path, save_last_state=False)).train(make())
        results.append(model.state_dict())
    for a, b in zip(results[0].values(), results[1].values()):
        assert torch.equal(a, b)


def test_step_scheduler_and_periodic_checkpoints(tmp_path) -> None:
    cfg = config(tmp_path, num_epochs=4, learning_rate=0.1, lr_scheduler="step", step_size=1,
                 scheduler_factor=0.5, save_best_only=False, save_frequency=2, optimizer="sgd")
    history = LayerTrainer(small_vae(), config=cfg).train(TensorBatches(data(), batch_size=32))
    assert [m.learning_rate for m in history] == pytest.approx([0.05, 0.025, 0.0125, 0.00625])
    assert all(m.val_loss is None and m.grad_norm > 0 for m in history)
    files = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert files == ["m_best.json", "m_best.pt", "m_epoch0002.json", "m_epoch0002.pt",
                     "m_epoch0004.json", "m_epoch0004.pt", "m_last_state.pt"]


def test_nan_loss_is_an_error_naming_the_epoch(tmp_path) -> None:
    x = data()
    x[5, 3] = float("nan")
    with pytest.raises(TrainingError, match="the training loss is nan at epoch 1"):
        LayerTrainer(small_vae(), config=config(tmp_path)).train(TensorBatches(x, batch_size=16))


def test_resume_continues_exactly_in_process(tmp_path) -> None:
    class Crash(Exception):
        pass

    class CrashAt(Callback):  # stands in for a kill after epoch 2 (its state is saved)
        def on_epoch_start(self, trainer, epoch):
            if epoch == 3:
                raise Crash

    def run(directory: str, resume: bool, callbacks=()) -> dict:
        torch.manual_seed(0)
        model = Layer1VAE(input_dim=8, hidden_dim=8, latent_dim=2, dropout=0.3)
        cfg = config(tmp_path, num_epochs=4, checkpoint_dir=str(tmp_path / directory),
                     lr_scheduler="cosine")
        trainer = LayerTrainer(model, config=cfg, callbacks=callbacks)
        trainer.train(TensorBatches(data(), batch_size=16, shuffle=True, seed=5),
                      TensorBatches(data(8, 1), batch_size=8), resume=resume)
        return {"state": trainer.state_dict()["model"], "history": trainer.history}

    straight = run("a", False)
    with pytest.raises(Crash):
        run("b", False, [CrashAt()])
    resumed = run("b", True)
    assert [m.train_loss for m in resumed["history"]] == [m.train_loss for m in
                                                          straight["history"]]
    for a, b in zip(straight["state"].values(), resumed["state"].values()):
        assert torch.equal(a, b)
    with pytest.raises(CheckpointError, match="saved for Layer1VAE"):
        LayerTrainer(Layer1VAE(input_dim=8, hidden_dim=4, latent_dim=2),
                     config=config(tmp_path, checkpoint_dir=str(tmp_path / "b"))).train(
            TensorBatches(data(), batch_size=16), resume=True)


def test_a_last_state_saved_before_an_argument_existed_still_resumes(tmp_path) -> None:
    import json

    from training.trainer.resume import save_state

    cfg = config(tmp_path, num_epochs=1)
    LayerTrainer(small_vae(), config=cfg).train(TensorBatches(data(), batch_size=16))
    path = tmp_path / "ck" / "m_last_state.pt"
    state = load_state(path)  # as the release before error_floor wrote it: no such argument
    args = json.loads(state["init_args"])
    del args["error_floor"]
    state["init_args"] = json.dumps(args, sort_keys=True)
    state["model"].pop("error_weights")
    save_state(path, state)
    trainer = LayerTrainer(small_vae(), config=cfg.replace(num_epochs=2))
    trainer.train(TensorBatches(data(), batch_size=16), resume=True)
    assert [m.epoch for m in trainer.history] == [1, 2]
    with pytest.raises(CheckpointError, match="saved for Layer1VAE"):  # not the default
        LayerTrainer(Layer1VAE(input_dim=8, hidden_dim=8, latent_dim=2, dropout=0.0,
                               error_floor=0.01), config=cfg.replace(num_epochs=3)).train(
            TensorBatches(data(), batch_size=16), resume=True)


def test_damaged_last_state_is_refused(tmp_path) -> None:
    cfg = config(tmp_path, num_epochs=1)
    LayerTrainer(small_vae(), config=cfg).train(TensorBatches(data(), batch_size=16))
    path = tmp_path / "ck" / "m_last_state.pt"
    assert load_state(path)["epoch"] == 1
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one bit, inside the serialized state
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="m_last_state.pt: sha256 mismatch"):
        LayerTrainer(small_vae(), config=cfg.replace(num_epochs=2)).train(
            TensorBatches(data(), batch_size=16), resume=True)
    with pytest.raises(CheckpointError, match="no last-state checkpoint"):
        load_state(tmp_path / "missing.pt")


def test_tensorboard_scalars_once_per_epoch(tmp_path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = config(tmp_path, num_epochs=2, tensorboard=True)
    LayerTrainer(small_vae(), config=cfg).train(TensorBatches(data(), batch_size=8),
                                                TensorBatches(data(8, 1), batch_size=8))
    events = EventAccumulator(str(tmp_path / "logs" / "m"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert set(tags) == {"loss/train", "loss/val", "val/recon", "val/kl", "learning_rate",
                         "grad_norm/mean", "time/epoch_s"}
    assert [e.step for e in events.Scalars("loss/train")] == [1, 2]


def test_cpu_bf16_autocast_trains(tmp_path) -> None:
    cfg = config(tmp_path, cpu_amp=True, num_epochs=2)
    history = LayerTrainer(small_vae(), config=cfg).train(TensorBatches(data(), batch_size=16))
    assert all(np.isfinite(m.train_loss) for m in history)


def test_training_metrics_get_names_what_exists() -> None:
    metrics = TrainingMetrics(1, 2.0, 1.5, 1e-3, 0.1, None, {"val_loss": 1.5})
    assert metrics.get("train_loss") == 2.0 and metrics.get("val_loss") == 1.5
    with pytest.raises(ConfigError, match="available: train_loss, val_loss"):
        metrics.get("val_auc")


def test_path_folders_are_kept_as_given_and_written_as_text(tmp_path) -> None:
    cfg = config(tmp_path, checkpoint_dir=tmp_path / "ck", log_dir=tmp_path / "logs",
                 tensorboard=True, num_epochs=1)
    assert cfg.checkpoint_dir == tmp_path / "ck"  # the caller's Path, unchanged
    assert json.loads(cfg.to_json())["checkpoint_dir"] == str(tmp_path / "ck")
    assert cfg.replace(num_epochs=2).checkpoint_dir == str(tmp_path / "ck")
    LayerTrainer(small_vae(), config=cfg).train(TensorBatches(data(), batch_size=16),
                                                TensorBatches(data(seed=1), batch_size=16))
    assert json.loads((tmp_path / "ck" / "m_best.json").read_text())["training_config"][
        "log_dir"] == str(tmp_path / "logs")


def test_load_checkpoint_returns_the_epoch_of_either_file(tmp_path) -> None:
    cfg = config(tmp_path, num_epochs=3)
    trained = LayerTrainer(small_vae(), config=cfg)
    trained.train(TensorBatches(data(), batch_size=16), TensorBatches(data(seed=1), batch_size=16))
    fresh = LayerTrainer(small_vae(), config=cfg)
    assert fresh.load_checkpoint(tmp_path / "ck" / "m_last_state.pt") == 3
    assert len(fresh.history) == 3 and fresh.best_epoch == trained.best_epoch
    weights = LayerTrainer(small_vae(), config=cfg)
    assert weights.load_checkpoint(tmp_path / "ck" / "m_best.pt") == trained.best_epoch
    assert weights.epoch == 0  # weights only: the run's counters are not restored
    for a, b in zip(weights.model.state_dict().values(), trained.model.state_dict().values()):
        assert torch.equal(a, b)  # the best epoch's weights, restored at the end of training
    with pytest.raises(CheckpointError, match="missing.pt: no such checkpoint"):
        weights.load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="does not fit Layer1VAE"):
        LayerTrainer(Layer1VAE(input_dim=8, hidden_dim=4, latent_dim=2),
                     config=cfg).load_checkpoint(tmp_path / "ck" / "m_best.pt")


def test_a_scoring_module_trained_with_loss_fn_is_evaluated_by_its_own_scores(tmp_path) -> None:
    """The original's VAE trained through `LayerTrainer(model, loss_fn)`: an evaluator given
    `trainer.model` scores with the VAE's anomaly_score (its forward returns a tuple)."""
    from training.evaluation.evaluator import ModelEvaluator

    vae = small_vae()

    def loss_fn(module, batch):  # the original's form: the model's own objective
        return module.training_step(batch)

    trainer = LayerTrainer(vae, loss_fn, config(tmp_path, num_epochs=1, save_last_state=False))
    trainer.train(TensorBatches(data(), batch_size=32))
    x = data(40, seed=1).numpy()
    evaluator = ModelEvaluator(trainer.model, x, [0, 1] * 20)
    assert evaluator.is_anomaly_model and evaluator.model is vae
    assert 0.0 <= evaluator.evaluate().roc_auc <= 1.0
