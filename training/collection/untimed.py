"""A source none of whose events has a time, though one of its columns looks like one.

Splunk exports the event time as `_time`, other tools as `EventTime`, `start`, ...: a column the
field map does not name is kept as an extra, and every event is left without a time, so time
splits become random and layer 2 has nothing to window. `UntimedSource` warns once per source,
naming the column and the flag that maps it ("column _time looks like the event time:
--field-map timestamp=_time"). A column looks like the time when it is a timestamp column, when
its first value is text shaped as a date (`layer1_extra_kinds.text_kind`), or, failing those,
when its name says time (`layer1_extra_kinds.name_kind`: EventTime, start_ts).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from training.features.layer1_extra_kinds import TIME, name_kind, text_kind
from training.sources.coerce import plain

logger = logging.getLogger(__name__)


def time_like_column(table: pa.Table, names: Iterable[str]) -> str | None:
    """The first of `names` whose values look like times, else the first named for a time."""
    by_name = None
    for name in names:
        column = plain(table[name]).drop_null()
        if pa.types.is_timestamp(column.type) and len(column):
            return name
        if pa.types.is_string(column.type) and len(column) and text_kind(column[0].as_py()) == TIME:
            return name
        if by_name is None and name_kind(name) == TIME:
            by_name = name
    return by_name


class UntimedSource:
    """Warns, once per source, that its events have no time though a column looks like one.

    One instance per source reader; the batches of one source may be mapped in several threads.
    """

    def __init__(self) -> None:
        self.warned = False
        self._lock = threading.Lock()

    def check(self, source: str, times: pa.Array | pa.ChunkedArray, table: pa.Table,
              unmapped: Iterable[str]) -> bool:
        """Warn when no time of a non-empty batch is known and a column of `unmapped` (the
        batch's fields no canonical column took) looks like one.

        Returns:
            Whether this call warned.
        """
        if self.warned or not len(times) or pc.count(times).as_py():
            return False
        column = time_like_column(table, unmapped)
        if column is None:
            return False
        with self._lock:
            if self.warned:
                return False
            self.warned = True
        logger.warning("source %s: no event has a time, but column %s looks like the event "
                       "time: --field-map timestamp=%s", source, column, column)
        return True
