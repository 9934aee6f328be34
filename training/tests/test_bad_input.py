"""Bad input costs only itself, and nothing but the package's own errors escapes a reader.

Property-based (hypothesis), in two families:

* Line-level mutations of small slices of real files from ../shared/datasets (a labeled Zeek
  TSV conn log, a Zeek JSON conn log, Suricata EVE, an IoT-23 CSV, an OTRF Windows recording).
  Hypothesis picks data lines and, per line, a mutation that makes that record invalid for its
  format. Every other line must come out unchanged and in order, every mutated line must be
  quarantined exactly once under its 1-based line number, and the counters must add up.
* Random bytes to every reader: random content, a valid header followed by random bytes,
  gzip-compressed random bytes, a valid file with a random tail or a random splice, a valid
  file's gzip cut short. Collecting either succeeds, with the counters adding up (and, where
  the good rows are known, all of them out), or raises a `PipelineError` naming the file.

Each example writes its file into a fresh temporary folder; the real files are only read.
A failure prints a `@reproduce_failure` blob (print_blob=True) to replay it exactly.
"""

from __future__ import annotations

import gzip
import io
import json
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training.collection.collector import DataCollector, DataSource
from training.collection.schema import CANONICAL_FIELDS
from training.errors import PipelineError, SourceError
from training.sources.files import DEFAULT_BLOCK_SIZE
from training.tests.hypothesis_profiles import examples

# pyarrow's CSV parser cannot hand a row that is not UTF-8 to its invalid-row callback: it
# prints the UnicodeDecodeError as "Exception ignored" and fails the parse, which sends the
# block to the line-by-line path, as it should. Only that message is silenced.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in.*on_invalid:pytest.PytestUnraisableExceptionWarning")

