"""A failed trial's traceback only with -v (`trial_tracebacks`), Optuna's own warnings not with
-q (`optuna_lines`), in this process and in the worker processes started inside the block."""

from __future__ import annotations

import io
import logging

import numpy as np
import optuna
import pytest

from training.cli.main import main
from training.errors import PipelineError
from training.tests.tuning_helpers import FailingObjective, write_layer1_splits
from training.tuning.trial_logs import optuna_lines, trial_tracebacks, tracebacks_shown
from training.tuning.tuner import HyperparameterTuner, TuningConfig

FAILED = "Trial 0 failed with parameters: {'x': "


@pytest.fixture
def optuna_log():
    """What Optuna's logger writes to a handler of its own (the block filters every one)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = optuna.logging.get_logger("optuna")
    logger.addHandler(handler)
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        optuna.logging.set_verbosity(level)


@pytest.mark.parametrize("shown", [False, True])
def test_a_failed_trial_is_logged_with_its_traceback_only_when_shown(optuna_log, shown):
    study = optuna.create_study()
    handlers = {h: list(h.filters) for h in optuna.logging.get_logger("optuna").handlers}
    with trial_tracebacks(shown=shown):
        assert tracebacks_shown() is shown
        with trial_tracebacks(shown=True):  # an inner block leaves the outer one's filter
            pass
        with pytest.raises(ValueError, match="boom"):  # the error still propagates
            study.optimize(FailingObjective(), n_trials=1)
    assert tracebacks_shown() is True
    text = optuna_log.getvalue()
    assert FAILED in text and "because of the following error: ValueError('boom')." in text
    assert ("Traceback" in text) is shown
    assert study.trials[0].state == optuna.trial.TrialState.FAIL
    assert {h: list(h.filters) for h in handlers} == handlers  # as before the block


@pytest.mark.parametrize("shown", [False, True])
def test_a_worker_process_that_fails_prints_its_traceback_only_when_shown(tmp_path, capfd,
                                                                           shown):
    """Without -v a failing worker printed Optuna's traceback of the trial, then
    multiprocessing's of the process; now one line each, and the command's error."""
    config = TuningConfig("fails", n_trials=2, n_workers=2, output_dir=str(tmp_path))
    with trial_tracebacks(shown=shown), pytest.raises(PipelineError, match="workers failed"):
        HyperparameterTuner(config).tune(FailingObjective())
    err = capfd.readouterr().err
    assert FAILED in err
    assert ("Traceback" in err) is shown, err
    if not shown:
        assert "stopped: ValueError: boom (-v shows the traceback)" in err


@pytest.mark.parametrize("quiet", [False, True])
def test_a_quiet_tune_command_leaves_out_optuna_s_own_warnings(optuna_log, tmp_path, capsys,
                                                                quiet):
    """Trial U: `tune -q` still printed Optuna's "[W ...] Trial 0 failed with parameters: ..."
    and "Trial 0 failed with value None." above the command's own error line."""
    train, val = write_layer1_splits(tmp_path, n_train=32)
    arrays = dict(np.load(train))
    arrays["features"][3, 5] = np.nan  # every trial fails
    np.savez(train, **arrays)
    argv = ["tune", "--train_data", train, "--val_data", val, "--n_trials", "1",
            "--max_epochs", "1", "--output_dir", str(tmp_path / "tuning")]
    level = optuna.logging.get_verbosity()
    assert main([*argv, "-q"] if quiet else argv) == 1
    assert optuna.logging.get_verbosity() == level  # as before the command
    assert "error: the features have NaN or infinite values" in capsys.readouterr().err
    text = optuna_log.getvalue()
    assert text == "" if quiet else "Trial 0 failed with parameters: {'learning_rate': " in text


@pytest.mark.parametrize("quiet", [False, True])
def test_worker_processes_follow_the_quiet_flag(tmp_path, capfd, quiet):
    config = TuningConfig("fails", n_trials=2, n_workers=2, output_dir=str(tmp_path))
    with optuna_lines(verbose=False, quiet=quiet), trial_tracebacks(shown=False):
        with pytest.raises(PipelineError, match="workers failed"):
            HyperparameterTuner(config).tune(FailingObjective())
    err = capfd.readouterr().err
    assert (FAILED in err) is not quiet, err
    assert "stopped: ValueError: boom (-v shows the traceback)" in err  # ours, either way
