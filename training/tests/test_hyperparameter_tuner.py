"""The tuner's machinery: configuration, storages, worker processes, resuming, outputs."""

from __future__ import annotations

import csv
import json
import logging
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from training.errors import ConfigError
from training.tests.tuning_helpers import RecordingObjective, recorded_trials
from training.tuning.outputs import draw_plots, summary, trials_csv, write_outputs
from training.tuning.storage import resolve_storage
from training.tuning.tuner import HyperparameterTuner, TuningConfig
from training.tuning.workers import WORKER_ATTR

optuna.logging.set_verbosity(optuna.logging.WARNING)


# ---- TuningConfig ------------------------------------------------------------------------------

@pytest.mark.parametrize("field,bad,good", [
    ("n_trials", 0, 1), ("n_workers", 0, 1), ("pruner_n_startup_trials", -1, 0),
    ("pruner_n_warmup_steps", -1, 0), ("timeout", 0, 0.5), ("sampler", "grid", "random"),
    ("pruner", "percentile", "hyperband"), ("direction", "down", "maximize"),
    ("pruner_max_steps", 0, 1),
])
def test_config_rejects_values_past_each_edge(field, bad, good, tmp_path):
    with pytest.raises(ConfigError, match=f"{field} must be .*got {bad!r}"):
        TuningConfig("s", output_dir=str(tmp_path), **{field: bad})
    assert getattr(TuningConfig("s", output_dir=str(tmp_path), **{field: good}), field) == good


@pytest.mark.parametrize("name", ["", "a/b", "..", "a\\b"])
def test_config_rejects_study_names_that_are_not_folder_names(name):
    with pytest.raises(ConfigError, match="study_name must be"):
        TuningConfig(name)


def test_config_defaults_are_the_original_ones(monkeypatch):
    monkeypatch.delenv("MAXIMUS_DATA_ROOT", raising=False)
    config = TuningConfig("layer1_vae_tuning")
    assert (config.direction, config.n_trials, config.timeout, config.sampler, config.use_pruner,
            config.pruner_n_startup_trials, config.pruner_n_warmup_steps, config.storage_url,
            config.output_dir) == ("minimize", 50, None, "tpe", True, 5, 10, None,
                                   "training/tuning")
    assert config.study_dir == Path("training/tuning/layer1_vae_tuning")


# ---- storage selection -------------------------------------------------------------------------

def test_default_storage_is_sqlite_for_one_worker_and_a_journal_for_several(tmp_path):
    assert resolve_storage(None, 1, tmp_path).kind == "sqlite"
    assert resolve_storage(None, 1, tmp_path).target == f"sqlite:///{tmp_path}/study.db"
    assert resolve_storage(None, 2, tmp_path).kind == "journal"
    assert resolve_storage(None, 2, tmp_path).target == str(tmp_path / "journal.log")


def test_default_storage_reuses_the_study_file_that_exists(tmp_path, caplog):
    (tmp_path / "journal.log").touch()
    assert resolve_storage(None, 1, tmp_path).target == str(tmp_path / "journal.log")
    other = tmp_path / "other"
    other.mkdir()
    (other / "study.db").touch()
    with caplog.at_level(logging.WARNING):
        assert resolve_storage(None, 3, other).kind == "sqlite"
    assert "3 workers" in caplog.text


def test_explicit_storages(tmp_path, caplog):
    assert resolve_storage("journal:runs/s.log", 1, tmp_path).target == "runs/s.log"
    assert resolve_storage("runs/s.journal", 4, tmp_path).kind == "journal"
    with caplog.at_level(logging.WARNING):
        spec = resolve_storage("sqlite:///s.db", 2, tmp_path)
    assert spec.kind == "sqlite" and "database is locked" in caplog.text
    spec = resolve_storage("postgresql://tuner:s3cret@db.lan:5433/optuna", 8, tmp_path)
    assert (spec.kind, spec.target) == ("rdb", "postgresql+psycopg://tuner:s3cret@db.lan:5433/optuna")
    assert spec.describe() == "postgresql+psycopg://tuner:***@db.lan:5433/optuna"
    assert "s3cret" not in repr(spec)


@pytest.mark.parametrize("storage,why", [
    ("study.txt", "neither a database URL nor a journal file"),
    ("nosuchdb://x/y", "Can't load plugin"),
    ("postgresql://u:s3cret@host:port/db", "invalid literal"),
    ("journal:", "needs a file path"),
])
def test_bad_storages_are_refused_without_showing_passwords(storage, why, tmp_path):
    with pytest.raises(ConfigError, match=why) as caught:
        resolve_storage(storage, 1, tmp_path)
    assert "s3cret" not in str(caught.value)


# ---- running trials ----------------------------------------------------------------------------