SETTINGS = dict(deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
N_LINES = 60
# Blocks a slice is read in: one (the default block size) or several, so that bad lines also
# fall on block edges and fill whole blocks. Each block has a fixed cost (~10-30 ms on the
# 2-core box), so the formats with long lines get fewer.
BLOCKS = {"zeek_tsv": (1, 4, 15), "zeek_json": (1, 4, 15), "iot23_csv": (1, 4, 15),
          "suricata": (1, 4), "windows": (1, 3)}
BAD_UTF8 = b"\xff\xfe"
BAD_IP = "999.1.2.3"


def _not_a_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return True
    return False


# No digits, so never an epoch or ISO 8601 time; not "-" (Zeek's unset) nor "nan"/"inf".
GARBAGE = st.text(alphabet="abcdefghijklmnopqrstuvwxyz:/ ", min_size=1, max_size=12).filter(
    lambda t: t.strip() != "" and t != "-" and _not_a_number(t))


def collect(source_type: str, path: Path, block_size: int = DEFAULT_BLOCK_SIZE
            ) -> tuple[pa.Table, DataCollector]:
    """Everything in memory, no dedup: real slices hold exact duplicate records."""
    source = DataSource("bad", source_type, {"path": str(path), "block_size": block_size})
    collector = DataCollector([source], deduplicate=False, progress=False)
    return collector.collect_table(), collector


def assert_counts_add_up(table: pa.Table, collector: DataCollector, path: Path) -> None:
    stats = collector.get_stats()
    assert stats["rows"] == stats["events"] + stats["quarantined"], stats
    assert stats["events"] == table.num_rows, stats
    assert stats["quarantined"] == len(collector.quarantined), stats
    assert stats["duplicates"] == 0 and stats["outside_time_range"] == 0, stats
    for reject in collector.quarantined:
        assert reject.file == str(path), reject
        assert reject.line is None or reject.line >= 1, reject


def assert_names_file(error: PipelineError, path: Path) -> None:
    assert str(path) in str(error), f"{type(error).__name__} does not name {path}: {error}"


# -- formats: how to break a record, and how to recognise a row ----------------------------------

@dataclass(frozen=True)
class Mutation:
    """What hypothesis did to one data line, and the reject field(s) it must produce."""

    kind: str
    line: bytes
    fields: tuple[str | None, ...]  # acceptable `Reject.field` values


@dataclass(frozen=True)
class Delimited:
    """Zeek TSV or CSV: one record per line, `sep` between fields, no quoting in the data."""

    sep: bytes
    names: tuple[str, ...]
    strings: tuple[str, ...]  # text columns, where invalid UTF-8 goes
    ts: str
    ports: tuple[str, ...]
    ips: tuple[str, ...]
    identity: tuple[str, ...]  # columns that identify a row, kept verbatim in the output

    def kinds(self, line: bytes) -> list[str]:
        return ["drop_separator", "add_separator", "bad_utf8", "bad_timestamp", "bad_port",
                "bad_ip"]

    def mutate(self, draw: Callable, kind: str, line: bytes) -> Mutation:
        fields = line.split(self.sep)
        col = self.names.index
        if kind == "drop_separator":  # two fields become one: one field too few
            j = draw(st.integers(0, len(fields) - 2))
            fields[j:j + 2] = [fields[j] + fields[j + 1]]
            return Mutation(kind, self.sep.join(fields), (None,))
        if kind == "add_separator":  # one field too many
            at = draw(st.integers(0, len(line)))
            return Mutation(kind, line[:at] + self.sep + line[at:], (None,))
        if kind == "bad_utf8":
            name = draw(st.sampled_from(self.strings))
            value = fields[col(name)]
            at = draw(st.integers(0, len(value)))
            fields[col(name)] = value[:at] + BAD_UTF8 + value[at:]
            # Reported as a bad line, or as a bad value of that column.
            return Mutation(kind, self.sep.join(fields), (None, name))
        if kind == "bad_timestamp":
            name, value = self.ts, draw(GARBAGE)
        elif kind == "bad_port":
            name, value = draw(st.sampled_from(self.ports)), draw(st.sampled_from(["70000", "-5"]))
        else:
            name, value = draw(st.sampled_from(self.ips)), BAD_IP
        fields[col(name)] = value.encode()
        return Mutation(kind, self.sep.join(fields), (name,))

    def key(self, line: bytes) -> tuple:
        fields = line.split(self.sep)
        return tuple(fields[self.names.index(n)].decode() for n in self.identity)

    @staticmethod
    def breaks_json(kind: str) -> bool:
        return False


@dataclass(frozen=True)
class JsonLines:
    """One JSON object per line; candidate fields are the top-level keys a mutation may touch."""

    ts: tuple[str, ...]
    ports: tuple[str, ...]
    ips: tuple[str, ...]
    identity: tuple[str, ...]

    def kinds(self, line: bytes) -> list[str]:
        record = json.loads(line)
        kinds = ["truncate", "bad_utf8"]
        kinds += [kind for kind, keys in (("bad_timestamp", self.ts), ("bad_port", self.ports),
                                         ("bad_ip", self.ips)) if any(k in record for k in keys)]
        return kinds

    def mutate(self, draw: Callable, kind: str, line: bytes) -> Mutation:
        if kind == "truncate":  # a strict prefix of an object is never valid JSON
            return Mutation(kind, line[:draw(st.integers(1, len(line) - 1))], (None,))
        if kind == "bad_utf8":  # inside a string, or right after one: invalid either way
            quotes = [i for i, byte in enumerate(line) if byte == ord('"')]
            at = draw(st.sampled_from(quotes)) + 1
            return Mutation(kind, line[:at] + BAD_UTF8 + line[at:], (None,))
        record = json.loads(line)
        keys = {"bad_timestamp": self.ts, "bad_port": self.ports, "bad_ip": self.ips}[kind]
        name = draw(st.sampled_from([k for k in keys if k in record]))
        if kind == "bad_timestamp":
            value: object = draw(GARBAGE)
        elif kind == "bad_port":
            value = draw(st.sampled_from([70000, -5]))
            value = str(value) if isinstance(record[name], str) else value  # keep the writer's type
        else:
            value = BAD_IP
        record[name] = value
        text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        return Mutation(kind, text.encode(), (name,))

    def key(self, line: bytes) -> tuple:
        record = json.loads(line)
        return tuple(record.get(n) for n in self.identity)

    @staticmethod
    def breaks_json(kind: str) -> bool:
        return kind in ("truncate", "bad_utf8")


@dataclass(frozen=True, repr=False)
class Sample:
    """A clean slice of a real file, copied out, and what collecting it gives."""

    source_type: str
    name: str  # file name, which Zeek reads the log type from
    header: bytes  # lines before the data
    lines: tuple[bytes, ...]  # data lines, without line breaks
    trailer: bytes  # lines after the data (Zeek's #close)
    form: Delimited | JsonLines
    reference: pa.Table  # canonical columns of the clean slice, one row per data line

    def __repr__(self) -> str:  # hypothesis prints the fixture with every failure
        return f"<Sample {self.source_type} {self.name}: {len(self.lines)} lines>"

    def _repr_pretty_(self, printer, cycle) -> None:  # what hypothesis's printer calls
        printer.text(repr(self))

    def content(self, lines) -> bytes:
        return self.header + b"".join(line + b"\n" for line in lines) + self.trailer


def _zeek_tsv(datasets: Path) -> tuple:
    raw = (datasets / "slips_ctu_sme_11_labeled_zeek/zeek-labeled/conn.log.labeled").read_bytes()
    lines = raw.splitlines(keepends=True)
    n_header = next(i for i, line in enumerate(lines) if not line.startswith(b"#"))
    header = b"".join(lines[:n_header])
    fields = next(l for l in lines if l.startswith(b"#fields")).rstrip(b"\n").split(b"\t")[1:]
    types = next(l for l in lines if l.startswith(b"#types")).rstrip(b"\n").split(b"\t")[1:]
    names = tuple(f.decode() for f in fields)
    strings = tuple(n for n, t in zip(names, types) if t in (b"string", b"enum", b"set[string]"))
    form = Delimited(b"\t", names, strings, "ts", ("id.orig_p", "id.resp_p"),
                     ("id.orig_h", "id.resp_h"), ("uid",))
    data = tuple(l.rstrip(b"\n") for l in lines[n_header:n_header + N_LINES])
    # Real Zeek logs end with #close; this one was cut before it, so the slice adds one.
    return "conn.log.labeled", header, data, b"#close\t2024-08-16-09-55-01\n", form


def _iot23_csv(datasets: Path) -> tuple:
    lines = (datasets / "iot23/CTU-Malware-Capture-44-1-labeled.csv").read_bytes().splitlines()
    names = tuple(lines[0].decode().split(","))
    numeric = {"ts", "id.orig_p", "id.resp_p", "duration", "orig_bytes", "resp_bytes",
               "missed_bytes", "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes",
               "id.orig_h", "id.resp_h"}
    form = Delimited(b",", names, tuple(n for n in names if n not in numeric), "ts",
                     ("id.orig_p", "id.resp_p"), ("id.orig_h", "id.resp_h"), ("uid",))
    return "capture.csv", lines[0] + b"\n", tuple(lines[1:1 + N_LINES]), b"", form


def _json_lines(path: Path, name: str, form: JsonLines) -> tuple:
    return name, b"", tuple(path.read_bytes().splitlines()[:N_LINES]), b"", form


def _windows(datasets: Path, tmp: Path) -> tuple:
    recording = datasets / "windows_otrf_security_datasets/psh_lsass_memory_dump_comsvcs.zip"
    with zipfile.ZipFile(recording) as z:
        member = z.namelist()[0]
        z.extract(member, tmp)
    # The first 60 lines include Security 5156/5158 events, the ones with addresses and ports.
    form = JsonLines(("@timestamp", "UtcTime", "TimeCreated"),
                     ("SourcePort", "DestPort", "DestinationPort", "IpPort"),
                     ("SourceAddress", "DestAddress", "SourceIp", "DestinationIp", "IpAddress"),
                     ("EventID", "Task", "Message"))
    return _json_lines(tmp / member, "lsass_dump.json", form)


SAMPLE_NAMES = ["zeek_tsv", "zeek_json", "suricata", "iot23_csv", "windows"]


@pytest.fixture(scope="module")
def samples(datasets: Path, tmp_path_factory) -> dict[str, Sample]:
    tmp = tmp_path_factory.mktemp("slices")
    made = {
        "zeek_tsv": ("zeek_logs", _zeek_tsv(datasets)),
        "zeek_json": ("zeek_logs", _json_lines(
            datasets / "slips_zeek_json_test9/conn.log", "conn.log",
            JsonLines(("ts",), ("id.orig_p", "id.resp_p"), ("id.orig_h", "id.resp_h"), ("uid",)))),
        "suricata": ("suricata_logs", _json_lines(
            datasets / "suricata/slips_test6-malicious.suricata.json", "eve.json",
            JsonLines(("timestamp",), ("src_port", "dest_port"), ("src_ip", "dest_ip"),
                      ("flow_id", "pcap_cnt", "event_type")))),
        "iot23_csv": ("csv_file", _iot23_csv(datasets)),
        "windows": ("windows_events", _windows(datasets, tmp)),
    }
    out = {}
    for key, (source_type, (name, header, lines, trailer, form)) in made.items():
        path = tmp / key / name
        path.parent.mkdir()
        sample = Sample(source_type, name, header, lines, trailer, form, pa.table({}))
        path.write_bytes(sample.content(lines))
        table, collector = collect(source_type, path)
        assert table.num_rows == len(lines) and not collector.quarantined, key  # a clean slice
        reference = table.select(list(CANONICAL_FIELDS))
        out[key] = Sample(source_type, name, header, lines, trailer, form, reference)
    return out


def canonical_rows(table: pa.Table) -> list[dict]:
    """Canonical values of each row, event ids included (a record's id must not depend on
    which other records share its batch)."""
    return table.select(list(CANONICAL_FIELDS)).to_pylist()


# -- 1. line-level mutations of real files --------------------------------------------------------

@st.composite
def mutations(draw, sample: Sample) -> dict[int, Mutation]:
    """Up to three runs of consecutive lines: runs fill blocks, and hit lines 1 and 2 together."""
    n = len(sample.lines)
    runs = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, 6)), max_size=3))
    out = {}
    for i in sorted({i for start, length in runs for i in range(start, min(n, start + length))}):
        line = sample.lines[i]
        kind = draw(st.sampled_from(sample.form.kinds(line)))
        out[i] = sample.form.mutate(draw, kind, line)
    return out


