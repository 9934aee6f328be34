"""Zeek logs: TSV with #separator/#fields/#types headers, or Zeek JSON; any log type.

TSV follows the header: the declared separator, set separator, unset ("-" -> null) and empty
("(empty)" -> "" or []) markers, typed columns (time/interval/double -> float, count/int/port
-> integer, bool T/F), sets and vectors as lists. Quirks handled: whitespace before
"#separator" (seen in real logs) and a UTF-8 byte order mark before it (a log saved by a
Windows editor or tool), "#close" and other comment lines anywhere, labeled logs with
extra `label`/`detailedlabel` columns, gzip. A second header inside a file must repeat the
first one's fields; otherwise the file has to be split (the error names the line).

The log type (conn, dns, http, ...) is the `#path` header, else the JSON `_path` field, else
the file name (conn.log, conn.04:00:00-05:00:00.log.gz, labeled-conn.log, conn.log.labeled).
It becomes `event_type`. Rows of conn logs, whose uid is unique per row, get event ids
"conn:<uid>"; other logs repeat ids across rows (several DNS queries per connection; a file
logged again when its analysis times out, under its fuid), so their rows are identified by
content.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.errors import SourceError
from training.sources.base import Parsed, RawBatch
from training.sources.coerce import direction_from_locality, to_bool, to_float, to_int
from training.sources.config import FORMATS, DataSourceType
from training.sources.delimited import Dialect, decode, parse_block, strings_as
from training.sources.files import ByteStream
from training.sources.json_file import JsonFileSource
from training.sources.lines import read_lines

ZEEK_FIELD_MAP: dict[str, tuple[str, ...]] = {
    "timestamp": ("ts",),
    "event_type": ("_path",),
    "source_ip": ("id.orig_h", "src", "tx_hosts"),
    "source_port": ("id.orig_p",),
    "dest_ip": ("id.resp_h", "dst", "rx_hosts"),
    "dest_port": ("id.resp_p", "p"),
    "protocol": ("proto",),
    "service": ("service",),
    "bytes_sent": ("orig_bytes",),
    "bytes_received": ("resp_bytes",),
    "packets_sent": ("orig_pkts",),
    "packets_received": ("resp_pkts",),
    "duration": ("duration",),
    "conn_state": ("conn_state",),
    "direction": ("direction",),
    "community_id": ("community_id",),
    "user": ("username", "user"),
    "host": ("host_name", "hostname"),
    "domain": ("query", "server_name", "host"),
    "file_path": ("filename",),
    "file_hash": ("sha256", "sha1", "md5"),
    "label": ("label",),
    "attack_type": ("detailedlabel", "detailed-label", "detailed_label"),
}
# The mapped fields Zeek writes as a set (files.log tx_hosts and rx_hosts, known_services.log
# service); it writes every other one as one value, and none as an object: its writer flattens
# records into dotted names (id.orig_h).
ZEEK_LIST_FIELDS = frozenset({"tx_hosts", "rx_hosts", "service"})
ROW_ID_COLUMNS = {"conn": ("uid",)}
# The fields Zeek's logs type `bool` (written T/F in TSV, true/false in JSON), by log: conn,
# files (is_orig, local_orig, timedout, extracted_cutoff), dns (AA, TC, RD, RA, rejected), ssl,
# x509, ssh, smtp, ftp, kerberos, ntlm, mysql, rdp, pe, notice (dropped), weird (notice),
# packet_filter (init, success). A TSV log declares them in #types; a log exported as CSV does
# not, and its reader reads them by name (`training.sources.csv_file`).
ZEEK_BOOL_FIELDS = frozenset({
    "local_orig", "local_resp", "is_orig", "timedout", "extracted_cutoff", "AA", "TC", "RD",
    "RA", "rejected", "resumed", "established", "sni_matches_cert", "notary.valid",
    "basic_constraints.ca", "host_cert", "client_cert", "auth_success", "tls", "is_webmail",
    "data_channel.passive", "renewable", "forwardable", "success", "ssl", "is_exe", "is_64bit",
    "uses_aslr", "uses_dep", "uses_code_integrity", "uses_seh", "has_import_table",
    "has_export_table", "has_cert_table", "has_debug_data", "dropped", "notice", "init",
})
KNOWN_LOGS = (
    "conn", "dns", "http", "ssl", "x509", "files", "notice", "weird", "ssh", "smtp", "ftp",
    "dhcp", "ntp", "kerberos", "ntlm", "smb_files", "smb_mapping", "dce_rpc", "rdp", "sip",
    "snmp", "tunnel", "dpd", "software", "known_hosts", "known_services", "known_certs",
    "loaded_scripts", "packet_filter", "capture_loss", "stats", "reporter", "pe", "quic",
    "arp", "irc", "mysql", "radius", "socks", "syslog", "intel", "signatures", "traceroute",
    "modbus", "dnp3", "ocsp", "analyzer", "telemetry",
)
# Logs of protocols Zeek analyzes over TCP only: their rows carry the connection's 4-tuple and
# uid but no `proto`, so the source writes it (`with_transport`) and the row gets the Community
# ID of its conn row. Not here: logs of a protocol seen over UDP too (dns, sip, ntlm and
# kerberos, ssl with DTLS and QUIC, rdp with RDPEUDP, dnp3, ldap, syslog) and logs of no one
# connection (weird, tunnel, notice, files).
TCP_LOGS = frozenset({"http", "ssh", "smtp", "ftp", "smb_files", "smb_mapping", "mysql", "irc",
                      "socks", "modbus", "postgresql"})
UNTIMED_LOGS = ("loaded_scripts",)  # logs whose records carry none of ZeekSource.format_fields
_LOG_NAME = re.compile(r"(?:^|[._-])(" + "|".join(sorted(KNOWN_LOGS, key=len, reverse=True))
                       + r")(?=$|[._-])")
_SCALAR_TYPES = {
    "time": pa.float64(), "interval": pa.float64(), "double": pa.float64(),
    "count": pa.int64(), "int": pa.int64(), "port": pa.int64(), "bool": pa.bool_(),
}
_CONVERTERS = {
    pa.float64(): lambda a: to_float(a, float("-inf"), "a number"),
    pa.int64(): lambda a: to_int(a, -(2**63), 2**63 - 1, pa.int64(), "an integer"),
    pa.bool_(): to_bool,
}
_MAX_HEADER = 1 << 20
UTF8_BOM = b"\xef\xbb\xbf"


def log_type_from_name(name: str) -> str | None:
    """The Zeek log type a file name points to, if any."""
    match = _LOG_NAME.search(name.lower())
    return match.group(1) if match else None


@dataclass(frozen=True)
class ZeekHeader:
    """The #-lines at the top of a Zeek TSV log."""

    separator: str
    set_separator: str
    empty_field: str
    unset_field: str
    path: str | None
    fields: list[str]
    types: list[str]
    data_start: int
    data_line: int

    @classmethod
    def parse(cls, head: bytes, stream: str) -> ZeekHeader:
        """The header at the start of `head` (the first bytes of the log `stream`)."""
        meta: dict[str, str] = {}
        separator, offset, line = "\t", 0, 1
        for raw in head.splitlines(keepends=True):
            text = decode(raw).strip("\r\n").removeprefix("\ufeff" if line == 1 else "")
            if not text.lstrip().startswith("#"):
                break
            text = text.lstrip()
            if text.startswith("#separator"):
                declared = text[len("#separator"):].strip()
                try:
                    separator = declared.encode().decode("unicode_escape")
                except UnicodeDecodeError:
                    separator = declared
                if len(separator) != 1:
                    raise SourceError(f"{stream}: line {line} declares the field separator "
                                      f"{declared!r}; a Zeek log separates fields with one "
                                      "character (\\x09)")
            else:
                key, _, value = text[1:].partition(separator)
                meta[key] = value
            offset += len(raw)
            line += 1
        if "fields" not in meta:
            raise SourceError(f"{stream}: no #fields header line in the first {line - 1} lines; a "
                              "Zeek TSV log starts with #separator, #fields and #types lines")
        fields = meta["fields"].split(separator)
        types = meta.get("types", "").split(separator) if "types" in meta else ["string"] * len(fields)
        if len(types) != len(fields):
            raise SourceError(f"{stream}: #fields lists {len(fields)} names but #types lists "
                              f"{len(types)}")
        return cls(separator, meta.get("set_separator", ","), meta.get("empty_field", "(empty)"),
                   meta.get("unset_field", "-"), meta.get("path"), fields, types, offset, line)