def test_two_worker_processes_share_one_journal_study_without_losing_or_repeating_trials(tmp_path):
    """Every trial a worker ran is in the study once, with the parameters that worker used."""
    config = TuningConfig("journal", n_trials=8, n_workers=2, output_dir=str(tmp_path), seed=1)
    tuner = HyperparameterTuner(config)
    assert tuner.storage.kind == "journal"
    result = tuner.tune(RecordingObjective(str(tmp_path), barrier=2))

    trials = result.study.get_trials()
    assert result.ran == 8
    assert sorted(t.number for t in trials) == list(range(8))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    records = recorded_trials(tmp_path)
    assert sorted(number for _, number, _ in records) == list(range(8))  # none lost, none twice
    assert len({pid for pid, _, _ in records}) == 2                      # both workers ran trials
    by_number = {t.number: t for t in trials}
    for pid, number, x in records:
        assert by_number[number].params["x"] == x
        assert by_number[number].user_attrs[WORKER_ATTR].split(":")[1] == str(pid)
    assert (tmp_path / "journal" / "journal.log").stat().st_size > 0


def test_an_interrupted_study_resumes_with_its_finished_trials(tmp_path):
    class InterruptOnThirdCall:
        calls = 0

        def __call__(self, trial: optuna.Trial) -> float:
            self.calls += 1
            x = trial.suggest_float("x", 0.0, 1.0)
            if self.calls == 3:
                raise KeyboardInterrupt
            return x

    config = TuningConfig("resume", n_trials=5, output_dir=str(tmp_path), seed=0)
    objective = InterruptOnThirdCall()
    with pytest.raises(KeyboardInterrupt):
        HyperparameterTuner(config).tune(objective)
    first = HyperparameterTuner(config).load_study().get_trials()
    assert [t.state for t in first] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL]

    result = HyperparameterTuner(config).tune(objective)
    trials = result.study.get_trials()
    assert result.ran == 3
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 + [TrialState.FAIL] \
        + [TrialState.COMPLETE] * 3
    assert [t.params for t in trials[:2]] == [t.params for t in first[:2]]
    # A third run finds the study complete and runs nothing.
    assert HyperparameterTuner(config).tune(objective).ran == 0


def test_a_trial_left_running_by_a_dead_worker_is_failed_on_resume(tmp_path):
    config = TuningConfig("orphan", n_trials=2, output_dir=str(tmp_path))
    tuner = HyperparameterTuner(config)
    study = tuner.load_study()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = study.ask()
    study._storage.set_trial_user_attr(orphan._trial_id, WORKER_ATTR,
                                       f"{socket.gethostname()}:{dead.pid}:0")
    alive = study.ask()  # a trial of this (living) process: left alone
    study._storage.set_trial_user_attr(alive._trial_id, WORKER_ATTR,
                                       f"{socket.gethostname()}:{os.getpid()}:0")
    result = tuner.tune(RecordingObjective(str(tmp_path)))
    states = {t.number: t.state for t in result.study.get_trials()}
    assert states == {0: TrialState.FAIL, 1: TrialState.RUNNING,
                      2: TrialState.COMPLETE, 3: TrialState.COMPLETE}


def test_timeout_stops_new_trials(tmp_path):
    class Slow:
        def __call__(self, trial: optuna.Trial) -> float:
            import time

            time.sleep(0.5)
            return trial.suggest_float("x", 0.0, 1.0)

    config = TuningConfig("timeout", n_trials=100, timeout=0.2, output_dir=str(tmp_path))
    result = HyperparameterTuner(config).tune(Slow())
    # The first trial starts before the deadline and outlives it; no second one starts.
    assert result.ran == 1 and len(result.study.get_trials()) == 1
    # The original `tune()` returned a dict: the result reads as one, `in` and `get` included.
    assert "best_params" in result and result.get("n_trials") == 1 == dict(result)["n_trials"]
    assert set(result.keys()) == {"best_params", "best_value", "best_trial_number", "n_trials",
                                  "study", "files"}


def test_worker_processes_need_a_picklable_objective(tmp_path):
    config = TuningConfig("lambda", n_trials=2, n_workers=2, output_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="must be picklable"):
        HyperparameterTuner(config).tune(lambda trial: 0.0)


def test_a_stored_study_keeps_its_direction(tmp_path):
    HyperparameterTuner(TuningConfig("dir", output_dir=str(tmp_path))).load_study()
    other = TuningConfig("dir", direction="maximize", output_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="created to minimize"):
        HyperparameterTuner(other).load_study()


# ---- outputs -----------------------------------------------------------------------------------