@pytest.mark.parametrize("key", SAMPLE_NAMES)
@settings(max_examples=examples(40), **SETTINGS)
@given(data=st.data())
def test_mutated_lines_are_quarantined_and_every_other_line_comes_out(samples, key, data):
    sample = samples[key]
    mutated = data.draw(mutations(sample), label="mutations")
    lines = [mutated[i].line if i in mutated else line for i, line in enumerate(sample.lines)]
    content = sample.content(lines)
    blocks = data.draw(st.sampled_from(BLOCKS[key]), label="blocks")
    block_size = DEFAULT_BLOCK_SIZE if blocks == 1 else len(content) // blocks + 1
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / sample.name
        path.write_bytes(content)
        if (sample.source_type == "windows_events" and {0, 1} <= set(mutated)
                and all(sample.form.breaks_json(mutated[i].kind) for i in (0, 1))):
            # A file whose first two lines are not JSON by themselves may be a pretty-printed
            # document, so a source that reads documents (Windows exports) parses it as one and
            # refuses it whole, naming the file. Zeek and Suricata only ever write JSON Lines
            # and read them line by line whatever the first lines look like.
            with pytest.raises(SourceError, match="invalid JSON document") as error:
                collect(sample.source_type, path, block_size)
            assert_names_file(error.value, path)
            return
        table, collector = collect(sample.source_type, path, block_size)

    kept = [i for i in range(len(lines)) if i not in mutated]
    # (a) exactly the unmutated rows, in file order, with the values the clean file gives.
    form = sample.form
    assert list(zip(*(table[n].to_pylist() for n in form.identity))) == [
        form.key(sample.lines[i]) for i in kept]
    assert canonical_rows(table) == canonical_rows(sample.reference.take(kept))
    # (b) every mutated line quarantined once, where it is in the file, as it was written.
    first_line = sample.header.count(b"\n") + 1
    got = [(r.line, r.record, r.raw) for r in collector.quarantined]
    assert got == [(first_line + i, i, m.line.decode("utf-8", "backslashreplace"))
                   for i, m in sorted(mutated.items())]
    for reject in collector.quarantined:
        assert reject.file == str(path)
        assert reject.field in mutated[reject.record].fields, (reject, mutated[reject.record].kind)
    # (c) counters.
    stats = collector.get_stats()
    assert (stats["rows"], stats["events"], stats["quarantined"]) == (
        len(lines), len(kept), len(mutated))
    assert_counts_add_up(table, collector, path)


