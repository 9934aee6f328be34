"""Size limits that an environment variable may raise: how much a file may make us allocate."""

from __future__ import annotations

import os

from training.errors import ConfigError


def byte_limit(variable: str, default: int) -> int:
    """The whole number of bytes >= 1 in `variable`, or `default` when it is not set."""
    text = os.environ.get(variable)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{variable} must be a whole number of bytes >= 1, got {text!r}")
    return value
