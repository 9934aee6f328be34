"""A worker process ends with the command that started it, whichever way that one ends.

The command holds the writing end of a pipe whose reading end every worker watches from a
thread (`ParentWatch`). The command closes it when it stops (Ctrl-C, an error); the kernel
closes it when the command dies (`kill -9`, a crash, the OOM killer), which no code of the
command can do. Either way the reading end reaches end-of-file, and the worker interrupts its
own main thread: the running trial is recorded failed, as a Ctrl-C records it, and the worker
exits. Workers killed with their command no longer run on under PID 1, finishing a study whose
best_params.json and trials.csv nobody would write. A pipe, not `os.getppid()` polling: it
works wherever multiprocessing does, and wakes the thread at once.

Ctrl-C in a terminal reaches the workers too. A worker stops at the first one (a second, or the
watch's own interrupt after it, would break off the recording of the failed trial), and it
starts with SIGINT ignored (`sigint_ignored` around its start), so that a Ctrl-C while it
imports torch ends it quietly rather than with the traceback of an import.
"""

from __future__ import annotations

import _thread
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from types import FrameType

logger = logging.getLogger(__name__)

GRACE_S = 10.0  # seconds an interrupted worker has to record its trial before it is ended


@contextmanager
def sigint_ignored() -> Iterator[None]:
    """SIGINT ignored in this process for the block, so processes spawned in it start so (an
    ignored signal stays ignored across exec; Python then installs no handler of its own).

    Only in the main thread, the one place signal handlers can be set; elsewhere a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, saved)


class ParentWatch:
    """In a worker process: stop when the command closes `connection`'s other end or dies.

    Args:
        connection: the reading end of the command's pipe; nothing is ever sent on it.
        grace_s: seconds the interrupted main thread has before the process exits anyway
            (a thread stuck in a C call never sees the interrupt).
    """

    def __init__(self, connection: Connection, grace_s: float = GRACE_S) -> None:
        self.connection = connection
        self.grace_s = grace_s
        self.stopping = False

    def start(self) -> None:
        """Handle SIGINT and SIGTERM here (once) and start watching; call from the main
        thread. SIGTERM too: `timeout` and `systemctl stop` signal the whole group, and a
        worker killed outright left its trial RUNNING (review)."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._interrupt)
        threading.Thread(target=self._watch, name="tuning-parent-watch", daemon=True).start()

    def _interrupt(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:  # already stopping: let the failed trial be recorded
            return
        self.stopping = True
        raise KeyboardInterrupt

    def _watch(self) -> None:
        try:
            self.connection.poll(None)  # end-of-file: the command has stopped or died
        except OSError:
            pass
        parent = multiprocessing.parent_process()
        if parent is not None and not parent.is_alive():  # killed: say why the trial failed
            logger.warning("the tuning command (pid %s) has died: worker %d stops, its running "
                           "trial is recorded failed", parent.pid, os.getpid())
        else:  # it stopped and says so itself
            logger.info("the tuning command has stopped: worker %d stops too", os.getpid())
        _thread.interrupt_main()  # runs `_interrupt` in the main thread
        time.sleep(self.grace_s)
        logger.warning("worker %d did not stop within %g s of its command: ended",
                       os.getpid(), self.grace_s)
        os._exit(1)