# -- 2. random bytes to every reader -------------------------------------------------------------

TOKENS = [b"\n", b"\r\n", b"\t", b",", b'"', b"\\", b"\\x", b"{", b"}", b"[", b"]", b":", b"#",
          b"-", b"#fields\t", b"#types\t", b"#separator ", b"#separator \\x09\n", b"#close\n",
          b"(empty)", b"\xff\xfe", b"\x00", b"\x1f\x8b", b"1e999", b"-5", b"70000", b"999.1.2.3",
          b"1.2.3.4", b'"ts":', b'"timestamp":', b'"events":', b"null", b"true", b"PAR1",
          b"\xef\xbb\xbf", b" "]
JUNK = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=6)), max_size=40).map(b"".join),
)
N_VALID = 8  # lines of a sample in a "valid" file


@dataclass(frozen=True, repr=False)
class ValidFile:
    """A small valid file of one source type, and what collecting it gives."""

    source_type: str
    name: str
    content: bytes
    header: bytes  # b"PAR1" for Parquet, else the lines before the data (or the first line)
    n_header_lines: int
    reference: pa.Table

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(f"<ValidFile {self.source_type} {self.name}: {len(self.content)} bytes>")


@pytest.fixture(scope="module")
def valid_files(samples: dict[str, Sample], tmp_path_factory) -> dict[str, ValidFile]:
    tmp = tmp_path_factory.mktemp("valid")
    out = {}
    for source_type, name, key in [
        ("zeek_logs", "conn.log", "zeek_tsv"), ("csv_file", "events.csv", "iot23_csv"),
        ("json_file", "events.json", "zeek_json"), ("suricata_logs", "eve.json", "suricata"),
        ("windows_events", "security.json", "windows"),
        ("parquet_file", "events.parquet", "iot23_csv"),
    ]:
        sample = samples[key]
        content = sample.content(sample.lines[:N_VALID])
        header = sample.header or sample.lines[0] + b"\n"
        if source_type == "parquet_file":
            sink = io.BytesIO()
            pq.write_table(pcsv.read_csv(io.BytesIO(content)), sink, row_group_size=3)
            content, header = sink.getvalue(), b"PAR1"
        path = tmp / name
        path.write_bytes(content)
        table, collector = collect(source_type, path)
        assert table.num_rows == N_VALID and not collector.quarantined, source_type
        out[source_type] = ValidFile(source_type, name, content, header,
                                     sample.header.count(b"\n"), table)
    return out


