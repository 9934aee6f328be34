"""Windows local times in UTC, by the offsets each file's own records show.

Exports such as OTRF's write `TimeCreated` (nxlog: `EventTime`) in the host's local time;
Sysmon records also carry `UtcTime`. A `FileClock` holds, for one file, each host's UTC offset:
the most common difference between the two times among that host's records in that file,
rounded to 15 minutes. It is learnt per file and host, never carried from one file to
another: two recordings of one host may come from exports that write the time differently.

Real UTC offsets lie between -12:00 and +14:00. A difference outside that range but within
12 hours of it (OTRF's psh_lsass recording: TimeCreated 07:50 beside UtcTime 23:50, -16:00)
is a 12-hour clock written without AM/PM: it is still the shift that puts the file's local
times in UTC (all of them lie in the same half-day as its records with UtcTime) and is used,
with one warning naming the file and host. A difference further off is refused (warned of),
and that host's local times in that file are treated as having no known offset.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.sources.coerce import plain, to_timestamp
from training.sources.files import ByteStream, iter_blocks

logger = logging.getLogger(__name__)

QUARTER_HOUR_US = 15 * 60 * 1_000_000
HALF_DAY = 48  # quarter hours
REAL_OFFSETS = range(-48, 57)  # quarter hours: UTC-12:00 .. UTC+14:00
LOCAL_FIELDS = ("TimeCreated", "EventTime")  # local times, in this order of preference
HOST_FIELDS = ("Hostname", "Computer", "host")  # as WINDOWS_FIELD_MAP["host"]
NO_HOST = "(no host name)"
SCAN_BYTES = 64 << 20  # of each file, read ahead for its hosts' offsets
_FIELDS = re.compile(rb'"(UtcTime|TimeCreated|EventTime|Hostname|Computer|host)"\s*:\s*"([^"]*)"')
_ZONE = r"(Z|z|[+-]\d\d:?\d\d)$"  # text that names its own zone is no local time


def hhmm(quarters: int) -> str:
    """-64 -> '-16:00'."""
    sign = "-" if quarters < 0 else "+"
    return f"{sign}{abs(quarters) // 4:02d}:{abs(quarters) % 4 * 15:02d}"


class FileClock:
    """The UTC offsets of the hosts of one file (see the module docstring).

    Args:
        path: the file, for messages.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.offsets: dict[str | None, int] = {}  # host -> offset in quarter hours
        self._settled: set[str | None] = set()  # hosts learnt or refused
        self._warned: set[str | None] = set()

    def scan(self, source: ByteStream) -> FileClock:
        """Learn from the first `SCAN_BYTES` of `source` (the lines with both times) before
        any batch is read, so a batch of Security records alone converts as the ones after it
        whatever the block size. Returns self."""
        hosts, local, utc, lines = [], [], [], []
        for block in iter_blocks(source):
            for number, line in enumerate(block.data.split(b"\n"), block.line):
                if b'"UtcTime"' not in line:
                    continue
                found = dict(_FIELDS.findall(line))
                created = found.get(b"TimeCreated", found.get(b"EventTime"))
                if b"UtcTime" not in found or created is None:
                    continue  # a damaged line (its reader quarantines it) or no local time
                host = next((found[k] for k in (h.encode() for h in HOST_FIELDS) if found.get(k)),
                            None)
                hosts.append(None if host is None else host.decode(errors="replace"))
                local.append(created.decode(errors="replace"))
                utc.append(found[b"UtcTime"].decode(errors="replace"))
                lines.append(number)
            if source.offset >= SCAN_BYTES:
                break
        if hosts:
            codes, distinct = host_codes(pa.array(hosts, pa.string()))
            micros, _ = local_micros(pa.array(local, pa.string()))
            self.learn(codes, distinct, micros, _micros(pa.array(utc, pa.string())),
                       np.array(lines))
        return self

    def learn(self, codes: np.ndarray, hosts: list, local: np.ndarray, utc: np.ndarray,
              lines: np.ndarray | None) -> None:
        """Each host not yet settled: its most common local - UTC difference among its records
        with both times (-1: none), checked against the real offsets. `codes`: each record's
        index into `hosts`; `lines`: each record's line, for messages (None: unknown)."""
        both = (utc >= 0) & (local >= 0)
        steps = np.rint((local - utc) / QUARTER_HOUR_US).astype(np.int64)
        for code in np.unique(codes[both]):
            host = hosts[code]
            if host in self._settled:
                continue
            self._settled.add(host)
            mine = both & (codes == code)
            values, counts = np.unique(steps[mine], return_counts=True)
            shift = int(values[counts.argmax()])
            where = self._where(None if lines is None else lines[mine][0])
            if shift in REAL_OFFSETS:
                self.offsets[host] = shift
            elif shift + HALF_DAY in REAL_OFFSETS or shift - HALF_DAY in REAL_OFFSETS:
                self.offsets[host] = shift
                logger.warning(
                    "%s: host %s: its local time lies %s from UtcTime, no real UTC offset "
                    "(-12:00..+14:00): the export writes a 12-hour clock without AM/PM; its "
                    "records with a local time alone are put in UTC by the same %s",
                    where, host or NO_HOST, hhmm(shift), hhmm(shift))
            else:
                logger.warning(
                    "%s: host %s: its local time lies %s from UtcTime, no UTC offset "
                    "(-12:00..+14:00) nor a 12-hour clock: not used; its records with a local "
                    "time alone keep it as UTC", where, host or NO_HOST, hhmm(shift))

    def offset(self, host: str | None) -> int | None:
        """The host's offset in quarter hours, None when unknown. A record without a host name
        takes the file's offset when all its hosts share one."""
        if host is None and host not in self.offsets:
            shared = set(self.offsets.values())
            return shared.pop() if len(shared) == 1 else None
        return self.offsets.get(host)

    def warn_unknown(self, host: str | None, field: str, line: int | None) -> None:
        """Once per host: its local times are taken as UTC."""
        if host in self._warned:
            return
        self._warned.add(host)
        logger.warning("%s: %s taken as UTC for host %s: no record of that host in this file "
                       "carries UtcTime beside it to learn its offset from",
                       self._where(line), field, host or NO_HOST)

    def _where(self, line: int | None) -> str:
        return self.path if line is None or line < 1 else f"{self.path}: line {line}"


