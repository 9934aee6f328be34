"""The quarantine file of a run that collects in memory (`pipeline`, `score`, `preprocess`): one
JSON line per record that could not be collected, with its file, line, field, reason and raw
text, so that nothing is dropped without a trace. `collect_to` keeps its own, appended batch by
batch (OUTPUT/`QUARANTINE_FILE`); `preprocess` writes its output folder's under the same name."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson

from training.artifacts.atomic import atomic_write
from training.sources.base import Reject

QUARANTINE_FILE = "quarantine.jsonl"


def write_quarantine(path: Path, rejects: Sequence[Reject]) -> Path:
    """Write `rejects` to `path` (JSON Lines, atomically, private: it holds raw input).

    Returns:
        `path`.
    """
    with atomic_write(path, private=True) as handle:
        handle.write(b"".join(orjson.dumps(r.to_dict()) + b"\n" for r in rejects))
    return path


def quarantine_path(output: Path) -> Path:
    """Where a run writing `output` keeps its quarantine: beside it, `<name>.quarantine.jsonl`."""
    return output.with_name(f"{output.stem}.quarantine.jsonl")
