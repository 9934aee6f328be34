"""`tune` stopped from outside: Ctrl-C prints no traceback without -v, and worker processes end
with a command killed by SIGKILL instead of running on under PID 1."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import optuna
import pytest

from training.tests.tuning_helpers import write_layer1_splits
from training.tuning.workers import WORKER_ATTR

REPO = Path(__file__).resolve().parents[2]
INTERRUPTED = "interrupted: the finished trials are kept; run the same command again to resume"
linux_only = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")


def _start_tune(tmp_path: Path, *flags: str) -> subprocess.Popen:
    """`maximus-train tune` on small splits, with trials long enough to be interrupted in.

    Its own process group, as a terminal's foreground job, with SIGINT handled as there (even
    where the test runner was started with SIGINT ignored)."""
    train, val = write_layer1_splits(tmp_path, n_train=2000)
    return subprocess.Popen(
        [sys.executable, "-m", "training.cli", "tune", "--train_data", train,
         "--val_data", val, "--n_trials", "50", "--max_epochs", "3000", "--pruner", "none",
         "--output_dir", str(tmp_path / "tuning"), "--study_name", "s", "--seed", "1", *flags],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _trials(tmp_path: Path, storage: str) -> dict[int, tuple[str, str]]:
    """number -> (state, worker) of the study's trials, read without writing to its storage
    (opening a SQLite study with Optuna may write, racing the command that creates it)."""
    path = tmp_path / "tuning" / "s" / storage
    if storage == "journal.log":
        if not path.exists():
            return {}
        opened = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(path)))
        try:
            trials = optuna.load_study(study_name="s", storage=opened).get_trials()
        except KeyError:  # not created yet
            return {}
        return {t.number: (t.state.name, t.user_attrs.get(WORKER_ATTR, "")) for t in trials}
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as db:
            rows = db.execute(
                "SELECT t.number, t.state, a.value_json FROM trials t LEFT JOIN "
                "trial_user_attributes a ON a.trial_id = t.trial_id AND a.key = ?",
                (WORKER_ATTR,)).fetchall()
    except sqlite3.OperationalError:  # no file or no tables yet
        return {}
    return {number: (state, json.loads(worker or '""')) for number, state, worker in rows}


def _wait_for_running(run: subprocess.Popen, tmp_path: Path, storage: str,
                      n: int) -> dict[int, str]:
    """number -> worker of the RUNNING trials, once there are `n` of them."""
    deadline = time.monotonic() + 240
    while True:
        running = {number: worker for number, (state, worker)
                   in _trials(tmp_path, storage).items() if state == "RUNNING"}
        if len(running) >= n:
            return running
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.2)


def _wait_for_an_epoch(run: subprocess.Popen, tmp_path: Path, trial: int) -> None:
    """Until `trial` has reported an epoch's value (its objective is training)."""
    path = tmp_path / "tuning" / "s" / "study.db"
    deadline = time.monotonic() + 240
    while True:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as db:
            (reported,) = db.execute(
                "SELECT COUNT(*) FROM trial_intermediate_values v JOIN trials t ON "
                "t.trial_id = v.trial_id WHERE t.number = ?", (trial,)).fetchone()
        if reported:
            return
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.2)


def _finish(run: subprocess.Popen, timeout: float = 120) -> str:
    try:
        return run.communicate(timeout=timeout)[1]
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate()


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    """Running, not a zombie left for a parent (PID 1 of a container may never reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("verbose", [False, True])
def test_ctrl_c_during_a_trial_prints_no_traceback_without_v(tmp_path, verbose):
    """The trial was logged by Optuna as failed with ~35 lines of traceback before our
    "interrupted" line. Now its warning line alone (-v: with the traceback); exit 130, and
    the trial is recorded failed."""
    run = _start_tune(tmp_path, *(["-v"] if verbose else []))
    (trial,) = _wait_for_running(run, tmp_path, "study.db", 1)
    _wait_for_an_epoch(run, tmp_path, trial)  # inside the objective, not Optuna's bookkeeping
    os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C does
    err = _finish(run)
    assert run.returncode == 130, err[-3000:]
    assert err.rstrip().splitlines()[-1] == INTERRUPTED
    assert ("Traceback" in err) is verbose, err[-3000:]
    assert f"Trial {trial} failed with parameters: " in err
    assert "because of the following error: KeyboardInterrupt()." in err
    assert _trials(tmp_path, "study.db")[trial][0] == "FAIL"


@linux_only
@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_ctrl_c_stops_the_workers_quietly_and_they_record_their_trials_failed(tmp_path, stop):
    """Ctrl-C reaches the workers too: each printed the trial's traceback, then
    multiprocessing's own for the process. So does a SIGTERM to the group (`timeout`,
    `systemctl stop`), which killed the command without a word and the workers outright,
    their trials left RUNNING (review)."""
    run = _start_tune(tmp_path, "-q", "--n-workers", "2")
    running = _wait_for_running(run, tmp_path, "journal.log", 2)
    workers = _children(run.pid)
    os.killpg(run.pid, getattr(signal, stop))
    err = _finish(run)
    assert run.returncode == (130 if stop == "SIGINT" else 143), err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert err.rstrip().splitlines()[-1] == (INTERRUPTED if stop == "SIGINT" else
                                             "error: terminated (SIGTERM)"
                                             + INTERRUPTED.removeprefix("interrupted"))
    states = {number: state for number, (state, _) in _trials(tmp_path, "journal.log").items()}
    assert {states[number] for number in running} == {"FAIL"}
    assert "RUNNING" not in states.values()
    # a child still closing its pipes a moment after the command's exit (a busy machine: the
    # suite at load 5 saw one) is gone within seconds
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in workers if _alive(pid)] == []


@linux_only
def test_workers_end_with_a_command_killed_by_sigkill(tmp_path):
    """`kill -9` of `tune --n-workers 2` left both workers (and multiprocessing's resource
    tracker) running under PID 1, finishing the study with nobody to write its results. Now
    they stop within seconds, recording their running trials failed."""
    run = _start_tune(tmp_path, "-q", "--n-workers", "2")
    running = _wait_for_running(run, tmp_path, "journal.log", 2)
    workers = {int(worker.split(":")[1]) for worker in running.values()}
    children = _children(run.pid)
    assert workers < set(children)  # and multiprocessing's resource tracker
    os.kill(run.pid, signal.SIGKILL)  # the command alone, as `kill -9 PID` does
    try:
        run.wait(timeout=10)
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [pid for pid in children if _alive(pid)] == []
    finally:
        for pid in children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        _finish(run)
    states = {number: state for number, (state, _) in _trials(tmp_path, "journal.log").items()}
    assert {states[number] for number in running} == {"FAIL"}
    assert "RUNNING" not in states.values()
