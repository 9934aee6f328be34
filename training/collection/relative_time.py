"""Event times that are offsets, not dates: one warning per source whose times lie before 1990.

Some captures are written with times relative to their start (Zeek run on a pcap whose
timestamps were rebased to 0: `ts` 928.94), which `to_timestamp` reads as seconds after the
Unix epoch, so their events land on 1970-01-01. The rule: a file with an event time before
`RELATIVE_BEFORE` (1990-01-01T00:00Z) has relative times. No telemetry these sources read
predates 1990 (Zeek, Suricata and the Windows event formats all came later), and a relative
offset would have to span 20 years to reach it, so the rule has no false alarm either way.
Such times still order the file's events, so its hourly windows and time splits are sound
within the file; only the dates are meaningless.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc

logger = logging.getLogger(__name__)

RELATIVE_BEFORE = datetime(1990, 1, 1, tzinfo=timezone.utc)


class RelativeTimes:
    """Warns once that a file's event times look relative (`RELATIVE_BEFORE`); the files of
    the same source found so after it are logged at INFO (one capture's logs share one start).

    One instance per source reader: the collector and `--follow` map the batches of one
    file in several threads, hence the lock.
    """

    def __init__(self) -> None:
        self.files: set[str] = set()  # files warned about
        self._lock = threading.Lock()

    def check(self, times: pa.Array | pa.ChunkedArray, file: str) -> bool:
        """Warn when a time of `times` (events of `file`) lies before `RELATIVE_BEFORE` and no
        file was found so before (the later ones: INFO, once each).

        Returns:
            Whether this call warned.
        """
        if file in self.files or not len(times):
            return False
        earliest = pc.min(times).as_py()  # of this batch: the file's batches map in threads
        if earliest is None or earliest >= RELATIVE_BEFORE:
            return False
        with self._lock:
            if file in self.files:
                return False
            first = not self.files
            self.files.add(file)
        such_as = earliest.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if not first:  # the logs of one capture (a Zeek folder) share its start: said once
            logger.info("%s: event times look relative too (such as %s)", file, such_as)
            return False
        logger.warning("%s: event times before 1990 (such as %s) look relative (counted from "
                       "the capture's start), not dates: hourly incidents and time splits stay "
                       "consistent within this file, but its dates are meaningless and do not "
                       "line up with other captures' (any other file of this source whose "
                       "times look relative is named with -v)", file, such_as)
        return True
