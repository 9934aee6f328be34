"""Run tracking across the ways a model is made: the kept epoch's figures in an MLflow run,
the same `val_loss` in the registry whichever path registered a version, the alert threshold
rule a tuned model gets and a promotion that changes it, a tuning study and its trials in
MLflow. MLflow's real file store in a temporary folder (a SQLite one takes ~11 s to create),
small layer-1 splits.
"""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import optuna
import pytest

from training.cli.main import main
from training.errors import ConfigError
from training.layers.layer1 import Layer1
from training.layers.training import train_layer
from training.registry.registry import ModelMetadata, ModelRegistry
from training.tests.tuning_helpers import write_layer1_splits
from training.tracking import LayerRun, open_window
from training.tuning.objectives import LayerObjective
from training.tuning.tuner import HyperparameterTuner, TuningConfig

mlflow = pytest.importorskip("mlflow")
optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def splits(tmp_path_factory) -> tuple[str, str]:
    return write_layer1_splits(tmp_path_factory.mktemp("splits"))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A file: store (MLflow refuses one unless MLFLOW_ALLOW_FILE_STORE is set). MLflow's
    file-store model registry opens a client of the default tracking URI inside
    create_model_version, which is sqlite:///mlflow.db in the working folder: that default is
    pointed into the store too, so no test writes in the repository."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        folder = tmp_path_factory.mktemp("mlflow")
        patch.setenv("MLFLOW_TRACKING_URI", (folder / "default").as_uri())
        yield folder


@pytest.fixture(scope="module")
def tracked(splits, store, tmp_path_factory) -> dict:
    """A layer trained and registered as the pipeline does it (`LayerRun` around
    `train_layer`, then `finish`), registered without metrics as `registry register` does.
    At learning rate 0.01 its validation loss per epoch is 4.58, 3.30, 4.94, 3.95: the kept
    epoch (2) is not the last."""
    folder = tmp_path_factory.mktemp("tracked")
    uri = (store / "layer").as_uri()
    layer = Layer1()
    train, val = (layer.load_units(path) for path in splits)
    config = layer.default_config(num_epochs=4, learning_rate=0.01, batch_size=32, seed=42,
                                  checkpoint_dir=str(folder / "ck"), tensorboard=False,
                                  save_last_state=False, num_threads=1)
    registry = ModelRegistry(folder / "models")
    with LayerRun.start(open_window(uri), "run layer1", {"maximus.layer": "layer1"}) as run:
        _, results = train_layer(layer, train, val, config, callbacks=run.callbacks)
        version = registry.register_model(results["checkpoint"], ModelMetadata(
            "layer1_vae", "0", "layer1"), next_version="semver").version
        run.finish({}, None, "layer1", registry, "layer1_vae", version)
    return {"uri": uri, "run_id": run.run_id, "results": results, "registry": registry,
            "version": version, "checkpoint": results["checkpoint"]}


def _client(uri: str):
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_a_layer_run_shows_the_kept_epoch_as_val_loss(tracked):
    history = [m["val_loss"] if isinstance(m, dict) else m.val_loss
               for m in tracked["results"]["history"]]
    assert tracked["results"]["best_epoch"] == 2 and history[1] == min(history) < history[-1]
    client = _client(tracked["uri"])
    logged = client.get_run(tracked["run_id"]).data.metrics
    assert logged["val_loss"] == pytest.approx(history[1])  # the kept epoch's, not 3.95
    assert logged["best_val_loss"] == pytest.approx(history[1]) and logged["best_epoch"] == 2
    assert logged["epochs_trained"] == 4
    curve = client.get_metric_history(tracked["run_id"], "epoch_val_loss")
    assert [(m.step, round(m.value, 6)) for m in curve] == [
        (epoch, round(value, 6)) for epoch, value in enumerate(history, 1)]
    # the registry records the same figure under the same name, registered without metrics
    stored = tracked["registry"].get_metadata("layer1_vae", tracked["version"])
    assert stored.metrics == {"val_loss": pytest.approx(history[1])}


def test_the_closing_progress_line_names_the_kept_epoch(splits, tmp_path, caplog):
    from training.console.progress import set_mode

    layer = Layer1()
    train, val = (layer.load_units(path) for path in splits)
    config = layer.default_config(num_epochs=4, learning_rate=0.01, batch_size=32, seed=42,
                                  checkpoint_dir=str(tmp_path), tensorboard=False,
                                  save_last_state=False, num_threads=1)
    before = set_mode("lines")
    try:
        with caplog.at_level(logging.INFO, logger="training.console.progress"):
            _, results = train_layer(layer, train, val, config)
    finally:
        set_mode(before)
    kept = results["history"][1]
    kept = kept if isinstance(kept, dict) else kept.to_dict()
    (line,) = [r.getMessage() for r in caplog.records if "4/4 epochs in" in r.getMessage()]
    assert line.endswith(f", best_epoch 2, loss {kept['train_loss']:.4g}, "
                         f"val_loss {kept['val_loss']:.4g}")


