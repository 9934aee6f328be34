"""Optuna's own log lines at the command's level, and a failed trial's traceback only where it
was asked for (`-v`).

Optuna logs every failed trial as a warning with the exception's traceback attached, a
KeyboardInterrupt's too: Ctrl-C printed "Trial 13 failed with parameters: {...} because of the
following error: KeyboardInterrupt()." and ~35 lines of torch frames before the command's own
"interrupted" line. The error still propagates to the caller, which reports it (the command in
one line, its traceback with -v), so without -v the warning keeps its line and loses its
traceback. The trial is recorded failed as before; only the log line changes.

    with trial_tracebacks(shown=args.verbose):
        tuner.tune(objective)

Worker processes started inside the block follow it (`tracebacks_shown`, passed to each).

Optuna logs to a handler of its own, so the command's levels do not reach it; `optuna_lines`
sets its verbosity from the command's flags: every trial's INFO line with -v, its warnings by
default (a failed trial with its parameters), only its errors with -q. Optuna's warnings restate
what the command reports itself (a failed trial ends the command, or its worker, with our own
error line) or are noise to a quiet run (a fallback to independent sampling, a slow lock).
Worker processes take the quieter of this and their log level (`_work` in `workers`).

    with optuna_lines(verbose=args.verbose, quiet=args.quiet):
        tuner.tune(objective)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import optuna

OPTUNA_LOGGER = "optuna"
_shown = [True]  # what the innermost block asked for; outside any block Optuna's default


@contextmanager
def optuna_lines(verbose: bool, quiet: bool) -> Iterator[None]:
    """Optuna's verbosity for the block (see the module docstring), restored after it.

    Args:
        verbose: -v: Optuna's INFO lines too (-v wins over -q, as for our own logs).
        quiet: -q: Optuna's errors only.
    """
    saved = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose
                                 else optuna.logging.ERROR if quiet else optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(saved)


def tracebacks_shown() -> bool:
    """Whether failed trials' tracebacks are logged here (what worker processes are told)."""
    return _shown[-1]


@contextmanager
def trial_tracebacks(shown: bool) -> Iterator[None]:
    """Optuna's failed-trial warnings with their tracebacks (`shown`) or without, for the block.

    A filter on the handlers of Optuna's logger, not a level: the warning line stays, and
    nested blocks each add and remove their own.
    """
    def without_traceback(record: logging.LogRecord) -> bool:
        # The record is Optuna's own (its logger does not propagate): dropping the exception
        # leaves the message, which already names it ("... error: KeyboardInterrupt().").
        record.exc_info = None
        record.exc_text = None
        return True

    # A new function per block: a handler holds a filter once, so nested blocks need their
    # own. (Optuna's get_logger adds Optuna's handler, were it not there yet.)
    handlers = [] if shown else list(optuna.logging.get_logger(OPTUNA_LOGGER).handlers)
    for handler in handlers:
        handler.addFilter(without_traceback)
    _shown.append(shown)
    try:
        yield
    finally:
        _shown.pop()
        for handler in handlers:
            handler.removeFilter(without_traceback)
