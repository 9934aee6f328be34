"""The quarantine file of a run that collects in memory (`pipeline`, `score`, `preprocess`): one
JSON line per record that could not be collected, with its file, line, field, reason and raw
text, so that nothing is dropped without a trace. `collect_to` keeps its own, appended batch by
batch (OUTPUT/`QUARANTINE_FILE`); `preprocess` writes its output folder's under the same name."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
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


def common_reasons(rejects: Iterable[Reject | Mapping], top: int = 3) -> str:
    """The `top` most common reasons of `rejects` (or of their `to_dict()` lines, as the
    quarantine file holds them), with counts and the first such record's reason as it was
    written: "@timestamp 300 (e.g. @timestamp = 'Feb 22, 2023' is not a timestamp ...)".
    A field fault counts by field (as the collection's `quarantine_reasons`), another by the
    reason's words before any colon."""
    counts: Counter[str] = Counter()
    first: dict[str, str] = {}
    for reject in rejects:
        row = reject.to_dict() if isinstance(reject, Reject) else reject
        reason = str(row.get("reason", ""))
        key = row["field"] if row.get("field") else reason.split(":")[0]
        counts[key] += 1
        first.setdefault(key, reason)
    return ", ".join(f"{key} ({count:,} record{'s' if count != 1 else ''})" if first[key] == key
                     else f"{key} {count:,} (e.g. {first[key]})"
                     for key, count in counts.most_common(top))


def read_quarantine(path: Path, source: str | None = None) -> Iterator[dict]:
    """The records of the quarantine file `path` (of `source` only, when given)."""
    with path.open("rb") as handle:
        for line in handle:
            row = orjson.loads(line)
            if source is None or row.get("source") == source:
                yield row
