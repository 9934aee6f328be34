"""Running trials: one loop per worker, in this process or in N worker processes.

Every worker runs the same loop against the shared storage. Before each trial it takes one
claim from this command's budget (a counter shared by its processes, so the command runs
exactly the trials it set out to run, neither lost nor doubled), and it stops early when the
study already has `n_trials` finished trials (other machines may have filled it) or when the
deadline has passed. The timeout stops new trials from starting; a running trial finishes.

Worker processes are spawned, not forked: a forked copy of a process that has used torch's
thread pool can deadlock, and each worker must open its own storage connections anyway. They
end with the command, one killed with SIGKILL too (see `training.tuning.worker_exit`).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import pickle
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import optuna

from training.artifacts.atomic import pid_alive
from training.errors import ConfigError, PipelineError
from training.console.progress import set_mode as set_progress_mode
from training.console.progress import suppressed
from training.console.quiet import OncePerCommand
from training.tuning.storage import StorageSpec
from training.tuning.study import n_finished, open_study
from training.tuning.trial_logs import trial_tracebacks, tracebacks_shown
from training.tuning.worker_exit import GRACE_S, ParentWatch, sigint_ignored

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.sharedctypes import Synchronized

    from training.tuning.tuner import TuningConfig

logger = logging.getLogger(__name__)

Objective = Callable[[optuna.Trial], float]
WORKER_ATTR = "worker"  # trial user attribute: which host and process ran the trial
_POLL_S = 2.0  # how often the parent looks at the workers' progress


@dataclass(frozen=True)
class TaggedObjective:
    """The objective, recording on each trial which worker ran it."""

    objective: Objective
    worker: str

    def __call__(self, trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER_ATTR, self.worker)
        return self.objective(trial)


def worker_name(index: int) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{index}"


def fail_orphaned_trials(study: optuna.Study) -> list[int]:
    """Mark failed the RUNNING trials whose worker process on this machine no longer exists.

    A worker killed mid-trial (power cut, SIGKILL) leaves its trial RUNNING. Trials run on other
    machines are left to the database storages' heartbeat, which fails them after its grace
    period.

    Returns:
        The numbers of the trials marked failed.
    """
    host = socket.gethostname()
    orphans = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker_host, _, rest = str(trial.user_attrs.get(WORKER_ATTR, "")).partition(":")
        pid = rest.partition(":")[0]
        if worker_host == host and pid.isascii() and pid.isdigit() and not pid_alive(int(pid)):
            study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
            orphans.append(trial.number)
    if orphans:
        logger.warning("trials %s were left RUNNING by worker processes that no longer exist; "
                       "marked failed (they do not count towards n_trials)", orphans)
    return orphans


def run_trials(study: optuna.Study, objective: Objective, claim: Callable[[], bool],
               n_trials: int, deadline: float | None, worker: str,
               on_trial: Callable[[], None] | None = None) -> int:
    """Run trials until the budget, the study or the time is used up.

    Args:
        claim: takes one trial from this command's budget; False when none is left.
        n_trials: the study's target of finished trials.
        deadline: `time.time()` after which no trial starts, or None.
        on_trial: called after each trial (the caller's progress); the trial's own progress
            (its epochs) is not shown.

    Returns:
        The number of trials this worker ran.
    """
    tagged = TaggedObjective(objective, worker)
    ran = 0
    while deadline is None or time.time() < deadline:
        if n_finished(study) >= n_trials or not claim():
            break
        with suppressed():
            study.optimize(tagged, n_trials=1)
        ran += 1
        if on_trial is not None:
            on_trial()
    logger.info("worker %s ran %d trials", worker, ran)
    return ran


class LocalBudget:
    """The claims of one in-process worker."""

    def __init__(self, n: int) -> None:
        self.left = n

    def __call__(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


class SharedBudget:
    """The claims of several worker processes: a counter in shared memory, taken under its lock."""

    def __init__(self, counter: Synchronized) -> None:
        self.counter = counter

    def __call__(self) -> bool:
        with self.counter.get_lock():
            if self.counter.value <= 0:
                return False
            self.counter.value -= 1
            return True


def run_worker_processes(config: TuningConfig, storage: StorageSpec, objective: Objective,
                         n_trials_left: int, deadline: float | None,
                         on_wait: Callable[[], None] | None = None) -> int:
    """Start `config.n_workers` processes that share `n_trials_left` trials; wait for all.

    `on_wait` is called every few seconds while they run (the caller's progress).

    Returns:
        The number of trials the workers started.

    Raises:
        ConfigError: the objective cannot be sent to another process.
        PipelineError: a worker failed (after all workers have ended).
    """
    try:
        pickle.dumps(objective)
    except Exception as exc:
        raise ConfigError(
            f"with n_workers={config.n_workers} the objective is sent to worker processes, so it "
            "must be picklable (a module-level function or an instance of a module-level class), "
            f"got {objective!r}: {exc}") from exc
    context = mp.get_context("spawn")
    counter = context.Value("i", n_trials_left)
    threads = max(1, (os.cpu_count() or 1) // config.n_workers)
    level = logging.getLogger("training").getEffectiveLevel()
    verbosity = optuna.logging.get_verbosity()  # this process's (-q: errors only)
    # The workers watch `watched` and stop when `lifeline` is closed: by this process when it
    # stops, by the kernel when it dies (see training.tuning.worker_exit).
    watched, lifeline = context.Pipe(duplex=False)
    processes = [
        context.Process(target=_worker_main, name=f"tuning-worker-{i}",
                        args=(i, config, storage, objective, counter, deadline, threads, level,
                              verbosity, watched, tracebacks_shown()))
        for i in range(config.n_workers)
    ]
    try:
        with sigint_ignored():  # until a worker's own handler is set (see worker_exit)
            for process in processes:
                process.start()
        for process in processes:
            while process.is_alive():
                process.join(timeout=_POLL_S)
                if on_wait is not None:
                    on_wait()
    except BaseException:
        # Interrupted: tell the workers (a Ctrl-C reached them too, a `kill -INT` of this
        # process did not), give them a moment to record their running trials as failed,
        # then stop any that remain.
        lifeline.close()
        for process in processes:
            if process.pid is not None:
                process.join(timeout=GRACE_S)
            if process.is_alive():
                process.terminate()
        raise
    finally:
        lifeline.close()
        watched.close()
    failed = [f"{p.name} (exit code {p.exitcode})" for p in processes if p.exitcode != 0]
    if failed:
        raise PipelineError(f"tuning workers failed: {', '.join(failed)}; their errors are in "
                            "the log above, the trials they finished are kept in the study")
    return n_trials_left - counter.value


def _worker_main(index: int, config: TuningConfig, storage: StorageSpec, objective: Any,
                 counter: Synchronized, deadline: float | None, threads: int, level: int,
                 verbosity: int, watched: Connection, tracebacks: bool) -> None:
    try:
        ParentWatch(watched).start()  # first: until here SIGINT was ignored
        _work(index, config, storage, objective, counter, deadline, threads, level, verbosity,
              tracebacks)
    except KeyboardInterrupt:  # Ctrl-C, or the command stopped: the trial is recorded failed
        sys.exit(130)
    except Exception as exc:
        if tracebacks:
            raise  # multiprocessing prints it
        logger.error("tuning worker %d stopped: %s: %s (-v shows the traceback)", index,
                     type(exc).__name__, exc)
        sys.exit(1)


def _work(index: int, config: TuningConfig, storage: StorageSpec, objective: Any,
          counter: Synchronized, deadline: float | None, threads: int, level: int,
          verbosity: int, tracebacks: bool) -> None:
    logging.basicConfig(level=level, format=f"%(asctime)s worker-{index} %(levelname)s "
                                            "%(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # each trial refits: its warnings, once
        handler.addFilter(OncePerCommand())
    set_progress_mode("off")  # the parent shows the trials; a bar per worker would garble it
    # Optuna's lines: INFO with our INFO logs, else warnings, or fewer where the parent
    # process had fewer (the command's -q: see training.tuning.trial_logs)
    optuna.logging.set_verbosity(max(verbosity, optuna.logging.INFO if level <= logging.INFO
                                     else optuna.logging.WARNING))
    torch = sys.modules.get("torch")  # imported with the objective, if it trains a model
    if torch is not None:
        torch.set_num_threads(threads)  # the workers share the cores instead of each taking all
    with trial_tracebacks(shown=tracebacks):
        study = open_study(config, storage, parallel=True, worker_index=index)
        run_trials(study, objective, SharedBudget(counter), config.n_trials, deadline,
                   worker_name(index))
