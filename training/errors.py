"""The package's exception tree: every error we raise is a `PipelineError`.

Each class also subclasses the builtin it narrows, so callers that catch `ValueError` or
`OSError` keep working. A message about a mistyped name suggests the closest valid one
(`did_you_mean`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class PipelineError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(PipelineError, ValueError):
    """A parameter or configuration value breaks a rule; the message names both."""


class UnknownArgumentError(ConfigError, TypeError):
    """A function got a keyword argument it does not take (`hiden_dim=64`); the message names
    it and the closest valid one. A TypeError too, as Python's own "unexpected keyword
    argument" is, so callers that catch that keep working."""


class TooFewError(ConfigError):
    """The data has too few rows (or distinct times) for what was asked of it, e.g. a split
    into three non-empty parts; the pipeline skips a layer whose units raise it."""


class SchemaError(PipelineError, ValueError):
    """Data does not fit the expected schema (a missing header, an unknown field)."""


class SourceError(PipelineError, OSError):
    """An input cannot be read: missing path, truncated or corrupt file, structural error."""


class UnsafePathError(PipelineError, OSError):
    """A path the package would read or write through is a link, or a file someone planted
    where only this process may create one; refused so nothing is read or written through it."""


class WriteError(PipelineError, OSError):
    """A file cannot be written: the message names the file asked for, never a temporary name
    of the atomic writers, and the system's reason: "PATH: cannot be written (REASON)"."""

    def __str__(self) -> str:
        return f"{self.filename}: cannot be written ({self.strerror})"


class CheckpointError(PipelineError, RuntimeError):
    """Saved collection state is missing, inconsistent or belongs to another configuration."""


class NotSupportedError(PipelineError, NotImplementedError):
    """A feature that exists in the API but is not implemented yet."""


class NotFoundError(PipelineError, LookupError):
    """A named thing (model, version, alias, stage) does not exist; the message lists what does."""


class RegistryError(PipelineError, RuntimeError):
    """The model registry refuses a change (a version that exists, nothing to roll back to)."""


class TrainingError(PipelineError, RuntimeError):
    """Training cannot go on (e.g. the loss became NaN); the message says what to change."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, `systemctl stop`, `timeout`) in a command: raised where Ctrl-C's
    KeyboardInterrupt would be, so that the command stops the same way (its MLflow run ends
    KILLED, its run history says so, staged files are removed) and exits 143."""


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate a mistyped `word` most likely meant: the same but for case, else the one
    it begins (`prod` for `production`), else the closest spelling (difflib, ratio >= 0.6);
    None when none is close. Every "did you mean" of the package (flags, commands, values,
    configuration keys) comes from here."""
    names = [str(c) for c in candidates]
    folded = word.casefold()
    for pool in ([n for n in names if n.casefold() == folded],
                 [n for n in names if folded and n.casefold().startswith(folded)]):
        if len(pool) == 1:
            return pool[0]
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """The hint ` (did you mean X?)` for the candidate X `closest` to `word`; "" if none is."""
    match = closest(word, candidates)
    return f" (did you mean {match}?)" if match is not None else ""
