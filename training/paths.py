"""Default locations, relative to the working directory as the original system had them.

All of them move together with one setting: the environment variable MAXIMUS_DATA_ROOT (default
"training"), e.g. MAXIMUS_DATA_ROOT=/srv/maximus puts preprocessed data in
/srv/maximus/data/preprocessed and checkpoints in /srv/maximus/checkpoints.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT_VARIABLE = "MAXIMUS_DATA_ROOT"


def root() -> Path:
    return Path(os.environ.get(ROOT_VARIABLE, "training"))


def preprocessed_dir() -> Path:
    return root() / "data" / "preprocessed"


def splits_dir() -> Path:
    return root() / "data" / "splits"


def collected_dir() -> Path:
    return root() / "data" / "collected"


def checkpoints_dir() -> Path:
    return root() / "checkpoints"


def tuning_dir() -> Path:
    return root() / "tuning"


def models_dir() -> Path:
    """The model registry (its SQLite database and per-version artifact folders)."""
    return root() / "models"


def logs_dir() -> Path:
    return root() / "logs"