def _hand_made_study() -> optuna.Study:
    study = optuna.create_study(study_name="hand", direction="minimize")
    space = {"lr": FloatDistribution(1e-5, 1e-2, log=True), "dropout": FloatDistribution(0.1, 0.5)}
    for lr, dropout, value, steps, state in [
            (1e-3, 0.2, 0.5, 3, TrialState.COMPLETE), (1e-4, 0.4, 0.25, 2, TrialState.COMPLETE),
            (1e-2, 0.1, None, 1, TrialState.PRUNED), (5e-3, 0.3, 0.75, 3, TrialState.COMPLETE)]:
        study.add_trial(create_trial(
            params={"lr": lr, "dropout": dropout}, distributions=space, value=value, state=state,
            intermediate_values={i + 1: 1.0 / (i + 1) for i in range(steps)},
            user_attrs={WORKER_ATTR: "host:1:0"}))
    study.set_user_attr("objective", {"metric": "val_loss"})
    return study


def test_summary_and_trials_table_of_a_hand_made_study():
    study = _hand_made_study()
    assert summary(study) == {
        "study_name": "hand", "direction": "minimize", "best_trial": 1, "best_value": 0.25,
        "params": {"lr": 1e-4, "dropout": 0.4}, "best_trial_epochs": 2,
        "n_trials": {"complete": 3, "pruned": 1}, "study_attrs": {"objective": {"metric": "val_loss"}},
    }
    rows = list(csv.reader(trials_csv(study.get_trials()).splitlines()))
    assert rows[0] == ["number", "state", "value", "datetime_start", "datetime_complete",
                       "duration_s", "epochs", "worker", "param_dropout", "param_lr"]
    assert [r[:3] + r[6:] for r in rows[1:]] == [
        ["0", "COMPLETE", "0.5", "3", "host:1:0", "0.2", "0.001"],
        ["1", "COMPLETE", "0.25", "2", "host:1:0", "0.4", "0.0001"],
        ["2", "PRUNED", "", "1", "host:1:0", "0.1", "0.01"],
        ["3", "COMPLETE", "0.75", "3", "host:1:0", "0.3", "0.005"],
    ]