class ZeekSource(JsonFileSource):
    """A Zeek log file, a folder of logs or a glob; TSV and JSON may be mixed."""

    field_map: ClassVar = ZEEK_FIELD_MAP
    patterns: ClassVar[tuple[str, ...]] = ("*.log", "*.log.gz", "*.labeled", "*.json", "*.json.gz")
    # zeekctl writes each node's process output beside its logs (logs/current): plain text
    excluded: ClassVar[tuple[str, ...]] = ("stdout.log", "stderr.log")
    format_name, format_fields = FORMATS[DataSourceType.ZEEK_LOGS]
    object_fields: ClassVar[frozenset[str]] = frozenset()
    single_value_fields: ClassVar[frozenset[str]] = frozenset(
        name for names in ZEEK_FIELD_MAP.values() for name in names) - ZEEK_LIST_FIELDS

    def recognises(self, columns: set[str], stream: str) -> bool:
        # loaded_scripts.log holds script names only: Zeek by its name, not by its fields.
        return (super().recognises(columns, stream)
                or log_type_from_name(stream.rsplit("/", 1)[-1]) in UNTIMED_LOGS)

    def read(self, stream: str, start: dict) -> Iterator[RawBatch]:
        with self.open(stream) as source:
            head = source.peek(_MAX_HEADER)
            first = head.removeprefix(UTF8_BOM).lstrip()
            if not first:
                if source.truncated:  # not an empty log: a gzip stream cut before its first line
                    raise SourceError(f"{stream}: gzip stream truncated before any data")
                # No record, as an empty CSV or JSON file: `collect` and `score` name an input
                # that gives none. Not an error: a folder of rotated logs may hold one, and
                # one empty file must not stop the rest.
                return
            if first.startswith(b"#"):
                batches = self._read_tsv(source, ZeekHeader.parse(head, stream), start)
            elif first.startswith(b"{"):
                path = log_type_from_name(stream.rsplit("/", 1)[-1])
                batches = self.read_json(source, start, lines_only=True, event_type=path,
                                         id_columns=ROW_ID_COLUMNS.get(path, ()))
            else:
                # Its content is not echoed: the file may be anything (a planted link's target).
                raise SourceError(f"{stream}: not a Zeek log: it starts with neither a "
                                  "'#separator' header nor a JSON object; point the source at "
                                  "Zeek's log files or folder")
            yield from map(with_transport, batches)

    def recipe_params(self) -> dict[str, object]:
        """The base's and the logs given a transport: other rules deliver other events."""
        return {**super().recipe_params(), "tcp_logs": sorted(TCP_LOGS),
                "row_ids": {path: list(columns) for path, columns in ROW_ID_COLUMNS.items()}}

    def _read_tsv(self, source: ByteStream, header: ZeekHeader, start: dict
                  ) -> Iterator[RawBatch]:
        stream = source.name
        path = header.path or log_type_from_name(stream.rsplit("/", 1)[-1])
        types = {name: _SCALAR_TYPES.get(kind, pa.string())
                 for name, kind in zip(header.fields, header.types)}
        dialect = Dialect(delimiter=header.separator, quoted=False,
                          null_values=(header.unset_field,), true_values=("T",),
                          false_values=("F",), comment=b"#")

        empty = header.empty_field.encode()

        def parse(block, name, record) -> Parsed:
            parsed = parse_block(block, header.fields, types, dialect, name, record, _CONVERTERS)
            _check_repeated_headers(parsed.comments, header, name)
            parsed.table = _zeek_values(parsed.table, header, empty in block.data)
            return parsed

        yield from read_lines(source, start, parse, self.options["block_size"], header.data_start,
                              header.data_line, event_type=path,
                              id_columns=ROW_ID_COLUMNS.get(path, ()))

    def derive(self, table: pa.Table) -> dict[str, pa.Array]:
        names = set(table.column_names)
        if "direction" not in names and {"local_orig", "local_resp"} <= names:
            return {"direction": direction_from_locality(table["local_orig"], table["local_resp"])}
        return {}