def _decompressible(compressed: bytes) -> bytes:
    """What a reader can get out of a gzip stream cut short."""
    return zlib.decompressobj(wbits=31).decompress(compressed)


@pytest.mark.parametrize("source_type", ["zeek_logs", "csv_file", "json_file", "suricata_logs",
                                         "windows_events", "parquet_file"])
@settings(max_examples=examples(40), **SETTINGS)
@given(data=st.data(), junk=JUNK, block_size=st.sampled_from([DEFAULT_BLOCK_SIZE, 1024]))
def test_random_bytes_give_rows_rejects_or_a_package_error_naming_the_file(
        valid_files, source_type, data, junk, block_size):
    valid = valid_files[source_type]
    is_parquet = source_type == "parquet_file"
    variant = data.draw(st.sampled_from(
        ["random", "after_header", "gzip", "random_tail", "splice", "truncated"]), label="variant")
    if variant == "random":
        content = junk
    elif variant == "after_header":
        content = valid.header + junk
    elif variant == "gzip":
        content = gzip.compress(junk, mtime=0)
    elif variant == "random_tail":
        content = valid.content + junk
    elif variant == "splice":
        at = data.draw(st.integers(0, len(valid.content)), label="at")
        content = valid.content[:at] + junk + valid.content[at + len(junk):]
    else:  # the file (a Parquet file as is, any other gzip-compressed) cut short
        whole = valid.content if is_parquet else gzip.compress(valid.content, mtime=0)
        content = whole[:data.draw(st.integers(2, len(whole) - 1), label="cut")]

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / valid.name
        path.write_bytes(content)
        try:
            table, collector = collect(source_type, path, block_size)
        except PipelineError as exc:
            assert_names_file(exc, path)
            error: PipelineError | None = exc
        else:
            error = None
            assert_counts_add_up(table, collector, path)

    if variant == "random_tail" and not is_parquet:
        # The valid lines come first and come out whatever follows them. Only a Zeek log may
        # refuse the file: a second #fields header that differs from the first.
        if error is not None:
            assert source_type == "zeek_logs" and b"#fields" in junk, error
            return
        assert canonical_rows(table.slice(0, N_VALID)) == canonical_rows(valid.reference)
    elif variant == "truncated":
        if is_parquet:
            assert error is not None, "a cut Parquet file was read as if whole"
            return
        # Every complete line before the cut comes out; the cut tail is one reject.
        lines = _decompressible(content).split(b"\n")[valid.n_header_lines:-1]
        complete = sum(not line.startswith(b"#") for line in lines)  # not Zeek's #close
        if error is not None:
            assert complete == 0, error  # refusing the file is fine only if it costs no row
            return
        assert table.num_rows == complete
        assert canonical_rows(table) == canonical_rows(valid.reference.slice(0, table.num_rows))
        reasons = [r.reason for r in collector.quarantined]
        assert len(reasons) == 1 and reasons[0].startswith("gzip stream truncated"), reasons


