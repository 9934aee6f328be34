"""Bad input at scale: property-based runs (hypothesis) over every file reader and over
`DataPreprocessor.preprocess_event` with arbitrary JSON values.

Readers: each example writes a small file in the reader's format whose records carry an
arbitrary JSON value in an extra field (kept, never a reason to reject), and where hypothesis
marks some records bad in a way that format must quarantine (a malformed line, a port out of
range, a non-object element, a field too many). Collecting must give exactly the good records
as events and exactly the bad ones as quarantined records (at their lines), and nothing but a
`PipelineError` may escape.

`preprocess_event`: events made of canonical and source field names with arbitrary JSON values
(big integers, NaN, nesting, lone surrogates) either give a 128-dim vector in [0, 1] or raise a
`PipelineError`; a batch with known-bad events is refused with the exact count of them.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training.collection.collector import DataCollector, DataSource
from training.collection.schema_union import concat_tables
from training.errors import PipelineError, SchemaError
from training.data_preprocessor import DataPreprocessor, LayerType
from training.tests.hypothesis_profiles import examples

pytestmark = [
    pytest.mark.reliability,
    # pyarrow's CSV parser reports a non-UTF-8 row it hands back as an unraisable exception.
    pytest.mark.filterwarnings(
        "ignore:Exception ignored in.*on_invalid:pytest.PytestUnraisableExceptionWarning"),
]

SETTINGS = dict(deadline=None, print_blob=True, max_examples=examples(25),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def json_values(finite: bool = True, surrogates: bool = False) -> st.SearchStrategy:
    """Arbitrary JSON values: nulls, booleans, unbounded integers, floats, text, lists, objects."""
    text = st.text(st.characters(exclude_categories=() if surrogates else ("Cs",)), max_size=12)
    scalars = (st.none() | st.booleans() | st.integers()
               | st.floats(allow_nan=not finite, allow_infinity=not finite) | text)
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(text, inner, max_size=3), max_leaves=8)


# -- readers ------------------------------------------------------------------------------------

BAD_PORT = 70_000
BAD_KINDS = ("bad_port", "structural")


@dataclass(frozen=True)
class Record:
    index: int
    extra: object
    bad: str | None  # None, "bad_port" or "structural" (malformed for the format)

    @property
    def port(self) -> int:
        return BAD_PORT if self.bad == "bad_port" else 1024 + self.index

    @property
    def epoch(self) -> float:
        return 1_700_000_000.0 + self.index

    @property
    def iso(self) -> str:
        return f"2023-11-14T22:{13 + self.index // 60:02d}:{self.index % 60:02d}Z"

    @property
    def ip(self) -> str:
        return f"10.0.{self.index // 250}.{self.index % 250 + 1}"


def _extra_text(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _jsonl(path: Path, records: list[Record], fields: Callable[[Record], dict]) -> list[int]:
    lines, bad = [], []
    for r in records:
        line = json.dumps({**fields(r), "extra": r.extra}, ensure_ascii=False)
        if r.bad == "structural":
            line = line[: len(line) // 2]  # cut mid-record: not JSON
        lines.append(line)
        if r.bad:
            bad.append(len(lines))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return bad


def generic(r: Record) -> dict:
    return {"timestamp": r.iso, "source_ip": r.ip, "dest_ip": "192.0.2.1", "dest_port": r.port}


def zeek_json(r: Record) -> dict:
    return {"ts": r.epoch, "uid": f"C{r.index:08d}", "id.orig_h": r.ip, "id.orig_p": 40000,
            "id.resp_h": "192.0.2.1", "id.resp_p": r.port, "proto": "tcp"}


def suricata(r: Record) -> dict:
    return {"timestamp": r.iso, "event_type": "flow", "src_ip": r.ip, "src_port": 40000,
            "dest_ip": "192.0.2.1", "dest_port": r.port, "proto": "TCP"}


def windows(r: Record) -> dict:
    return {"@timestamp": r.iso, "Hostname": "ws01", "EventID": 3, "Channel": "sysmon",
            "SourceIp": r.ip, "DestinationIp": "192.0.2.1", "DestinationPort": r.port}


def write_jsonl(fields):
    return lambda path, records: _jsonl(path, records, fields)


def write_json_document(path: Path, records: list[Record]) -> list[int | None]:
    items: list[object] = []
    for r in records:
        items.append(5 if r.bad == "structural" else {**generic(r), "extra": r.extra})
    path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    return [None for r in records if r.bad]  # a document has no line per event


def write_csv(path: Path, records: list[Record]) -> list[int]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["timestamp", "source_ip", "dest_ip", "dest_port", "extra"])
    bad = []
    for line, r in enumerate(records, start=2):
        row = [r.iso, r.ip, "192.0.2.1", r.port, _extra_text(r.extra)]
        if r.bad == "structural":
            row.append("one field too many")
        writer.writerow(row)
        if r.bad:
            bad.append(line)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return bad


def write_zeek_tsv(path: Path, records: list[Record]) -> list[int]:
    header = ["#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)",
              "#unset_field\t-", "#path\tconn",
              "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\textra",
              "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring"]
    lines, bad = list(header), []
    for r in records:
        # Zeek escapes its separator inside values; JSON text has no raw tab or newline.
        fields = [f"{r.epoch:.6f}", f"C{r.index:08d}", r.ip, "40000", "192.0.2.1",
                  str(r.port), "tcp", _extra_text(r.extra) or "(empty)"]
        if r.bad == "structural":
            fields.append("x")
        lines.append("\t".join(fields))
        if r.bad:
            bad.append(len(lines))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return bad


def write_parquet(path: Path, records: list[Record]) -> list[int]:
    table = pa.table({
        "timestamp": [r.iso for r in records], "source_ip": [r.ip for r in records],
        "dest_ip": ["192.0.2.1"] * len(records), "dest_port": [r.port for r in records],
        "extra": [_extra_text(r.extra) for r in records],
    })
    pq.write_table(table, path)
    return [i + 1 for i, r in enumerate(records) if r.bad]


READERS = {
    # name: (source type, file name, writer, bad kinds the format has)
    "json_lines": ("json_file", "events.jsonl", write_jsonl(generic), BAD_KINDS),
    "json_document": ("json_file", "events.json", write_json_document, BAD_KINDS),
    "csv": ("csv_file", "events.csv", write_csv, BAD_KINDS),
    "parquet": ("parquet_file", "events.parquet", write_parquet, ("bad_port",)),
    "zeek_tsv": ("zeek_logs", "conn.log", write_zeek_tsv, BAD_KINDS),
    "zeek_json": ("zeek_logs", "conn.log", write_jsonl(zeek_json), BAD_KINDS),
    "suricata_eve": ("suricata_logs", "eve.json", write_jsonl(suricata), BAD_KINDS),
    "windows": ("windows_events", "security.jsonl", write_jsonl(windows), BAD_KINDS),
}


@st.composite
def record_lists(draw, kinds: tuple[str, ...]) -> list[Record]:
    n = draw(st.integers(1, 12))
    return [Record(i, draw(json_values()), draw(st.none() | st.sampled_from(kinds)))
            for i in range(n)]


@pytest.mark.parametrize("reader", list(READERS))
@settings(**SETTINGS)
@given(data=st.data())
def test_reader_quarantines_exactly_the_injected_bad_records(reader, data):
    """Stage: collection
    Fault: hypothesis-made files for the reader in the test id: records carrying an arbitrary
        JSON value (unbounded integers, nesting, any Unicode) in an extra field, some made bad
        (a port of 70000, or malformed for the format: a cut line, a non-object array element,
        a field too many).
    Expected: events == the good records and quarantined == the bad ones, at their lines;
        the counters add up; only PipelineError subclasses may escape.
    """
    source_type, name, write, kinds = READERS[reader]
    records = data.draw(record_lists(kinds))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        bad_lines = write(path, records)
        out = Path(tmp) / "out"
        collector = DataCollector([DataSource("prop", source_type, {"path": str(path)})],
                                  output_dir=out, deduplicate=False, progress=False)
        try:
            collector.collect_to()  # events written as Parquet parts, as in production
        except PipelineError as exc:  # allowed to escape, but these files are all readable
            pytest.fail(f"{reader}: a readable file was refused: {exc}")
        table = concat_tables([pq.read_table(p) for p in sorted(out.glob("events/*.parquet"))])
        quarantine = out / "quarantine.jsonl"
        quarantined = ([json.loads(line) for line in quarantine.read_bytes().split(b"\n") if line]
                       if quarantine.exists() else [])
    stats = collector.get_stats()
    good = sum(r.bad is None for r in records)
    assert table.num_rows == good, (stats, quarantined)
    assert stats["quarantined"] == len(bad_lines) == len(quarantined), stats
    assert sorted(r["line"] for r in quarantined if r["line"] is not None) == \
        [line for line in bad_lines if line is not None]
    assert stats["rows"] == stats["events"] + stats["quarantined"]
    ports = table["dest_port"].to_pylist() if good else []
    assert ports == [r.port for r in records if r.bad is None]


# -- preprocess_event ---------------------------------------------------------------------------

FIELD_NAMES = ["timestamp", "@timestamp", "ts", "event_id", "source_ip", "src_ip", "id.orig_h",
               "dest_ip", "dest_port", "source_port", "protocol", "proto", "bytes_in",
               "bytes_sent", "duration", "label", "is_threat", "attack_type", "community_id",
               "host", "user", "severity", "event_type", "conn_state", "direction"]


@st.composite
def arbitrary_events(draw) -> dict:
    keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=8)
    return draw(st.dictionaries(keys, json_values(finite=False, surrogates=True),
                                min_size=1, max_size=6))


@settings(**{**SETTINGS, "max_examples": examples(150)})
@given(event=arbitrary_events())
def test_preprocess_event_with_arbitrary_json_values(event):
    """Stage: preprocessing
    Fault: `preprocess_event` on hypothesis-made events: canonical and source field names
        (timestamp, src_ip, id.orig_h, dest_port, is_threat, ...) and random keys holding
        arbitrary JSON values, including integers beyond 64 bits, NaN and infinities, nested
        lists and objects, and lone surrogates (which JSON text can encode).
    Expected: a layer-1 sample whose 128 features are finite and in [0, 1], or a PipelineError;
        no other exception escapes.
    """
    pre = DataPreprocessor(output_dir=tempfile.gettempdir())
    try:
        sample = pre.preprocess_event(event, layers=[LayerType.LAYER1_SENSORY])
    except PipelineError:
        return
    features = sample.features
    assert features.shape == (128,) and np.isfinite(features).all()
    assert features.min() >= 0.0 and features.max() <= 1.0


BAD_VALUES = {"dest_port": [70000, -1, "eighty"], "source_ip": ["999.1.2.3", "not an ip"],
              "timestamp": ["yesterday", "2023-13-45T00:00:00Z"], "is_threat": [7, "maybe"]}


@settings(**SETTINGS)
@given(data=st.data())
def test_preprocess_batch_refuses_with_the_count_of_bad_events(data):
    """Stage: preprocessing
    Fault: a batch of events for `preprocess_batch`, each with an arbitrary JSON value in an
        extra field, where hypothesis breaks a known rule in some (port 70000, IP 999.1.2.3,
        timestamp "yesterday", is_threat 7, ...).
    Expected: with no bad event, one sample per event; otherwise SchemaError whose message
        counts exactly the bad events ("k of n events rejected") and names the first one.
    """
    n = data.draw(st.integers(1, 10))
    events, bad = [], []
    for i in range(n):
        event = {"timestamp": f"2023-11-14T22:13:{i:02d}Z", "source_ip": "10.0.0.1",
                 "dest_ip": "192.0.2.1", "dest_port": 443, "extra": data.draw(json_values())}
        if data.draw(st.booleans()):
            field = data.draw(st.sampled_from(sorted(BAD_VALUES)))
            event[field] = data.draw(st.sampled_from(BAD_VALUES[field]))
            bad.append(i)
        events.append(event)
    pre = DataPreprocessor(output_dir=tempfile.gettempdir())
    if not bad:
        assert len(pre.preprocess_batch(events)) == n
        return
    with pytest.raises(SchemaError) as info:
        pre.preprocess_batch(events)
    assert f"({len(bad)} of {n} events rejected)" in str(info.value)
    assert str(info.value).startswith(f"event {bad[0]}:")