def test_outputs_are_written_to_the_study_folder(tmp_path):
    outputs = write_outputs(_hand_made_study(), tmp_path / "hand")
    assert sorted(outputs.files) == ["best_params", "optimization_history", "parallel_coordinate",
                                     "param_importances", "trials"]
    assert json.loads((tmp_path / "hand" / "best_params.json").read_text())["params"] == \
        {"lr": 1e-4, "dropout": 0.4}
    for name in ("optimization_history", "param_importances", "parallel_coordinate"):
        assert outputs.files[name] == tmp_path / "hand" / f"{name}.png"
        assert outputs.files[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert outputs.skipped == {}


def test_a_study_without_a_complete_trial_gets_its_tables_and_no_plots(tmp_path):
    study = optuna.create_study()
    study.add_trial(create_trial(params={"x": 0.5}, state=TrialState.PRUNED,
                                 distributions={"x": FloatDistribution(0, 1)}))
    outputs = write_outputs(study, tmp_path)
    assert sorted(outputs.files) == ["best_params", "trials"]
    assert outputs.skipped == {name: "no complete trial yet" for name in
                               ("optimization_history", "param_importances", "parallel_coordinate")}
    assert json.loads((tmp_path / "best_params.json").read_text())["best_trial"] is None


def test_a_parameter_every_trial_shares_gets_no_axis_and_no_warning(tmp_path, caplog):
    """The trial's `tune --n_trials 2`: both trials drew batch_size 32, whose axis had equal
    low and high limits (matplotlib's "identical low and high ylims" UserWarning on stderr)."""
    study = optuna.create_study(direction="maximize")
    space = {"batch_size": CategoricalDistribution([16, 32, 64, 128]),
             "learning_rate": FloatDistribution(1e-5, 1e-2, log=True)}
    for rate, value in ((0.0014648900299385353, 0.1547), (0.0009928470884928615, 0.1541)):
        study.add_trial(create_trial(params={"batch_size": 32, "learning_rate": rate},
                                     distributions=space, value=value))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        drawn = draw_plots(study, {"parallel_coordinate": tmp_path / "p.png"})
    assert [str(w.message) for w in caught] == []
    assert drawn.files == {"parallel_coordinate": tmp_path / "p.png"} and drawn.skipped == {}
    # no parameter varies: nothing to draw, and the reason is returned (and logged) instead
    alone = optuna.create_study()
    alone.add_trial(create_trial(params={"batch_size": 32}, value=1.0,
                                 distributions={"batch_size": space["batch_size"]}))
    with caplog.at_level(logging.WARNING):
        drawn = draw_plots(alone, {"parallel_coordinate": tmp_path / "q.png"})
    assert drawn.skipped == {"parallel_coordinate": "no parameter takes two values among the 1 "
                                                    "complete trial(s)"} and not drawn.files


# ---- command line ------------------------------------------------------------------------------

@pytest.mark.parametrize("flag,dest,value", [
    ("--train_data", "train_data", "t.npz"), ("--train-data", "train_data", "t.npz"),
    ("--n_trials", "n_trials", 7), ("--n-trials", "n_trials", 7),
    ("--study_name", "study_name", "s"), ("--study-name", "study_name", "s"),
    ("--n-workers", "n_workers", 3), ("--n_workers", "n_workers", 3),
    ("--train-best", "train_best", True), ("--train_best", "train_best", True),
    ("--timeout", "timeout", 60.0), ("--storage", "storage", "journal:j.log"),
    ("--layer", "layer", 1), ("--layer", "layer", "layer3"), ("--layer", "layer", "behavioral"),
])
def test_every_flag_takes_either_separator(flag, dest, value):
    from training.cli.tune import build_parser

    argv = ["--train_data", "a.npz", "--val_data", "b.npz"]
    argv += [flag] if value is True else [flag, str(value)]
    names = {"1": "layer1", "layer3": "layer3", "behavioral": "layer2"}
    expected = names[str(value)] if dest == "layer" else value
    assert getattr(build_parser().parse_args(argv), dest) == expected


def test_the_script_tunes_with_two_workers_then_trains_and_registers_the_best(tmp_path):
    """The seed's command line (run as a script, from another directory), plus new flags."""
    from training.registry.registry import ModelRegistry
    from training.tests.tuning_helpers import write_layer1_splits

    train, val = write_layer1_splits(tmp_path)
    script = Path(__file__).resolve().parents[1] / "hyperparameter_tuner.py"
    run = subprocess.run(
        [sys.executable, str(script), "--train_data", train, "--val-data", val, "--n_trials", "3",
         "--study_name", "layer1_vae_tuning", "--n-workers", "2", "--max-epochs", "2",
         "--output_dir", str(tmp_path / "tuning"), "--train-best", "--best-epochs", "2",
         "--registry-dir", str(tmp_path / "models"), "--seed", "5"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    study_dir = tmp_path / "tuning" / "layer1_vae_tuning"
    assert summary["storage"] == f"journal file {study_dir / 'journal.log'}"
    assert (summary["metric"], summary["direction"], summary["ran"]) == ("pr_auc", "maximize", 3)
    assert summary["trials"] == {"complete": 3, "pruned": 0, "fail": 0, "running": 0}
    assert json.loads((study_dir / "best_params.json").read_text())["params"] \
        == summary["best_params"]
    assert len((study_dir / "trials.csv").read_text().splitlines()) == 4
    best = summary["train_best"]
    assert Path(best["checkpoint"]) == study_dir / "best" / "layer1_vae_best.pt"
    stored = ModelRegistry(tmp_path / "models").get_metadata("layer1_vae", best["version"])
    assert {k: stored.hyperparameters[k] for k in summary["best_params"]} \
        == summary["best_params"]
    assert stored.metrics == best["metrics"] and "best trial" in stored.description


def test_the_script_reports_bad_usage_with_exit_code_2(tmp_path):
    from training.cli.tune import main
    from training.tests.tuning_helpers import write_layer1_splits

    train, val = write_layer1_splits(tmp_path)
    assert main(["--train_data", train, "--val_data", val, "--storage", "bogus",
                 "--output_dir", str(tmp_path)]) == 2


def test_a_resumed_study_refuses_another_captures_data(tmp_path, capsys):
    """`tune` again with the same study but other splits: exit 2 with the fix in the message;
    nothing is added to the study, whose files still name its own data."""
    from training.cli.tune import main
    from training.tests.tuning_helpers import write_layer1_splits

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first, other = write_layer1_splits(tmp_path / "a"), write_layer1_splits(tmp_path / "b", seed=8)
    common = ["--n_trials", "2", "--max_epochs", "1", "--output_dir", str(tmp_path / "tuning")]
    assert main(["--train_data", first[0], "--val_data", first[1], "--n_trials", "1",
                 *common[2:]]) == 0
    capsys.readouterr()
    assert main(["--train_data", other[0], "--val_data", other[1], *common]) == 2
    error = capsys.readouterr().err.splitlines()[-1]  # one line, after the progress lines
    assert error.startswith(f"error: study 'layer1_vae_tuning' holds trials on other data: "
                            f"train_data was {first[0]} (sha256 ")
    assert "give this data a new --study-name (or --output-dir)" in error
    best = json.loads((tmp_path / "tuning/layer1_vae_tuning/best_params.json").read_text())
    assert best["n_trials"] == {"complete": 1}
    assert best["study_attrs"]["objective"]["train_data"] == first[0]
