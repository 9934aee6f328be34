"""Windows Security, System and Sysmon events exported as JSON (nxlog, Winlogbeat-style flat
exports, the OTRF Security-Datasets recordings).

`event_type` is "<channel>:<EventID>", e.g. "security:4688", "sysmon:1", "system:7045".
Times: `@timestamp`, else `UtcTime`, else `TimeCreated` (UTC). Recordings carry no labels: give
the source a `default_label` ("malicious" for an attack window) when you know the truth.
"""

from __future__ import annotations

from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from training.sources.coerce import map_distinct, plain, to_float
from training.sources.json_file import JsonFileSource

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
    patterns: ClassVar[tuple[str, ...]] = ("*.json", "*.json.gz", "*.jsonl", "*.jsonl.gz")

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
        if "SeverityValue" in names:  # nxlog: 1 debug, 2 info, 3 warning, 4 error, 5 critical
            level = to_float(table["SeverityValue"], 0.0, "a severity level").values
            derived["severity"] = pc.max_element_wise(
                pc.min_element_wise(pc.divide(pc.subtract(level, 1.0), 4.0), 1.0), 0.0
            ).cast(pa.float32())
        return derived
