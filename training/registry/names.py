"""Names the registry accepts (models, versions, aliases), stages, and version schemes.

Model names and versions become folder names under the registry directory, so only a plain
name is accepted: letters, digits, `.`, `_`, `-` and `+`, starting with a letter or digit, at
most 128 characters. That rules out `..`, absolute paths, separators and hidden folders by
construction; `artifact_dir` checks the resolved path as well.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

from training.errors import ConfigError

STAGES = ("none", "staging", "production", "archived")
CHAMPION = "champion"  # the alias that always names the production version
CHALLENGER = "challenger"
VERSION_SCHEMES = ("semver", "timestamp")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)")
_TIMESTAMP = re.compile(r"\d{8}T\d{12}Z")  # what _TIMESTAMP_FORMAT writes
_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"


def check_name(kind: str, value: object) -> str:
    """`value` if it is a safe name for a model, version or alias; ConfigError otherwise."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ConfigError(
            f"{kind} must be 1-128 letters, digits, '.', '_', '-' or '+', starting with a letter "
            f"or digit (no path separators or '..'), got {value!r}")
    return value


def check_stage(stage: object) -> str:
    if stage not in STAGES:
        raise ConfigError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
    return str(stage)


def artifact_dir(root: Path, model_name: str, version: str) -> Path:
    """`root/model_name/version`, refusing anything that would land outside `root`."""
    folder = root / check_name("model_name", model_name) / check_name("version", version)
    if not folder.resolve().is_relative_to(root.resolve()):  # e.g. a symlinked model folder
        raise ConfigError(f"{folder} resolves outside the registry's artifact folder {root}")
    return folder


def version_scheme(version: str) -> str:
    """The scheme of `next_version` that `version` follows: "semver" (MAJOR.MINOR.PATCH, e.g.
    1.2.0) or "timestamp" (e.g. 20261127T142530123456Z).

    Raises:
        ConfigError: neither, e.g. "banana" or "v1.2".
    """
    if _SEMVER.fullmatch(version):
        return "semver"
    if _TIMESTAMP.fullmatch(version):
        return "timestamp"
    raise ConfigError(f"version must be MAJOR.MINOR.PATCH as the registry numbers its versions "
                      f"(e.g. 1.2.0), or a timestamp version (e.g. 20261127T142530123456Z), "
                      f"got {version!r}")


def version_key(version: str) -> tuple:
    """A sort key: semantic versions numerically, before anything else in text order."""
    match = _SEMVER.fullmatch(version)
    if match:
        return (0, tuple(int(x) for x in match.groups()), "")
    return (1, (), version)


def next_version(existing: list[str], scheme: str = "semver",
                 now: datetime | None = None) -> str:
    """A new version after `existing`.

    Args:
        existing: the model's versions so far.
        scheme: "semver" (the highest MAJOR.MINOR.PATCH with MINOR + 1, or 1.0.0) or
            "timestamp" (UTC, microseconds, e.g. 20261127T142530123456Z).
        now: the time for the timestamp scheme (default: the current time).
    """
    if scheme == "timestamp":
        return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime(
            _TIMESTAMP_FORMAT)
    if scheme != "semver":
        raise ConfigError(f"scheme must be one of {', '.join(VERSION_SCHEMES)}, got {scheme!r}")
    semantic = [tuple(int(x) for x in m.groups()) for v in existing if (m := _SEMVER.fullmatch(v))]
    if not semantic:
        return "1.0.0"
    major, minor, _ = max(semantic)
    return f"{major}.{minor + 1}.0"