def host_codes(hosts: pa.Array) -> tuple[np.ndarray, list]:
    """Each record's index into the distinct host names, and those names (None last: no
    host; an empty name counts as none)."""
    hosts = pc.if_else(pc.equal(hosts, ""), pa.scalar(None, pa.string()), hosts)
    encoded = pc.dictionary_encode(hosts)
    distinct = encoded.dictionary.to_pylist() + [None]
    return encoded.indices.fill_null(len(distinct) - 1).to_numpy(zero_copy_only=False), distinct


def local_micros(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """A local-time column as epoch microseconds (-1: none), and which values name their own
    zone ("...Z", "+02:00"): those are instants already, not local times."""
    array = plain(column)
    if pa.types.is_timestamp(array.type):
        explicit = np.full(len(array), array.type.tz is not None)
    elif pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        explicit = pc.match_substring_regex(pc.utf8_trim_whitespace(array), _ZONE)
        explicit = explicit.fill_null(False).to_numpy(zero_copy_only=False)
    else:
        explicit = np.ones(len(array), bool)  # epoch numbers are UTC
    return _micros(array), explicit


def _micros(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return to_timestamp(column).values.cast(pa.int64()).fill_null(-1).to_numpy(
        zero_copy_only=False)


def utc_times(table: pa.Table, clock: FileClock, lines: np.ndarray | None) -> pa.Array:
    """Each record's time in UTC, by what it carries, best first: its own `UtcTime`; its local
    time (`TimeCreated`, nxlog's `EventTime`) less its host's offset in this file (a value
    naming its zone is taken as it is); the shipper's `@timestamp` (nxlog/Logstash: the
    ingest time, seconds after the event); else its local time taken as UTC, with a warning.
    The offsets are learnt from the table first (`FileClock.learn`). Null where no time.

    Args:
        table: records of one file; `clock` is that file's; `lines`: each record's line.
    """
    names, n = set(table.column_names), table.num_rows
    utc = _micros(table["UtcTime"]) if "UtcTime" in names else np.full(n, -1, np.int64)
    local, explicit = np.full(n, -1, np.int64), np.zeros(n, bool)
    field = np.full(n, LOCAL_FIELDS[0], object)
    for name in LOCAL_FIELDS:
        if name in names:
            micros, zoned = local_micros(table[name])
            take = (local < 0) & (micros >= 0)
            local, explicit = np.where(take, micros, local), np.where(take, zoned, explicit)
            field[take] = name
    codes, hosts = host_codes(first_text(table, HOST_FIELDS))
    clock.learn(codes, hosts, np.where(explicit, -1, local), utc, lines)
    offsets = [clock.offset(h) for h in hosts]
    known = np.array([o is not None for o in offsets])[codes]
    shift = np.array([o or 0 for o in offsets], np.int64)[codes] * QUARTER_HOUR_US
    ingest = (_micros(table["@timestamp"]) if "@timestamp" in names
              else np.full(n, -1, np.int64))
    has_local = local >= 0
    out = np.select([utc >= 0, has_local & explicit, has_local & known, ingest >= 0, has_local],
                    [utc, local, local - shift, ingest, local], -1)
    alone = (utc < 0) & has_local & ~explicit & ~known & (ingest < 0)
    for code in np.unique(codes[alone]):
        first = int(np.flatnonzero(alone & (codes == code))[0])
        clock.warn_unknown(hosts[code], field[first], None if lines is None else int(lines[first]))
    return pa.array(np.where(out >= 0, out, 0), pa.int64(), mask=out < 0).cast(
        pa.timestamp("us", tz="UTC"))


def first_text(table: pa.Table, candidates: tuple[str, ...]) -> pa.Array:
    """The first of `candidates` with a value (not blank), row by row; null where none."""
    present = []
    for name in candidates:
        if name in table.column_names:
            text = plain(table[name]).cast(pa.string())
            present.append(pc.if_else(pc.equal(pc.utf8_trim_whitespace(text), ""),
                                      pa.scalar(None, pa.string()), text))
    if not present:
        return pa.nulls(table.num_rows, pa.string())
    return present[0] if len(present) == 1 else pc.coalesce(*present)
