"""Windows Security, System and Sysmon events exported as JSON (nxlog, Winlogbeat-style flat
exports, the OTRF Security-Datasets recordings).

`event_type` is "<channel>:<EventID>", e.g. "security:4688", "sysmon:1", "system:7045".
Times: `@timestamp`, else `UtcTime`, else `TimeCreated`. Exports such as OTRF's write
`TimeCreated` in the host's local time (Sysmon records: UtcTime 07:30:42, TimeCreated 03:30:42),
so each host's offset is learnt from its records that carry both (rounded to 15 minutes) and
taken off the `TimeCreated` of its records that have nothing else (Security, System); a host
with no such record keeps `TimeCreated` as UTC, with a warning. Recordings carry no labels:
give the source a `default_label` ("malicious" for an attack window) when you know the truth.
"""

from __future__ import annotations

import logging
import re
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.sources.coerce import map_distinct, plain, to_float, to_timestamp
from training.sources.config import FORMATS, DataSource, DataSourceType
from training.sources.files import ByteStream, iter_blocks
from training.sources.json_file import JsonFileSource

logger = logging.getLogger(__name__)
_QUARTER_HOUR_US = 15 * 60 * 1_000_000  # UTC offsets are whole quarter hours
_SCAN_BYTES = 64 << 20  # of each file, read ahead for its hosts' offsets
_TIME_FIELDS = re.compile(rb'"(UtcTime|TimeCreated|Hostname|Computer|host)"\s*:\s*"([^"]*)"')
_HOST_KEYS = (b"Hostname", b"Computer", b"host")  # as WINDOWS_FIELD_MAP["host"]

WINDOWS_FIELD_MAP: dict[str, tuple[str, ...]] = {
    "timestamp": ("@timestamp", "UtcTime", "TimeCreated"),
    "host": ("Hostname", "Computer", "host"),
    "user": ("User", "TargetUserName", "SubjectUserName", "AccountName"),
    "process": ("Image", "NewProcessName", "ProcessName", "Application", "SourceImage"),
    "parent_process": ("ParentImage", "ParentProcessName"),
    "command_line": ("CommandLine",),
    "source_ip": ("SourceIp", "SourceAddress", "IpAddress"),
    "dest_ip": ("DestinationIp", "DestAddress"),
    "source_port": ("SourcePort", "IpPort"),
    "dest_port": ("DestinationPort", "DestPort"),
    "protocol": ("Protocol",),
    "direction": ("Direction",),
    "file_path": ("TargetFilename", "ObjectName", "ImageLoaded"),
    "file_hash": ("Hashes",),
    "domain": ("QueryName", "DestinationHostname"),
    "label": ("label",),
}


def channel_name(channel: object) -> str:
    """'Microsoft-Windows-Sysmon/Operational' -> 'sysmon', 'Security' -> 'security'."""
    return str(channel).split("/")[0].split("-")[-1].strip().lower()