def test_compare_models_reads_every_path_and_the_former_name(tracked, tmp_path, caplog):
    registry = tracked["registry"]
    plain = tmp_path / "plain.pt"  # an opaque state_dict: no sidecar, no loss
    import torch

    torch.save({"w": torch.zeros(2)}, plain)
    old = registry.register_model(plain, ModelMetadata(  # as `tune --train-best` recorded it
        "layer1_vae", "0", "layer1", metrics={"best_val_loss": 2.5}),
        next_version="semver").version
    bare = registry.register_model(plain, ModelMetadata("layer1_vae", "0", "layer1"),
                                   next_version="semver").version
    kept = registry.get_metadata("layer1_vae", tracked["version"]).metrics["val_loss"]
    assert registry.compare_models("layer1_vae", [tracked["version"]]) == \
        {tracked["version"]: kept}
    with caplog.at_level(logging.WARNING):
        compared = registry.compare_models("layer1_vae", [old, bare])
    assert compared == {old: 2.5} and compared.best == old and compared.missing == [bare]
    assert f"layer1_vae {bare}: no val_loss recorded (it has no metric), left out" in caplog.text
    # a loss of a version whose model is unknown (no sidecar) ranks beside no VAE's
    with pytest.raises(ConfigError, match=f"{old}: unknown .registered without a sidecar"):
        registry.compare_models("layer1_vae", [tracked["version"], old, bare])


def test_tune_logs_its_study_and_the_tuned_version_follows_the_pipelines_rule(
        splits, store, tracked, tmp_path, caplog, capsys):
    uri = (store / "tune").as_uri()
    models = tmp_path / "models"

    def tune(trials: int) -> dict:
        assert main(["tune", "--train_data", splits[0], "--val_data", splits[1],
                     "--n_trials", str(trials), "--max_epochs", "1", "--warmup_epochs", "0",
                     "--train-best", "--best_epochs", "2", "--registry-dir", str(models),
                     "--output_dir", str(tmp_path / "tuning"), "--mlflow_uri", uri,
                     "--seed", "3", "-q"]) == 0
        return json.loads(capsys.readouterr().out)

    first = tune(2)["train_best"]
    assert (first["threshold_rule"], first["threshold_rule_from"]) == (
        "quantile:0.999", "the pipeline's default (no production model to follow)")
    registry = ModelRegistry(models)
    tuned = registry.get_metadata("layer1_vae", first["version"])
    assert tuned.hyperparameters["threshold_rule"] == "quantile:0.999"
    assert set(tuned.metrics) == {"val_loss", "epochs_trained", "val_pr_auc"}
    client = _client(uri)
    experiment = client.get_experiment_by_name("maximus").experiment_id
    (study,) = client.search_runs([experiment], "tags.`maximus.study` = 'layer1_vae_tuning' "
                                  "and attributes.run_name = 'tuning layer1_vae_tuning'")
    assert study.data.params["metric"] == "pr_auc"
    assert study.data.metrics["trials"] == 2

    def children() -> dict:
        found = client.search_runs([experiment],
                                   f"tags.`mlflow.parentRunId` = '{study.info.run_id}'")
        return {r.info.run_name: r for r in found}

    nested = children()
    assert set(nested) == {"layer1_vae_tuning trial 0", "layer1_vae_tuning trial 1",
                           f"layer1_vae {first['version']}"}
    trial = nested["layer1_vae_tuning trial 0"]
    assert {"learning_rate", "batch_size", "hidden_dim"} <= set(trial.data.params)
    assert "objective" in trial.data.metrics and trial.info.status == "FINISHED"
    version_run = nested[f"layer1_vae {first['version']}"]
    assert version_run.data.params["threshold_rule"] == "quantile:0.999"
    assert version_run.data.metrics["val_loss"] == pytest.approx(tuned.metrics["val_loss"])

    # production follows the tuned model; a model at the trainer's "auto" rule replacing it
    # says that the rule changes
    assert registry.transition_stage("layer1_vae", first["version"], "production")
    auto = registry.register_model(tracked["checkpoint"], ModelMetadata(
        "layer1_vae", "0", "layer1"), next_version="semver").version
    with caplog.at_level(logging.WARNING):
        assert registry.transition_stage("layer1_vae", auto, "production")
    assert (f"layer1_vae {auto} sets its alert threshold by rule 'auto'" in caplog.text
            and f"the production {first['version']} it replaces by 'quantile:0.999'"
            in caplog.text)

    # resumed: one more trial logged under the same study run; the new tuned model follows
    # the production model's rule
    second = tune(3)["train_best"]
    assert (second["threshold_rule"], second["threshold_rule_from"]) == (
        "auto", f"the production layer1_vae {auto}")
    assert sorted(n for n in children() if "trial" in n) == [
        f"layer1_vae_tuning trial {n}" for n in range(3)]