# -- 3. the minimal examples the properties found (each failed before its fix) ------------------

@pytest.mark.parametrize("source_type, name, content, block_size, rows, reject_lines", [
    # pyarrow's JSON reader took invalid UTF-8: a corrupt string came out, a corrupt key raised
    # UnicodeDecodeError.
    # (The good records name a field the json: and csv: field maps know, `host`: a file of
    # none is refused as not this source type.)
    ("json_file", "a.jsonl", b'{"host":"\xff\xfe"}\n{"host":"ok"}\n', DEFAULT_BLOCK_SIZE, 1,
     [1]),
    ("json_file", "a.jsonl", b'{"\xff\xfe":1}\n{"host":"h"}\n', DEFAULT_BLOCK_SIZE, 1, [1]),
    # pyarrow read `null` and `{}` lines as rows of nulls, and crashed the process (segfault)
    # on a block starting with `null`.
    ("json_file", "a.jsonl", b'null\n{"host":"h"}\n', DEFAULT_BLOCK_SIZE, 1, [1]),
    ("json_file", "a.jsonl", b'{"host":"h"}\nnull\n{}\n', DEFAULT_BLOCK_SIZE, 1, [2, 3]),
    # A block whose every line is rejected has no columns: hashing it raised ConfigError.
    ("json_file", "a.jsonl", b'{\n{"host":"h"}\n', 1, 1, [1]),
    # pyarrow's CSV reader infers text that is not UTF-8 as binary, so the row came out.
    ("csv_file", "a.csv", b"host,b\n\xff\xfe,1\nx,2\n", DEFAULT_BLOCK_SIZE, 1, [2]),
    # str.isdigit accepts "\u00b2" (superscript two), int refuses it: ValueError escaped the
    # reader on one fresh clone's random draw.
    ("json_file", "a.jsonl", '{"protocol":"\u00b2"}\n{"protocol":"6"}\n'.encode(),
     DEFAULT_BLOCK_SIZE, 2, []),
], ids=["json-utf8-value", "json-utf8-key", "json-null-first", "json-null-and-empty",
        "json-all-rejected-block", "csv-utf8", "json-superscript-protocol"])
def test_minimal_bad_records_are_quarantined(tmp_path, source_type, name, content, block_size,
                                             rows, reject_lines):
    path = tmp_path / name
    path.write_bytes(content)
    table, collector = collect(source_type, path, block_size)
    assert table.num_rows == rows
    assert [r.line for r in collector.quarantined] == reject_lines
    assert_counts_add_up(table, collector, path)


@pytest.mark.parametrize("source_type, name, content, message", [
    # A gzip stream cut before its first line read as an empty log, silently.
    ("zeek_logs", "conn.log", gzip.compress(b"#separator \\x09\n", mtime=0)[:2],
     "gzip stream truncated before any data"),
    # A carriage return inside the header line raised csv.Error.
    ("csv_file", "a.csv", b"a,b\rc,d\r", "line 1 is not a valid CSV header"),
], ids=["zeek-gzip-cut-in-header", "csv-cr-in-header"])
def test_minimal_bad_files_are_refused_naming_the_file(tmp_path, source_type, name, content,
                                                       message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SourceError, match=message) as error:
        collect(source_type, path)
    assert_names_file(error.value, path)


@pytest.mark.parametrize("key", ["zeek_json", "suricata"])
def test_json_lines_logs_with_their_first_two_lines_damaged_still_give_every_other_line(
        samples, key, tmp_path):
    sample = samples[key]
    lines = [b"{", b"{", *sample.lines[2:]]  # the minimal example hypothesis found
    path = tmp_path / sample.name
    path.write_bytes(sample.content(lines))
    table, collector = collect(sample.source_type, path)
    assert [(r.line, r.raw) for r in collector.quarantined] == [(1, "{"), (2, "{")]
    assert canonical_rows(table) == canonical_rows(sample.reference.slice(2))