class WindowsEventSource(JsonFileSource):
    """JSON Lines or JSON arrays of Windows event records."""

    field_map: ClassVar = WINDOWS_FIELD_MAP
    format_name, format_fields = FORMATS[DataSourceType.WINDOWS_EVENTS]
    patterns: ClassVar[tuple[str, ...]] = ("*.json", "*.json.gz", "*.jsonl", "*.jsonl.gz",
                                           "*.zip")  # OTRF ships each recording as a zip

    def __init__(self, config: DataSource) -> None:
        super().__init__(config)
        self.utc_offsets: dict[object, int] = {}  # host -> its UTC offset, in quarter hours
        self._warned: set[str] = set()

    def open(self, stream: str) -> ByteStream:
        self._learn_offsets(stream)
        return super().open(stream)

    def _learn_offsets(self, stream: str) -> None:
        """Each host's UTC offset from the file's first `_SCAN_BYTES` (records with both times),
        before its batches are read: a batch of Security records alone then converts as the
        ones after it, whatever the block size. Later hosts are learnt batch by batch."""
        hosts, created, utc = [], [], []
        with super().open(stream) as source:
            for block in iter_blocks(source):
                for line in block.data.split(b"\n"):
                    if b'"UtcTime"' in line and b'"TimeCreated"' in line:
                        found = dict(_TIME_FIELDS.findall(line))
                        if b"UtcTime" not in found or b"TimeCreated" not in found:
                            continue  # a damaged line: its reader quarantines it
                        host = next((found[k] for k in _HOST_KEYS if found.get(k)), None)
                        hosts.append(None if host is None else host.decode(errors="replace"))
                        created.append(found[b"TimeCreated"].decode(errors="replace"))
                        utc.append(found[b"UtcTime"].decode(errors="replace"))
                if source.offset >= _SCAN_BYTES:
                    break
        if hosts:
            encoded = pc.dictionary_encode(pa.array(hosts, pa.string()))
            self._learn(*_codes(encoded), _micros(pa.array(created)), _micros(pa.array(utc)))

    def _learn(self, codes: np.ndarray, hosts: list, created: np.ndarray,
               utc: np.ndarray) -> None:
        """Each new host's most common offset, in quarter hours, among its records with both
        times (`codes`: each record's index into `hosts`)."""
        both = (utc >= 0) & (created >= 0)
        steps = np.rint((created[both] - utc[both]) / _QUARTER_HOUR_US).astype(np.int64)
        for code in np.unique(codes[both]):
            if hosts[code] not in self.utc_offsets:
                values, counts = np.unique(steps[codes[both] == code], return_counts=True)
                self.utc_offsets[hosts[code]] = int(values[counts.argmax()])

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
        if "TimeCreated" in names:
            derived["timestamp"] = self._created_in_utc(table)
        if "SeverityValue" in names:  # nxlog: 1 debug, 2 info, 3 warning, 4 error, 5 critical
            level = to_float(table["SeverityValue"], 0.0, "a severity level").values
            derived["severity"] = pc.max_element_wise(
                pc.min_element_wise(pc.divide(pc.subtract(level, 1.0), 4.0), 1.0), 0.0
            ).cast(pa.float32())
        return derived

    def _created_in_utc(self, table: pa.Table) -> pa.Array:
        """`TimeCreated` less its host's UTC offset, for the records with no `@timestamp` or
        `UtcTime` (null elsewhere: the field map's time stands there)."""
        names = set(table.column_names)
        created = _micros(table["TimeCreated"])  # -1: none (times before 1970 are refused)
        codes, hosts = _codes(pc.dictionary_encode(_first_text(table, WINDOWS_FIELD_MAP["host"])))
        if "UtcTime" in names:
            self._learn(codes, hosts, created, _micros(table["UtcTime"]))
        alone = created >= 0
        for name in ("@timestamp", "UtcTime"):
            if name in names:
                alone &= pc.is_null(table[name]).to_numpy(zero_copy_only=False)
        offsets = np.array([self.utc_offsets.get(h, 0) for h in hosts], np.int64)  # per host
        shift = offsets[codes] * _QUARTER_HOUR_US
        unknown = sorted({"(no host)" if hosts[c] is None else hosts[c]
                          for c in np.unique(codes[alone]) if hosts[c] not in self.utc_offsets}
                         - self._warned)
        if unknown:
            self._warned.update(unknown)
            logger.warning("TimeCreated taken as UTC for host(s) %s: no record of theirs carries "
                           "UtcTime beside it to learn their offset from", ", ".join(unknown))
        return pa.array(np.where(alone, created - shift, 0), pa.int64(),
                        mask=~alone).cast(pa.timestamp("us", tz="UTC"))


def _codes(encoded: pa.Array) -> tuple[np.ndarray, list]:
    """Each record's index into the distinct hosts, and those hosts (None last: no host)."""
    hosts = encoded.dictionary.to_pylist() + [None]
    return encoded.indices.fill_null(len(hosts) - 1).to_numpy(zero_copy_only=False), hosts


def _micros(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return to_timestamp(column).values.cast(pa.int64()).fill_null(-1).to_numpy(
        zero_copy_only=False)


def _first_text(table: pa.Table, candidates: tuple[str, ...]) -> pa.Array:
    present = [plain(table[c]).cast(pa.string()) for c in candidates if c in table.column_names]
    if not present:
        return pa.nulls(table.num_rows, pa.string())
    return present[0] if len(present) == 1 else pc.coalesce(*present)