def with_transport(batch: RawBatch) -> RawBatch:
    """`batch` with `proto` "tcp" on the rows of a `TCP_LOGS` log that have none (a new
    table); the log type is a row's `_path`, else the batch's (its #path or file name)."""
    table = batch.table
    names = table.column_names
    path = table["_path"] if "_path" in names else None
    if path is None or not pa.types.is_string(path.type):
        if batch.event_type not in TCP_LOGS:
            return batch
        path = pa.nulls(table.num_rows, pa.string())
    path = pc.fill_null(path, batch.event_type) if batch.event_type else path
    transport = pc.if_else(pc.is_in(path, value_set=pa.array(sorted(TCP_LOGS))), "tcp",
                          pa.scalar(None, pa.string()))
    if "proto" not in names:
        return replace(batch, table=table.append_column("proto", transport))
    given = table["proto"]
    if pa.types.is_null(given.type):
        given = given.cast(pa.string())
    elif not pa.types.is_string(given.type):  # not Zeek's enum text: left as it is
        return batch
    return replace(batch, table=table.set_column(names.index("proto"), "proto",
                                                 pc.coalesce(given, transport)))


def _check_repeated_headers(comments: list[tuple[int, bytes]], header: ZeekHeader,
                            stream: str) -> None:
    """A header repeated mid-file (concatenated logs) must declare the same fields."""
    for line, text in comments:
        if text.startswith(b"#fields"):
            fields = decode(text).split(header.separator)[1:]
            if fields != header.fields:
                raise SourceError(f"{stream}: line {line} starts a second header whose #fields "
                                  "differ from the first; split the file at that line")


