"""`preprocess_event`'s per-event path (`canonical_record` + `layer1_record`) against the batch
path (`events_table` + `Layer1Featurizer.featurize`): the same sample, bit for bit, for real
events of every kind we read, hand-made edge cases and hypothesis-made events, in layouts
l1.v5 (the default) and l1.v4, unfitted and fitted, l1.v3, l1.v2, l1.v1 and the robust (fitted)
transform; the batch path wherever the per-event one declines.
"""

from __future__ import annotations

import itertools
import zipfile
from datetime import datetime, timedelta, timezone

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.collection.canonical_record import canonical_record
from training.collection.collector import DataCollector, DataSource
from training.collection.event_dicts import EVENT_SOURCE, events_table
from training.data_preprocessor import DataPreprocessor, LayerType
from training.demo.generator import generate_demo_events
from training.errors import SchemaError
from training.features.layer1 import Layer1Featurizer
from training.layers.layer1 import Layer1
from training.sources.presets import NSL_KDD_COLUMNS
from training.tests.conftest import DATASETS, collect
from training.tests.hypothesis_profiles import examples

L1 = LayerType.LAYER1_SENSORY


def _layers(fit_on: list[dict]) -> list[Layer1]:
    """Layer 1 in layouts l1.v5 (unfitted, and fitted on demo events), l1.v4 (the same),
    l1.v3, l1.v2 and l1.v1, and robust (volume ranges fitted on `fit_on`)."""
    robust = Layer1Featurizer(robust=True).fit(events_table(fit_on))
    demo = events_table(generate_demo_events(400, seed=7)["events"])
    counted = [Layer1(Layer1Featurizer(layout=layout).fit(demo)) for layout in ("l1.v5", "l1.v4")]
    return [Layer1(), *counted] + [Layer1(Layer1Featurizer(layout=layout))
                                   for layout in ("l1.v4", "l1.v3", "l1.v2", "l1.v1")] \
        + [Layer1(robust)]


LAYERS = _layers([{"event_id": f"e{i}", "bytes_sent": 10**i, "bytes_received": 3 * i,
                   "packets_sent": i, "duration": i / 7} for i in range(12)])


def assert_same_sample(event: dict, layers: list[Layer1] = LAYERS) -> bool:
    """Both paths on `event` in every layout; True when the per-event path took it."""
    record = canonical_record(event, EVENT_SOURCE)
    table = events_table([event])
    for layer in layers:
        batch = layer.samples(layer.featurize(table))[0]
        one = DataPreprocessor(layers=[layer]).preprocess_event(event, layers=[L1])
        fast = layer.event_sample(record) if record is not None else one
        for sample in (fast, one):
            assert sample.features.dtype == np.float32 and sample.features.shape == (128,)
            assert np.array_equal(sample.features, batch.features), \
                (layer.featurizer.spec.version, np.flatnonzero(sample.features != batch.features))
            assert (sample.sample_id, sample.label, sample.layer) == \
                (batch.sample_id, batch.label, batch.layer)
            meta, expected = sample.metadata, batch.metadata
            assert (meta["attack_type"], meta["entity"]) == (expected["attack_type"],
                                                             expected["entity"])
            assert str(meta["timestamp"]) == str(expected["timestamp"])  # NaT == NaT as text
    return record is not None


# -- real events ---------------------------------------------------------------------------------

def _json_lines(path, n: int) -> list[dict]:
    with open(path, "rb") as lines:
        return [orjson.loads(line) for line in itertools.islice(
            (line for line in lines if line.strip() and not line.startswith(b"#")), n)]


def _by_type(path, per_type: int) -> list[dict]:
    """Up to `per_type` EVE records of each event_type."""
    seen: dict[str, int] = {}
    out = []
    for record in _json_lines(path, 10**6):
        kind = record.get("event_type")
        if seen.get(kind, 0) < per_type:
            seen[kind] = seen.get(kind, 0) + 1
            out.append(record)
    return out


def _rows(kind: str, path, n: int, **params) -> list[dict]:
    """The first `n` collected events as dicts (timestamps as datetimes), as `to_pylist` has
    them."""
    table, _ = collect(kind, path, connection_params=params)
    return table.slice(0, n).to_pylist()


