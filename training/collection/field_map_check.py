"""A user field map naming a field no record has: one warning per source, with the closest name.

`--field-map timestamp=_tme` (a typo of `_time`) would otherwise read every event without a
time and say nothing. The map's keys are checked when it is resolved
(`training.collection.schema.resolve_field_map`); its values can only be checked against the
records, so the first batch of each source with records is (collect, pipeline, score and
`--follow` all map batches with `training.collection.canonical.canonicalize`). An entry with
several names is fine when one of them is present.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Mapping, Sequence

from training.errors import closest

logger = logging.getLogger(__name__)


class MissingFields:
    """Warns, once per source, about the entries of its user field map whose field(s) the
    records of its first batch with records lack.

    One instance per source reader: the collector and `--follow` map batches in several
    threads, hence the lock.

    Args:
        source: the source's name, for the message.
        field_map: the user's entries (canonical field -> source field or names); the source's
            own defaults are not checked (most of their names are absent from any one format).
    """

    def __init__(self, source: str, field_map: Mapping[str, str | Sequence[str]] | None) -> None:
        self.source = source
        self.entries = {field: (names,) if isinstance(names, str) else tuple(names)
                        for field, names in (field_map or {}).items()}
        self.checked = not self.entries
        self._lock = threading.Lock()

    def check(self, columns: Collection[str], rows: int, stream: str) -> list[str]:
        """Warn about the entries none of whose names is in `columns` (of a batch of `rows`
        records read from `stream`), the first time a batch with records is given.

        Returns:
            The warnings given (empty when none, or when the check was already done).
        """
        if self.checked or not rows:
            return []
        with self._lock:
            if self.checked:
                return []
            self.checked = True
        present = set(columns)
        warnings = []
        for field, names in self.entries.items():
            if present.intersection(names):
                continue
            missing = " or ".join(names)
            close = closest(names[0], sorted(present))
            hint = (f"did you mean {close}?" if close is not None else
                    "its fields are " + ", ".join(sorted(present)[:8])
                    + (", ..." if len(present) > 8 else ""))
            warnings.append(f"source {self.source} ({stream}): field map {field}={','.join(names)}: no "
                            f"record has field {missing} ({hint})")
        for warning in warnings:
            logger.warning("%s", warning)
        return warnings
