"""Tuning objectives: the search space, what each hyperparameter changes, pruning per epoch."""

from __future__ import annotations

import tempfile

import numpy as np
import optuna
import pytest
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial
from sklearn.metrics import average_precision_score

from training.errors import ConfigError
from training.layers.layer1 import Layer1
from training.retraining.gate import split_fingerprint
from training.tests.tuning_helpers import write_layer1_splits
from training.trainer.callbacks import Callback
from training.tuning.objectives import LayerObjective
from training.tuning.objectives import make_objective
from training.tuning.pruning import OptunaPruning

optuna.logging.set_verbosity(optuna.logging.WARNING)

N_TRAIN = 96
BASE = {"learning_rate": 1e-3, "batch_size": 32, "hidden_dim": 96, "latent_dim": 64,
        "dropout": 0.2, "beta": 1.0}


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    return write_layer1_splits(tmp_path_factory.mktemp("splits"), n_train=N_TRAIN)


class Inspect(Callback):
    """Records what the trainer was built with and the first epoch's figures."""

    def on_train_start(self, trainer) -> None:
        self.model = trainer.model
        self.learning_rate = trainer.learning_rate

    def on_validation_end(self, trainer, epoch, metrics) -> None:
        self.metrics = dict(metrics)

    def on_epoch_end(self, trainer, metrics) -> None:
        state = trainer.optimizer.state[next(trainer.model.parameters())]
        self.steps = int(state["step"])  # optimizer steps in the epoch = training batches


def built(objective: LayerObjective, params: dict) -> Inspect:
    inspect = Inspect()
    with tempfile.TemporaryDirectory() as folder:
        config = objective.trial_config(params, folder).replace(num_epochs=1)
        objective.fit(params, config, [inspect])
    return inspect


def test_the_search_space_is_the_original_six(splits):
    """The seed's six hyperparameters and ranges, beta's moved to [1e-3, 1] around the default
    0.01 (at 1 and above the VAE's code collapses: BENCHMARKS.md, issue 21)."""
    objective = LayerObjective("layer1", *splits)
    trial = optuna.create_study().ask()
    objective.suggest(trial)
    assert trial.distributions == {
        "learning_rate": FloatDistribution(1e-5, 1e-2, log=True),
        "batch_size": CategoricalDistribution([16, 32, 64, 128]),
        "hidden_dim": CategoricalDistribution([64, 96, 128, 256]),
        "latent_dim": CategoricalDistribution([32, 64, 128]),
        "dropout": FloatDistribution(0.1, 0.5),
        "beta": FloatDistribution(1e-3, 1.0, log=True),
    }
    assert objective.trial_config(BASE, "x").num_epochs == 30


@pytest.mark.parametrize("name,value", [
    ("learning_rate", 3e-5), ("batch_size", 16), ("hidden_dim", 256), ("latent_dim", 32),
    ("dropout", 0.45), ("beta", 0.5),
])
def test_each_hyperparameter_changes_what_the_trial_builds(splits, name, value):
    objective = LayerObjective("layer1", *splits, metric="loss")
    base, changed = built(objective, BASE), built(objective, {**BASE, name: value})
    observed = {
        "learning_rate": lambda b: b.learning_rate,                       # the optimizer
        "batch_size": lambda b: b.steps,                                  # the loader
        "hidden_dim": lambda b: b.model.encoder[0].out_features,          # the model
        "latent_dim": lambda b: b.model.fc_mean.out_features,
        "dropout": lambda b: sorted({m.p for m in b.model.modules()
                                     if isinstance(m, torch.nn.Dropout)}),
        "beta": lambda b: (b.metrics["val_loss"] - b.metrics["val_recon"])  # the loss
                          / b.metrics["val_kl"],
    }[name]
    expected = {"learning_rate": (1e-3, 3e-5), "batch_size": (3, 6),  # ceil(96 / 32), / 16
                "hidden_dim": (96, 256), "latent_dim": (64, 32), "dropout": ([0.2], [0.45]),
                "beta": (1.0, 0.5)}[name]
    assert observed(base) == pytest.approx(expected[0], rel=1e-4)
    assert observed(changed) == pytest.approx(expected[1], rel=1e-4)