def _collected_dicts(kind: str, path, n: int) -> list[dict]:
    """`CollectedEvent.to_dict()` of the first `n` events (their extra fields in raw_data)."""
    collector = DataCollector([DataSource("t", kind, {"path": str(path)})], progress=False)
    return [event.to_dict() for event in collector.collect(max_events=n)]


def _windows(n: int) -> list[dict]:
    with zipfile.ZipFile(DATASETS / "windows_otrf_security_datasets"
                         / "cmd_psexec_lsa_secrets_dump.zip") as archive:
        with archive.open(archive.namelist()[0]) as lines:
            return [orjson.loads(line) for line in itertools.islice(lines, n) if line.strip()]


ZEEK_JSON = ("conn", "dns", "http", "ssl", "files", "x509", "kerberos", "dce_rpc", "smb_files",
             "smb_mapping", "ntp", "weird", "dhcp", "stats", "capture_loss", "loaded_scripts")
SLIPS_JSON = ("arp", "notice", "smtp", "software", "pe", "http", "dns")
SOURCES = {
    **{f"zeek json {log}": lambda d, log=log: _json_lines(d / "zeek_zat/json" / f"{log}.log", 3)
       for log in ZEEK_JSON},
    **{f"slips zeek json {log}": lambda d, log=log: _json_lines(
        d / "slips_zeek_json_test9" / f"{log}.log", 3) for log in SLIPS_JSON},
    "suricata eve (slips)": lambda d: _by_type(
        d / "suricata/slips_test6-malicious.suricata.json", 2),
    "suricata eve (magnc)": lambda d: _by_type(d / "suricata/magnc_server_eve.json", 1),
    "windows security/sysmon": lambda d: _windows(12),
    "iot-23 csv rows": lambda d: _rows(
        "csv_file", d / "iot23/CTU-Malware-Capture-20-1-labeled.csv", 15),
    "iot-23 honeypot rows (integer ts)": lambda d: _rows(
        "csv_file", d / "iot23/CTU-Honeypot-Capture-4-1-labeled.csv", 8),
    "nsl-kdd rows (no time, no addresses)": lambda d: _rows(
        "csv_file", d / "nsl_kdd/KDDTrain+_20Percent.txt", 8, has_header=False,
        column_names=list(NSL_KDD_COLUMNS)),
    "zeek tsv conn rows": lambda d: _rows("zeek", d / "zeek_zat/tsv/conn.log", 10),
    "zeek tsv dns rows": lambda d: _rows("zeek", d / "zeek_zat/tsv/dns.log", 8),
    "labeled zeek tsv (stratosphere 009 http)": lambda d: _rows(
        "zeek", d / "stratosphere/009-zeek-malicious/data/http.log.labeled", 8),
    "CollectedEvent.to_dict (zeek conn)": lambda d: _collected_dicts(
        "zeek", d / "zeek_zat/tsv/conn.log", 8),
    "demo events": lambda d: generate_demo_events(100)["events"][::4],
}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_real_events_give_the_batch_paths_sample_through_the_per_event_path(datasets, name):
    events = SOURCES[name](datasets)
    assert events, f"no events read for {name}"
    fast = [assert_same_sample(event) for event in events]
    # The per-event path is not a formality: it takes every one of these real events.
    assert all(fast), f"{fast.count(False)} of {len(fast)} {name} events took the batch path"


# -- hand-made edge cases --------------------------------------------------------------------------

FLOW = {"event_id": "f", "source_ip": "10.1.2.3", "dest_ip": "93.184.216.34", "dest_port": 443,
        "timestamp": "2024-03-04T10:00:05Z"}