def _zeek_values(table: pa.Table, header: ZeekHeader, has_empty: bool) -> pa.Table:
    """Zeek's empty-field marker and container columns."""
    for name, kind in zip(header.fields, header.types):
        if name not in table.column_names or not (has_empty or "[" in kind):
            continue
        column = table[name]
        index = table.column_names.index(name)
        if "[" in kind:  # set[...], vector[...], table[...]
            items = _split_container(column, header.set_separator, header.empty_field)
            table = table.set_column(index, name, _typed_items(items, kind))
        elif pa.types.is_string(column.type):
            table = table.set_column(index, name, strings_as(column, header.empty_field, ""))
    return table


def _split_container(column: pa.ChunkedArray, separator: str, empty_marker: str) -> pa.Array:
    """"a,b" -> ["a", "b"]; the empty marker -> []; unset stays null."""
    text = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    text = text.cast(pa.string())
    if pc.all(pc.equal(text, empty_marker)).as_py() is not False:
        # Every value is empty or unset (tunnel_parents in most conn logs): no split needed.
        offsets = pa.array(np.zeros(len(text) + 1, dtype=np.int32))
        return pa.ListArray.from_arrays(offsets, pa.array([], pa.string()), mask=text.is_null())
    items = pc.split_pattern(text, separator)
    values = items.values
    keep = pc.not_equal(values, empty_marker).fill_null(True).to_numpy(zero_copy_only=False)
    if keep.all():
        return items
    # Drop the marker items by rebuilding the offsets (cheaper than if_else on lists).
    kept_before = np.concatenate([[0], np.cumsum(keep)]).astype(np.int32)
    offsets = kept_before[items.offsets.to_numpy()]
    return pa.ListArray.from_arrays(pa.array(offsets), values.filter(pa.array(keep)),
                                    mask=items.is_null())


def _typed_items(items: pa.ChunkedArray, kind: str) -> pa.ChunkedArray:
    inner = kind[kind.index("[") + 1:-1]
    element = _SCALAR_TYPES.get(inner)
    if element is None or element == pa.bool_():
        return items
    try:
        return items.cast(pa.list_(element))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return items
