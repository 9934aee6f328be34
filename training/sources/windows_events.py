"""Windows Security, System and Sysmon events exported as JSON (nxlog, Winlogbeat-style flat
exports, the OTRF Security-Datasets recordings).

`event_type` is "<channel>:<EventID>", e.g. "security:4688", "sysmon:1", "system:7045".
Times (`training.sources.windows_clock`): a record's own `UtcTime`, else its local
`TimeCreated` (nxlog: `EventTime`) put in UTC by its host's offset in that file, learnt from
the file's records that carry both (OTRF: Sysmon records, UtcTime 07:30:42 beside TimeCreated
03:30:42), else the shipper's `@timestamp` (an ingest time), else the local time as UTC, with
a warning naming the file, line and host. `user` (`training.sources.windows_users`): the
acting account by event id, spelt without its domain. A placeholder ("-", "", "N/A") is no
value, in the user fields as in every other text field of the map (Security's ProcessName "-",
Sysmon's DestinationHostname "-"), except the host's: the file's clock knows hosts by their
names as written.
`file_path` is the object a record touches, by its path: a file (TargetFilename, ImageLoaded),
a Security audit's object (ObjectName, a file or registry key), the process a Sysmon 8/10
record accesses (TargetImage: lsass.exe of a credential dump, whose `process` is the one that
reads it, SourceImage) and the registry key of Sysmon 12-14 (TargetObject). The schema has no
column for the access mask (GrantedAccess) or the value written (Details): they stay extra
fields, read by layer 1 and named in its "extra fields" reasons. `file_hash` is one digest of
Sysmon's `Hashes` ("SHA1=..,MD5=..,SHA256=..,IMPHASH=..", the image's of a Sysmon 1 or 7),
in lower case, SHA256 first as the other sources give it, so one binary has one value; the
others are not kept (IMPHASH hashes the import table, not the file).
Recordings carry no labels: give the source a `default_label` ("malicious" for an attack
window) when you know the truth.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import replace
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.sources.base import RawBatch, Reject
from training.sources.coerce import map_distinct, plain, to_float
from training.sources.config import FORMATS, DataSource, DataSourceType
from training.sources.delimited import decode
from training.sources.json_file import JsonFileSource
from training.sources.windows_clock import FileClock, first_text, utc_times
from training.sources.windows_users import PLACEHOLDERS, USER_FIELDS, actors, without_placeholders

logger = logging.getLogger(__name__)
_HELD = 64  # batches read and not yet mapped (the collector reads a few ahead)
# What the source delivers: 2 = per-file offsets, event times first, actors; 3 = no
# placeholder in any text field, the object accessed as file_path, one file digest.
RECIPE = 3

WINDOWS_FIELD_MAP: dict[str, tuple[str, ...]] = {
    # The canonical time and user are those `derive` gives (see the module docstring); these
    # name the fields they are made of (kept out of the extra fields when wholly used).
    "timestamp": ("@timestamp", "UtcTime", "TimeCreated", "EventTime"),
    "host": ("Hostname", "Computer", "host"),
    "user": USER_FIELDS,
    "process": ("Image", "NewProcessName", "ProcessName", "Application", "SourceImage"),
    "parent_process": ("ParentImage", "ParentProcessName"),
    "command_line": ("CommandLine",),
    "source_ip": ("SourceIp", "SourceAddress", "IpAddress"),
    "dest_ip": ("DestinationIp", "DestAddress"),
    "source_port": ("SourcePort", "IpPort"),
    "dest_port": ("DestinationPort", "DestPort"),
    "protocol": ("Protocol",),
    "direction": ("Direction",),
    "file_path": ("TargetFilename", "ObjectName", "ImageLoaded", "TargetImage", "TargetObject"),
    "file_hash": ("Hashes", "Hash"),
    "domain": ("QueryName", "DestinationHostname"),
    "label": ("label",),
}
# Canonical text fields whose source fields lose their placeholders; not the host's, which the
# file's clock knows as written (`windows_clock`).
_PLACEHOLDER_FIELDS = ("user", "process", "parent_process", "command_line", "file_path",
                       "file_hash", "domain")
_DIGESTS = ("SHA256", "SHA1", "MD5")  # of Sysmon's Hashes, the first present is file_hash


def channel_name(channel: object) -> str:
    """'Microsoft-Windows-Sysmon/Operational' -> 'sysmon', 'Security' -> 'security'."""
    return str(channel).split("/")[0].split("-")[-1].strip().lower()


def file_digest(text: object) -> str | None:
    """One digest of Sysmon's hashes in lower case: 'SHA1=A3..,MD5=A0..,SHA256=C4..' ->
    'c4..' (SHA256, else SHA1, else MD5); a bare digest as it is, lower-cased; None when none
    is a file digest (an IMPHASH alone) or the text is a placeholder."""
    text = str(text).strip()
    if text in PLACEHOLDERS:
        return None
    if "=" not in text:
        return text.lower()
    digests = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
    digests = {name.strip().upper(): value.strip() for name, value in digests.items()}
    return next((digests[d].lower() for d in _DIGESTS if digests.get(d)), None)


class WindowsEventSource(JsonFileSource):
    """JSON Lines or JSON arrays of Windows event records.

    Each file has its own `FileClock` (its hosts' UTC offsets), learnt when the file is first
    read, under `collect` and `score --follow` alike (a followed file is known by its inode).
    """

    field_map: ClassVar = WINDOWS_FIELD_MAP
    derived_whole: ClassVar = frozenset({"file_hash"})  # an IMPHASH alone is no file digest
    format_name, format_fields = FORMATS[DataSourceType.WINDOWS_EVENTS]
    patterns: ClassVar[tuple[str, ...]] = ("*.json", "*.json.gz", "*.jsonl", "*.jsonl.gz",
                                           "*.zip")  # OTRF ships each recording as a zip

    def __init__(self, config: DataSource) -> None:
        super().__init__(config)
        self.clocks: dict[tuple, FileClock] = {}  # (path, device, inode) -> its clock
        # id(table) -> (table, its file's clock, its lines): read, `derive` not yet called
        self._held: dict[int, tuple[pa.Table, FileClock, np.ndarray]] = {}
        self._loose = FileClock("(a batch of unknown file)")
        self._placeholders = tuple(dict.fromkeys(
            (*USER_FIELDS, *(n for f in _PLACEHOLDER_FIELDS for n in self.fields.get(f, ())))))

    def recipe_params(self) -> dict[str, object]:
        # A collection begun before these rules (one offset per host for the whole source,
        # @timestamp first, "-" users) is not resumed with them: its events would mix both.
        return {**super().recipe_params(), "windows_rules": RECIPE}

    def read(self, stream: str, start: dict) -> Iterator[RawBatch]:
        clock = self._clock(stream)
        for batch in super().read(stream, start):
            batch = self._timeless_quarantined(replace(batch, table=without_placeholders(
                batch.table, self._placeholders)))
            while len(self._held) >= _HELD:  # batches never mapped (a reader closed early)
                del self._held[next(iter(self._held))]
            self._held[id(batch.table)] = (batch.table, clock, batch.lines)
            yield batch

    def _clock(self, stream: str) -> FileClock:
        """The file's clock, learnt from its first bytes when it is first read (`self.open`:
        under --follow, the part of the file that holds whole lines)."""
        try:
            info = os.stat(stream)
            key: tuple = (stream, info.st_dev, info.st_ino)
        except OSError:
            key = (stream,)
        if key not in self.clocks:
            with self.open(stream) as source:
                self.clocks[key] = FileClock(stream).scan(source)
        return self.clocks[key]

    def _timeless_quarantined(self, batch: RawBatch) -> RawBatch:
        """Records with no time at all, quarantined naming the field their kind uses (Sysmon
        UtcTime, nxlog EventTime, else TimeCreated), rather than the batch's first one."""
        table = batch.table
        present = [c for c in self.fields["timestamp"] if c in table.column_names]
        if not present or not table.num_rows:
            return batch
        missing = pc.is_null(first_text(table, tuple(present))).to_numpy(zero_copy_only=False)
        if not missing.any():
            return batch
        local = "EventTime" if "EventTime" in present and "TimeCreated" not in present \
            else "TimeCreated"
        channel = (plain(table["Channel"]).cast(pa.string()).to_pylist()
                   if "Channel" in table.column_names else [None] * table.num_rows)
        rows = np.flatnonzero(missing)
        data, starts, ends = batch.spans() if batch.spans else (b"", None, None)
        rejects = []
        for i in rows:
            field = "UtcTime" if channel_name(channel[i]) == "sysmon" else local
            line = int(batch.lines[i])
            raw = decode(data[starts[i]:ends[i]]) if starts is not None else str(
                table.slice(int(i), 1).to_pylist()[0])
            rejects.append(Reject(batch.stream, line if line > 0 else None,
                                  int(batch.records[i]), field,
                                  f"{field} = None is missing; every record of a source with "
                                  "a time field needs a time", raw))
        keep = np.flatnonzero(~missing)
        spans = batch.spans
        if spans is not None:
            spans = (lambda whole=spans: (lambda d, s, e: (d, s[keep], e[keep]))(*whole()))
        return replace(batch, table=table.take(pa.array(keep)), lines=batch.lines[keep],
                       records=batch.records[keep], spans=spans,
                       rejects=sorted(batch.rejects + rejects, key=lambda r: r.record))

    def derive(self, table: pa.Table) -> dict[str, pa.Array]:
        names = set(table.column_names)
        derived: dict[str, pa.Array] = {}
        if "EventID" in names:
            event_id = plain(table["EventID"]).cast(pa.string())
            if "Channel" in names:
                channel = map_distinct(plain(table["Channel"]), channel_name, pa.string())
                # A record without a Channel (others in the batch have one) keeps its bare EventID.
                derived["event_type"] = pc.coalesce(
                    pc.binary_join_element_wise(channel, event_id, ":"), event_id)
            else:
                derived["event_type"] = event_id
        held = self._held.pop(id(table), None)
        _, clock, lines = held if held is not None and held[0] is table else (
            None, self._loose, None)
        # A field map or time_field given in the config is used as given.
        if self.fields["timestamp"] == WINDOWS_FIELD_MAP["timestamp"] and \
                names & set(self.fields["timestamp"]):
            derived["timestamp"] = utc_times(table, clock, lines)
        if self.fields["user"] == USER_FIELDS and \
                names & {*USER_FIELDS, "AccountName", "ServiceAccount"}:
            derived["user"] = actors(table)
        hashes = [c for c in WINDOWS_FIELD_MAP["file_hash"] if c in names]
        if self.fields["file_hash"] == WINDOWS_FIELD_MAP["file_hash"] and hashes:
            derived["file_hash"] = map_distinct(first_text(table, tuple(hashes)), file_digest,
                                                pa.string())
        if "SeverityValue" in names:  # nxlog: 1 debug, 2 info, 3 warning, 4 error, 5 critical
            level = to_float(table["SeverityValue"], 0.0, "a severity level").values
            derived["severity"] = pc.max_element_wise(
                pc.min_element_wise(pc.divide(pc.subtract(level, 1.0), 4.0), 1.0), 0.0
            ).cast(pa.float32())
        return derived