EDGES = {
    "only an id": ({"event_id": "x"}, True),
    "no id: content hash": ({"bytes_sent": 5, "host": "ws1", "tags": ["a", None]}, True),
    "non-ASCII text and process paths": ({**FLOW, "user": "Jörg", "domain": "例え.jp",
                                          "process": "C:\\Windows\\İNSTALL.EXE",
                                          "parent_process": "/usr/bin/ßh", "note": "naïve"},
                                         True),
    "a path with a newline": ({**FLOW, "process": "a/b\nc\\D.exe", "parent_process": "x\n/y"},
                              True),
    "huge and odd numbers": ({**FLOW, "bytes_sent": 2**63 - 1, "packets_received": 10**12,
                              "duration": 1e12, "big": 1e308, "inf": float("inf"),
                              "neg": -5, "nan": float("nan"), "flag": True, "zero": 0.0}, True),
    "an integer beyond 64 bits (Arrow: uint64)": ({**FLOW, "big": 2**63}, False),
    "IPv6, zone, mapped, multicast, broadcast": (
        {**FLOW, "source_ip": "fe80::1%eth0", "dest_ip": "::ffff:1.2.3.4"}, True),
    "IPv6 multicast to IPv4 broadcast": (
        {**FLOW, "source_ip": "ff02::1", "dest_ip": "255.255.255.255", "protocol": 58}, True),
    "\"-\" and empty addresses": ({**FLOW, "source_ip": "-", "dest_ip": ""}, True),
    "epoch seconds, ms, ns; naive and zoned datetimes": ({**FLOW, "timestamp": 1.7e9 + 0.25}, True),
    "epoch ms": ({**FLOW, "timestamp": 1_700_000_000_123}, True),
    "epoch ns": ({**FLOW, "timestamp": 1_700_000_000_123_456_789}, True),
    "epoch at the ms boundary": ({**FLOW, "timestamp": 1e11}, True),
    "epoch at the us boundary": ({**FLOW, "timestamp": 10**14}, True),
    "epoch at the ns boundary": ({**FLOW, "timestamp": 1e17 + 0.5}, True),
    "epoch ms with a half us": ({**FLOW, "timestamp": 1_700_000_000_000.0005}, True),
    "epoch seconds with a half us": ({**FLOW, "timestamp": 2.5e-6}, True),
    "naive datetime": ({**FLOW, "timestamp": datetime(2024, 1, 2, 3, 4, 5, 6)}, True),
    "zoned datetime": ({**FLOW, "timestamp": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(
        timedelta(hours=-5)))}, True),
    "ISO with +HHMM and 9 fraction digits": (
        {**FLOW, "timestamp": "2021-06-06T15:59:46.999999999+0200"}, True),
    "ISO with a space, no zone": ({**FLOW, "timestamp": "2021-06-06 15:59:46.5"}, True),
    "epoch seconds as text (Arrow cannot cast it)": ({**FLOW, "timestamp": "1700000000.5"}, False),
    "blank time, Zeek ts instead": ({**FLOW, "timestamp": "-", "ts": 1.6e9}, True),
    "ports as text and as whole floats": ({**FLOW, "source_port": "8080", "dest_port": 53.0}, True),
    "a port as 80.0 text": ({**FLOW, "dest_port": "80.0"}, False),
    "severity words and scales": ({**FLOW, "severity": "high"}, True),
    "severity 0-10": ({**FLOW, "severity": 7}, True),
    "severity 0-100": ({**FLOW, "severity": 55.5}, True),
    "protocol numbers and aliases": ({**FLOW, "protocol": 6, "proto": "UDP"}, True),
    "protocol alias": ({**FLOW, "protocol": "IPv6-ICMP", "direction": "Egress"}, True),
    "labels: threat with detail": ({**FLOW, "label": "Malicious", "detailed_label": "C&C"}, True),
    "labels: threat without detail": ({**FLOW, "label": "neptune", "attack_type": "-"}, True),
    "labels: benign": ({**FLOW, "label": " Benign "}, True),
    "labels: is_threat alone": ({**FLOW, "is_threat": 1, "attack_type": "scan"}, True),
    "labels: is_threat overrides label": ({**FLOW, "is_threat": "0", "label": "Malicious"}, True),
    "two candidates: the second stays an extra": (
        {**FLOW, "src_ip": "10.9.9.9", "sport": 5, "proto": "tcp", "protocol": None}, True),
    "a record's own source": ({**FLOW, "source": "sensor-7"}, True),
    "a numeric own source": ({**FLOW, "source": 7}, True),
    "a list as own source (its first item)": ({**FLOW, "source": ["s1", "s2"]}, False),
    "an empty event type": ({**FLOW, "event_type": ""}, True),
    "trailing NULs (numpy's str drops them)": ({**FLOW, "label": "x\0", "event_id": "i\0",
                                                "user": "\0", "source_ip": None}, True),
    "Zeek names and nested objects": ({"ts": 1.6e9, "uid": "C1", "id": {"orig_h": "10.0.0.1",
                                       "orig_p": 5353, "resp_h": "224.0.0.251", "resp_p": 5353},
                                       "proto": "udp", "conn_state": "S0", "history": "D",
                                       "local_orig": True, "tunnel_parents": []}, True),
    "raw_data as an object": ({**FLOW, "raw_data": {"history": "ShADad", "event_id": "inner"}},
                              True),
    "raw_data as JSON text": ({**FLOW, "raw_data": '{"history": "Sh"}'}, False),
    "raw_data. names": ({**FLOW, "raw_data.history": "Sh", "raw_data.event_id": "kept"}, True),
    "a list of mixed scalars (Arrow keeps its text)": ({**FLOW, "mixed": [1, "a"]}, False),
    "objects in a list Arrow cannot type": ({**FLOW, "answers": [{"a": 1}, {"a": "x"}]}, False),
    "objects in a list": ({**FLOW, "answers": [{"a": 1, "b": "x"}, {"a": 2}]}, True),
    "an ECS duration (derived)": ({**FLOW, "event.duration": 1_500_000_000}, False),
    "a float in a text field (Arrow writes it)": ({**FLOW, "host": 1.5}, False),
    "IPv6 spelt uncompressed (canonical text)": (
        {**FLOW, "source_ip": "FE80:0:0:0:90e:17af:263c:5209", "dest_ip": "fe80::1%eth0"}, True),
}