def test_pruned_trial_stops_at_the_epoch_the_pruner_decides(splits):
    """A median pruner with 2 warm-up epochs, after a trial that reported 0 every epoch,
    prunes at epoch 2: the second epoch is trained, a third is not."""
    objective = LayerObjective("layer1", *splits, metric="loss")
    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=1,
                                                                   n_warmup_steps=2))
    study.add_trial(create_trial(value=0.0, intermediate_values={e: 0.0 for e in range(1, 31)}))
    study.enqueue_trial(BASE)
    study.enqueue_trial(BASE)
    trial = study.ask()
    params = objective.suggest(trial)

    class CountEpochs(Callback):
        started = 0

        def on_epoch_start(self, trainer, epoch) -> None:
            self.started = epoch

    counter = CountEpochs()
    pruning = OptunaPruning(trial, objective.measure, "minimize", "loss")
    with tempfile.TemporaryDirectory() as folder, pytest.raises(optuna.TrialPruned,
                                                               match="pruned at epoch 2"):
        objective.fit(params, objective.trial_config(params, folder), [counter, pruning])
    assert counter.started == 2 and pruning.pruned_epoch == 2
    assert sorted(pruning.values) == [1, 2] and all(v > 0 for v in pruning.values.values())

    # Through the objective itself: the trial is PRUNED with the epochs it reported.
    study.tell(trial, state=TrialState.PRUNED)
    study.optimize(objective, n_trials=1)
    last = study.trials[-1]
    assert last.state == TrialState.PRUNED and sorted(last.intermediate_values) == [1, 2]


def test_a_trial_reports_every_epoch_and_returns_its_best_value(splits):
    objective = LayerObjective("layer1", *splits, metric="loss", max_epochs=3)
    study = optuna.create_study()
    study.enqueue_trial(BASE)
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE and sorted(trial.intermediate_values) == [1, 2, 3]
    assert trial.value == min(trial.intermediate_values.values())


def test_metric_is_pr_auc_of_the_known_validation_rows_when_both_classes_are_there(splits):
    objective = make_objective("layer1", *splits)
    assert (objective.metric, objective.direction) == ("pr_auc", "maximize")
    model = built(objective, BASE).model.eval()
    with np.load(splits[1]) as val:
        features, labels = val["features"], val["labels"]
    with torch.no_grad():
        scores = model.anomaly_score(torch.from_numpy(features)).numpy()
    known = labels >= 0  # the 2 unknown rows are left out
    expected = average_precision_score(labels[known] == 1, scores[known])
    trainer = type("Trainer", (), {"model": model})()
    assert objective.measure(trainer, {}) == pytest.approx(expected, rel=1e-6)


def test_metric_choices_are_checked(splits, tmp_path):
    with pytest.raises(ConfigError, match="metric must be one of auto, loss, pr_auc"):
        LayerObjective("layer1", *splits, metric="accuracy")
    only_benign = tmp_path / "benign.npz"
    np.savez(only_benign, features=np.zeros((4, 128), np.float32), labels=np.zeros(4, np.int8))
    with pytest.raises(ConfigError, match="needs benign \\(0\\) and threat \\(1\\) labels"):
        LayerObjective("layer1", splits[0], only_benign, metric="pr_auc")
    assert LayerObjective("layer1", splits[0], only_benign).metric == "loss"
    with pytest.raises(ConfigError, match="max_epochs must be an integer >= 1, got 0"):
        LayerObjective("layer1", *splits, max_epochs=0)


# ---- layers 2 and 3 ----------------------------------------------------------------------------

def _layer2_splits(folder) -> tuple[str, str]:
    from training.features.layer2 import Layer2GraphBuilder
    from training.tests import synthetic_traffic as traffic

    builder = Layer2GraphBuilder()
    train = builder.featurize(traffic.table(traffic.office_rows(1, hosts=8, minutes=60)))
    val = builder.featurize(traffic.table(traffic.office_rows(4, hosts=8, minutes=30)
                                      + traffic.fan_out_rows(3, attacker=5, minute=10, peers=20)))
    return str(train.save(folder / "l2_train.npz")), str(val.save(folder / "l2_val.npz"))


def _layer3_splits(folder) -> tuple[str, str]:
    from training.features.layer3 import Layer3WindowBuilder
    from training.tests import synthetic_traffic as traffic

    builder = Layer3WindowBuilder()
    train = builder.featurize(traffic.table(traffic.office_rows(1, hosts=8, minutes=120)))
    val = builder.featurize(traffic.table(traffic.office_rows(4, hosts=8, minutes=90)
                                      + traffic.beacon_rows(3, infected=4, first_minute=10,
                                                            count=60)))
    return str(train.save(folder / "l3_train.npz")), str(val.save(folder / "l3_val.npz"))


