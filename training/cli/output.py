"""Where a command's logs and progress go: stderr, at the level the global flags ask for.

Without flags: warnings, errors and progress (a bar on a terminal, a line now and then
elsewhere; see `training.console.progress`). `-v`: every step's INFO log as well. `-q`: no progress.
A logged warning or error reads as the command's own do (`warning: ...`, `error: ...`), and a
warning repeated word for word is shown once a command, and the Elasticsearch client's own
warnings (a failed node, a retry: ours say it) only with `-v`; INFO lines, for `-v` readers, name
their level and logger (`INFO training.pipeline.run: ...`), third-party ones too (MLflow's:
training.tracking.window has MLflow's loggers follow these levels).
Results go to stdout; nothing here touches it. An error in a background thread (TensorBoard's
writer on a full disk) is one warning line, its traceback only with `-v`: the main thread
reports what it did to the run.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from training.console import progress
from training.console.quiet import OncePerCommand, QuietClients
from training.console.terminal import inert

FORMAT = "%(levelname)s %(name)s: %(message)s"
logger = logging.getLogger(__name__)


class _Stderr(logging.StreamHandler):
    """A handler writing to the `sys.stderr` of the moment (tests and wrappers replace it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


class _Formatter(logging.Formatter):
    """Progress lines as "HH:MM:SS what: count", warnings and errors as "warning: message"
    (the command's own lines' form), INFO and DEBUG as level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        return inert(self._format(record))

    def _format(self, record: logging.LogRecord) -> str:
        if record.name == progress.logger.name:
            return f"{time.strftime('%H:%M:%S', time.localtime(record.created))} " \
                   f"{record.getMessage()}"
        if record.levelno >= logging.WARNING:
            text = f"{record.levelname.lower()}: {record.getMessage()}"
            if record.exc_info:  # logger.exception: its traceback, as the base class adds it
                text += "\n" + self.formatException(record.exc_info)
            return text
        return super().format(record)


@contextmanager
def command_output(verbose: bool = False, quiet: bool = False) -> Iterator[None]:
    """Logs and progress to stderr for the block (see the module docstring); what was set
    before is restored after it, so commands can run one after another in one process."""
    root = logging.getLogger()
    handler = _Stderr()
    handler.setFormatter(_Formatter(FORMAT))
    handler.addFilter(OncePerCommand())  # a warning repeated word for word: once a command
    if not verbose:  # the Elasticsearch client's own warnings: our lines say it (see quiet.py)
        handler.addFilter(QuietClients())
    saved = (root.level, progress.logger.level, progress.get_mode())
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    # Progress lines are INFO records; they pass at the default level too, unless --quiet.
    progress.logger.setLevel(logging.WARNING if quiet else logging.INFO)
    progress.set_mode("off" if quiet else "auto")
    saved_hook = threading.excepthook
    if not verbose:
        threading.excepthook = _thread_error
    try:
        yield
    finally:
        threading.excepthook = saved_hook
        root.removeHandler(handler)
        root.setLevel(saved[0])
        progress.logger.setLevel(saved[1])
        progress.set_mode(saved[2])


def _thread_error(args: threading.ExceptHookArgs) -> None:
    """One line for an exception that ended a background thread (see the module docstring)."""
    from training.cli.options import os_error

    exc = args.exc_value
    what = os_error(exc) if isinstance(exc, OSError) else f"{args.exc_type.__name__}: {exc}"
    name = args.thread.name if args.thread is not None else "a thread"
    logger.warning("background thread %s stopped: %s (-v shows the traceback)", name, what)