@pytest.mark.parametrize("name", sorted(EDGES))
def test_edge_cases_give_the_batch_paths_sample(name):
    event, takes_per_event_path = EDGES[name]
    assert assert_same_sample(event) is takes_per_event_path


BAD = {
    "a port out of range": {**FLOW, "dest_port": 99999},
    "a timestamp that is no time": {**FLOW, "timestamp": "yesterday"},
    "no such day": {**FLOW, "timestamp": "2023-02-30T00:00:00Z"},
    "before 1970": {**FLOW, "timestamp": "1969-12-31T23:59:59Z"},
    "an epoch no int64 holds": {**FLOW, "timestamp": 1e30},
    "an epoch read as ms past 2199": {**FLOW, "timestamp": 99_999_999_999},
    "an infinite epoch": {**FLOW, "timestamp": float("inf")},
    "not an address": {**FLOW, "source_ip": "999.1.2.3"},
    "is_threat 7": {**FLOW, "is_threat": 7},
    "a boolean severity": {**FLOW, "severity": True},
    "a negative duration": {**FLOW, "duration": -1.0},
    "a lone surrogate": {**FLOW, "user": "\ud800"},
    "empty": {},
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_events_are_refused_as_the_batch_path_refuses_them(name):
    event = BAD[name]
    assert canonical_record(event, EVENT_SOURCE) is None
    with pytest.raises(SchemaError) as batch:
        events_table([event])
    with pytest.raises(SchemaError) as one:
        DataPreprocessor().preprocess_event(event, layers=[L1])
    assert str(one.value) == str(batch.value)


# -- hypothesis-made events --------------------------------------------------------------------

NAMES = ["timestamp", "@timestamp", "ts", "event_id", "source_ip", "src_ip", "id.orig_h",
         "dest_ip", "dest_port", "source_port", "protocol", "proto", "bytes_sent", "orig_bytes",
         "duration", "label", "is_threat", "attack_type", "detailed_label", "host", "user",
         "process", "severity", "event_type", "conn_state", "direction", "service", "uid",
         "source", "raw_data.x", "extra"]
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=10)
SCALARS = (st.none() | st.booleans() | st.integers(-2**64, 2**64) | st.floats() | TEXT
           | st.sampled_from(["-", "", "80", "tcp", "6", "10.0.0.1", "::1", "high", "Benign",
                              "2024-03-04T10:00:05Z", "2024-03-04 10:00:05.5+0100"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(TEXT, inner, max_size=2), max_leaves=5)


@settings(max_examples=examples(80), deadline=None)
@given(event=st.dictionaries(st.sampled_from(NAMES) | TEXT, VALUES, min_size=1, max_size=6))
def test_hypothesis_events_give_the_batch_paths_sample(event):
    record = canonical_record(event, EVENT_SOURCE)
    try:
        events_table([event])
    except SchemaError:
        assert record is None  # what the batch path refuses, the per-event path declines
        return
    if record is not None:
        assert_same_sample(event, LAYERS[:1])