@pytest.mark.parametrize("layer,make_splits,params,built_args", [
    (2, _layer2_splits,
     {"learning_rate": 2e-3, "batch_size": 8, "hidden_dim": 32, "num_layers": 3, "conv": "gat",
      "dropout": 0.3},
     {"hidden_dim": 32, "num_layers": 3, "conv": "gat", "dropout": 0.3}),
    (3, _layer3_splits,
     {"learning_rate": 2e-3, "batch_size": 32, "channels": 16, "num_blocks": 3,
      "kernel_size": 2, "dropout": 0.3},
     {"channels": [16, 16, 16], "kernel_size": 2, "dilations": [1, 2, 4], "dropout": 0.3}),
])
def test_layer_2_and_3_objectives_build_train_and_report_their_trials(
        layer, make_splits, params, built_args, tmp_path):
    objective = make_objective(layer, *make_splits(tmp_path), max_epochs=2)
    assert (objective.metric, objective.direction) == ("pr_auc", "maximize")
    inspect = built(objective, params)
    assert {k: inspect.model.init_args[k] for k in built_args} == built_args
    assert inspect.learning_rate == params["learning_rate"]

    study = optuna.create_study(direction=objective.direction)
    study.enqueue_trial(params)
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE and sorted(trial.intermediate_values) == [1, 2]
    assert trial.value == max(trial.intermediate_values.values())
    assert 0.0 < trial.value <= 1.0


def test_a_study_refuses_trials_of_another_metric(splits):
    study = optuna.create_study(study_name="s")
    LayerObjective("layer1", *splits, metric="loss").attach(study)
    LayerObjective("layer1", *splits, metric="loss").attach(study)  # the same objective resumes
    with pytest.raises(ConfigError, match="holds trials with metric='loss', this run has "
                                          "metric='pr_auc'"):
        LayerObjective("layer1", *splits, metric="pr_auc").attach(study)


def test_a_study_refuses_trials_of_other_data(splits, tmp_path):
    """Values measured on another capture's splits do not compare: a study resumes only on
    the data its trials were measured on (by content: a copy elsewhere resumes)."""
    study = optuna.create_study(study_name="s")
    LayerObjective("layer1", *splits).attach(study)
    stored = study.user_attrs["objective"]
    assert len(stored["train_fingerprint"]) == len(stored["val_fingerprint"]) == 64
    copy = tmp_path / "copy"
    copy.mkdir()
    moved = [str(copy / name) for name in ("train.npz", "val.npz")]
    for source, target in zip(splits, moved):
        np.savez(target, **dict(np.load(source)))
    LayerObjective("layer1", *moved).attach(study)  # the same contents: resumes
    other = write_layer1_splits(tmp_path, seed=8)  # another capture's splits
    with pytest.raises(ConfigError) as refused:
        LayerObjective("layer1", splits[0], other[1]).attach(study)
    assert str(refused.value) == (
        f"study 's' holds trials on other data: val_data was {splits[1]} (sha256 "
        f"{stored['val_fingerprint'][:12]}), this run has {other[1]} (sha256 "
        f"{split_fingerprint(Layer1(), Layer1().load_units(other[1]))[:12]}); values measured "
        "on other data do not compare: give this data a new --study-name (or --output-dir), "
        "or resume with the study's own data")
    assert study.user_attrs["objective"] == stored  # the study still names its own data


def test_a_study_from_before_fingerprints_is_checked_by_path(splits, tmp_path):
    study = optuna.create_study(study_name="old")
    legacy = LayerObjective("layer1", *splits).describe()
    study.set_user_attr("objective", {k: v for k, v in legacy.items()
                                      if not k.endswith("_fingerprint")})
    other = write_layer1_splits(tmp_path, seed=8)
    with pytest.raises(ConfigError, match=f"train_data was {splits[0]}, this run has "
                                          f"{other[0]} \\(sha256 [0-9a-f]{{12}}\\)"):
        LayerObjective("layer1", *other).attach(study)
    LayerObjective("layer1", *splits).attach(study)  # its own paths: resumed, now fingerprinted
    assert study.user_attrs["objective"]["train_fingerprint"] == legacy["train_fingerprint"]