def test_resuming_on_data_that_switched_the_auto_metric_says_so(splits, tmp_path):
    layer = Layer1()
    val = layer.load_units(splits[1])
    benign = layer.save_splits({"val": layer.relabeled(val, np.zeros(len(layer.labels(val)),
                                                                     np.int8))},
                               tmp_path / "benign")["val"]
    made = LayerObjective("layer1", splits[0], str(benign), max_epochs=1)  # auto: loss
    assert made.metric == "loss"
    HyperparameterTuner(TuningConfig("s", direction=made.direction, output_dir=tmp_path)
                        ).load_study_for(made)
    resumed = LayerObjective("layer1", *splits, max_epochs=1)  # auto: pr_auc
    with pytest.raises(ConfigError) as refused:
        HyperparameterTuner(TuningConfig("s", direction=resumed.direction, output_dir=tmp_path)
                            ).load_study_for(resumed)
    text = str(refused.value)
    assert text.startswith("study 's' holds trials with metric='loss', this run has "
                           "metric='pr_auc' (chosen by --metric auto: this validation split "
                           "has benign and threat rows, and the data changed: val_data was ")
    assert "direction" not in text


def test_two_studies_of_one_name_in_two_folders_are_two_studies_in_mlflow(
        splits, store, tmp_path, monkeypatch, capsys):
    """`tune --output_dir tuning` in two project folders: both storages read
    `sqlite:///tuning/<study>/study.db`, and the second study's trials were taken for the
    first's, already logged: none of them reached MLflow, and its best tags replaced the
    first's."""
    uri = (store / "two-folders").as_uri()
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        monkeypatch.chdir(tmp_path / folder)
        assert main(["tune", "--train_data", splits[0], "--val_data", splits[1], "--n_trials",
                     "2", "--max_epochs", "1", "--output_dir", "tuning", "--mlflow_uri", uri,
                     "--seed", "3" if folder == "a" else "4", "-q"]) == 0
    capsys.readouterr()
    client = _client(uri)
    experiment = client.get_experiment_by_name("maximus").experiment_id
    studies = client.search_runs([experiment], "attributes.run_name = 'tuning layer1_vae_tuning'")
    assert sorted(r.data.tags["maximus.storage"] for r in studies) == [
        f"sqlite:///{tmp_path / folder / 'tuning' / 'layer1_vae_tuning' / 'study.db'}"
        for folder in ("a", "b")]
    for study in studies:
        trials = client.search_runs([experiment],
                                    f"tags.`mlflow.parentRunId` = '{study.info.run_id}'")
        assert len(trials) == 2 and study.data.metrics["trials"] == 2


def test_a_study_logged_before_its_storage_was_absolute_is_taken_over(
        splits, store, tmp_path, monkeypatch, capsys):
    """A study logged by a release that tagged its storage as given (relative) is the same
    study when resumed in its folder: its run is taken over, its trials not logged again
    (review of 685a0d9)."""
    uri = (store / "taken-over").as_uri()
    monkeypatch.chdir(tmp_path)
    tune = ["tune", "--train_data", splits[0], "--val_data", splits[1], "--max_epochs", "1",
            "--output_dir", "tuning", "--mlflow_uri", uri, "--seed", "3", "-q"]
    assert main([*tune, "--n_trials", "2"]) == 0
    client = _client(uri)
    experiment = client.get_experiment_by_name("maximus").experiment_id
    (study,) = client.search_runs([experiment],
                                  "attributes.run_name = 'tuning layer1_vae_tuning'")
    relative = "sqlite:///tuning/layer1_vae_tuning/study.db"
    client.set_tag(study.info.run_id, "maximus.storage", relative)  # as the release before
    assert main([*tune, "--n_trials", "3"]) == 0
    capsys.readouterr()
    (again,) = client.search_runs([experiment],
                                  "attributes.run_name = 'tuning layer1_vae_tuning'")
    assert again.info.run_id == study.info.run_id
    assert again.data.tags["maximus.storage"] == \
        f"sqlite:///{tmp_path / 'tuning' / 'layer1_vae_tuning' / 'study.db'}"
    trials = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{study.info.run_id}'")
    assert len(trials) == 3  # the two logged before, and the third


def test_a_version_that_fails_to_mirror_ends_its_run_failed(store, tmp_path, capsys):
    """A mirror run reached end_run only when everything went well: a version whose files
    could not be listed left its MLflow run RUNNING forever (review)."""
    from training.registry.registry import ModelMetadata, ModelRegistry
    from training.tests.registry_fixtures import save_tiny

    uri = (store / "failed-mirror").as_uri()
    registry = ModelRegistry(tmp_path / "models")
    registry.register_model(save_tiny(tmp_path / "tiny_best.pt", centre=0.5, dim=128,
                                      threshold=3.0), ModelMetadata("tiny", "1.0.0", "layer1"))
    shutil.rmtree(next((tmp_path / "models").glob("**/tiny/1.0.0")))  # its files are gone
    main(["registry", "mirror", "--registry-dir", str(tmp_path / "models"), "--mlflow-uri",
          uri])
    capsys.readouterr()
    client = _client(uri)
    experiment = client.get_experiment_by_name("maximus").experiment_id
    (run,) = client.search_runs([experiment], "attributes.run_name = 'tiny 1.0.0'")
    assert run.info.status == "FAILED"
