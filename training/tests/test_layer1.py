"""Layer-1 features: the documented layout, determinism, the fitted variant, the spec."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from training.collection.event_dicts import events_table
from training.errors import ConfigError, SchemaError
from training.features.encoding import FeatureSpec
from training.features.layer1 import (
    DIM, EXTRA, IDENTITY_AT, SEVERITY, TIME, VOLUME_AT, Layer1Featurizer,
)
from training.tests.conftest import REPO, collect

BASE = {
    "event_id": "e1", "timestamp": "2024-03-05T10:15:30Z", "event_type": "network_connection",
    "source_ip": "10.0.0.5", "source_port": 51515, "dest_ip": "93.184.216.34", "dest_port": 443,
    "protocol": "tcp", "service": "ssl", "bytes_sent": 1200, "bytes_received": 5400,
    "packets_sent": 10, "packets_received": 12, "duration": 1.5, "conn_state": "SF",
    "direction": "outbound", "severity": 0.3, "user": "alice", "host": "ws-01",
    "process": "C:\\Program Files\\chrome.exe", "parent_process": "explorer.exe",
    "command_line": "chrome.exe --type=renderer", "domain": "example.com",
    "file_path": "C:\\Users\\alice\\a.txt", "label": "benign", "history": "ShADadFf",
}

# field -> (documented dims, alternative values; at least one must move the vector)
LAYOUT = {
    "event_type": (range(0, 12), ["dns_query", "alert", "process_creation", "weird-thing"]),
    "protocol": (range(12, 18), ["udp", "icmp", "gre", "esp"]),
    "service": (range(18, 30), ["dns", "ssh", "modbus", "sip"]),
    "conn_state": (range(30, 45), ["REJ", "S0", "established", "closed"]),
    "direction": (range(45, 49), ["inbound", "internal"]),
    "source_ip": (range(49, 57), ["8.8.8.8", "2001:db8::5", "224.0.0.251"]),
    "dest_ip": (range(57, 65), ["10.1.1.1", "fe80::1", "255.255.255.255"]),
    "source_port": (range(65, 70), [80, 3389, 60000]),
    "dest_port": (range(70, 75), [22, 8081, 50000]),
    "bytes_sent": ([VOLUME_AT], [99_999]),
    "bytes_received": ([VOLUME_AT + 1], [7]),
    "packets_sent": ([VOLUME_AT + 2], [1000]),
    "packets_received": ([VOLUME_AT + 3], [1]),
    "duration": ([VOLUME_AT + 4], [3600.0]),
    "severity": ([SEVERITY], [0.9]),
    "timestamp": (range(TIME, TIME + 4), ["2024-03-07T22:15:31Z"]),
    "user": (range(IDENTITY_AT, IDENTITY_AT + 4), ["bob", "carol", "dave", "eve"]),
    "host": (range(89, 93), ["ws-02", "ws-03", "srv-1", "dc-1"]),
    "process": (range(93, 97), ["powershell.exe", "cmd.exe", "rundll32.exe", "svchost.exe"]),
    "parent_process": (range(97, 100), ["winword.exe", "services.exe", "cmd.exe", "wmiprvse.exe"]),
    "command_line": (range(100, 104), ["whoami /all", "net user", "ipconfig", "ls"]),
    "domain": (range(104, 108), ["evil.test", "a.b.c", "update.example.org", "x.y"]),
    "file_path": (range(108, 112), ["/etc/passwd", "C:\\x.dll", "/tmp/a", "d.doc"]),
    "history": (range(EXTRA, DIM), ["S", "ShR", "Dd", "ShADadttfF"]),
}


def vector(event: dict, layout: str = "l1.v1") -> np.ndarray:
    return Layer1Featurizer(layout=layout).featurize(events_table([event]))[0]


def test_layout_l1_v2_leaves_address_buckets_and_time_at_zero_and_keeps_the_rest():
    event = {**BASE, "source_ip": "8.8.8.8", "dest_ip": "10.1.1.1"}
    old, new = vector(event), vector(event, "l1.v2")
    blank = [*range(53, 57), *range(61, 65), *range(TIME, TIME + 4)]
    assert old[blank].any() and not new[blank].any()
    keep = np.setdiff1d(np.arange(DIM), blank)
    np.testing.assert_array_equal(new[keep], old[keep])
    assert Layer1Featurizer().layout == "l1.v5"
    assert Layer1Featurizer().spec.version == "l1.v3"  # l1.v5 unfitted: nothing counted yet
    fitted = [Layer1Featurizer(layout=f"l1.v{n}").fit(events_table([BASE])) for n in (4, 5)]
    for featurizer in [Layer1Featurizer(layout=f"l1.v{n}") for n in (1, 2, 3)] + fitted:
        spec = featurizer.spec  # each spec rebuilds its own layout
        assert Layer1Featurizer.from_spec(spec).layout == featurizer.layout == spec.version
    with pytest.raises(ConfigError, match="layout must be one of l1.v1, l1.v2, l1.v3, l1.v4, "
                                          "l1.v5, got 'l1.v9'"):
        Layer1Featurizer(layout="l1.v9")


def test_layout_l1_v3_adds_two_magnitude_steps_per_volume_where_l1_v2_has_zeros():
    event = {**BASE, "bytes_sent": 10**8, "packets_sent": 10**6, "duration": 86_400.0}
    old, new = vector(event, "l1.v2"), vector(event, "l1.v3")
    # (first step dim, the volume dim's value): 1e8 bytes is 0.8 of the log range to 1e10.
    steps = {53: np.log1p(1e8) / np.log1p(1e10), 55: np.log1p(5400) / np.log1p(1e10),
             61: np.log1p(1e6) / np.log1p(1e7), 63: np.log1p(12) / np.log1p(1e7), 81: 1.0}
    for at, (k, scaled) in zip(steps, enumerate(steps.values())):
        assert new[VOLUME_AT + k] == pytest.approx(scaled)
        expected = [np.clip((scaled - 0.5) / 0.25, 0, 1), np.clip((scaled - 0.75) / 0.25, 0, 1)]
        assert new[at:at + 2] == pytest.approx(expected, abs=1e-6)
    assert new[53:55] == pytest.approx([1.0, 0.2], abs=1e-6) and not new[55:57].any()
    assert not new[83:85].any()
    keep = np.setdiff1d(np.arange(DIM), [*range(53, 57), *range(61, 65), 81, 82])
    np.testing.assert_array_equal(new[keep], old[keep])


@pytest.mark.parametrize("layout", ["l1.v1", "l1.v2", "l1.v3", "l1.v4"])
def test_no_event_gives_no_vector_in_every_layout(layout):
    table = events_table([BASE]).slice(0, 0)
    assert Layer1Featurizer(layout=layout).featurize(table).shape == (0, DIM)


def test_blocks_tile_the_128_dims_in_order():
    starts = [dims[0] for dims, _ in LAYOUT.values()]
    assert starts == sorted(starts)
    covered = sorted(d for dims, _ in LAYOUT.values() for d in dims)
    assert covered == list(range(DIM))


@pytest.mark.parametrize("field", LAYOUT)
def test_each_field_moves_exactly_its_documented_dims(field):
    dims, alternatives = LAYOUT[field]
    before = vector(BASE)
    moved = False
    for value in [*alternatives, None]:
        after = vector({**BASE, field: value})
        changed = set(np.flatnonzero(after != before))
        assert changed <= set(dims), (field, value, sorted(changed - set(dims)))
        moved |= bool(changed)
    assert moved, f"no value of {field} changed the vector"


def test_known_values_are_one_hot_and_missing_values_leave_the_block_empty():
    v = vector(BASE)
    assert v[0] == 1 and v[12] == 1 and v[18 + 2] == 1 and v[30 + 2] == 1 and v[45 + 1] == 1
    assert (v[49], v[50], v[57], v[58]) == (1, 0, 0, 1)  # private source, public destination
    assert v[65 + 2] == 1 and v[70] == 1 and v[70 + 4] == 1  # 51515 dynamic; 443 well-known, common
    assert v[70 + 3] == pytest.approx(443 / 65535)
    assert v[VOLUME_AT] == pytest.approx(np.log1p(1200) / np.log1p(1e10))
    assert v[SEVERITY] == pytest.approx(0.3)
    hour = (10 * 3600 + 15 * 60 + 30) / 86400
    assert v[TIME] == pytest.approx((np.sin(2 * np.pi * hour) + 1) / 2, abs=1e-6)
    empty = vector({"event_id": "only-an-id"})
    # Every event has a type (the collector's default "event", a hashed one); nothing else.
    assert list(np.flatnonzero(empty)) == [8 + int(np.flatnonzero(empty[8:12])[0])]


def test_values_stay_in_unit_range_on_real_data(datasets):
    table, _ = collect("zeek_logs", datasets / "stratosphere/011-zeek-mixed/data/conn.log.labeled")
    features = Layer1Featurizer().featurize(table)
    assert features.shape == (table.num_rows, DIM) and features.dtype == np.float32
    assert features.min() >= 0.0 and features.max() <= 1.0 and np.isfinite(features).all()


def test_nsl_kdd_columns_contribute_through_the_extra_block(datasets):
    from training.tests.test_real_datasets import NSL_KDD_COLUMNS, NSL_KDD_FIELDS

    table, _ = collect("csv_file", datasets / "nsl_kdd/KDDTrain+_20Percent.txt",
                       connection_params={"has_header": False, "column_names": NSL_KDD_COLUMNS},
                       field_map=NSL_KDD_FIELDS)
    features = Layer1Featurizer().featurize(table.slice(0, 2000))
    assert (features[:, EXTRA:] > 0).sum(axis=1).min() >= 3


def test_batch_and_per_event_vectors_are_bit_identical():
    from training.demo.generator import generate_demo_events

    events = generate_demo_events(300, seed=3)["events"]
    batch = Layer1Featurizer().featurize(events_table(events))
    one_by_one = np.stack([vector(e, "l1.v4") for e in events[:60]])
    assert np.array_equal(batch[:60], one_by_one)


CHILD = """
import hashlib, sys
from training.demo.generator import generate_demo_events
from training.collection.event_dicts import events_table
from training.features.layer1 import Layer1Featurizer
events = generate_demo_events(500, seed=11)["events"]
print(hashlib.sha256(Layer1Featurizer().featurize(events_table(events)).tobytes()).hexdigest())
"""


def test_vectors_are_bit_identical_across_processes():
    digests = set()
    for seed in ("0", "4242"):  # a different PYTHONHASHSEED would change any use of hash()
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                             text=True, check=True, timeout=120)
        digests.add(out.stdout.strip())
    from training.demo.generator import generate_demo_events

    events = generate_demo_events(500, seed=11)["events"]
    here = hashlib.sha256(Layer1Featurizer().featurize(events_table(events)).tobytes()).hexdigest()
    assert digests == {here}


def test_robust_variant_is_fitted_on_training_data_and_travels_in_its_spec():
    train = events_table([{**BASE, "event_id": f"t{i}", "bytes_sent": 10 ** (i % 7)}
                          for i in range(200)])
    with pytest.raises(ConfigError, match="not fitted"):
        Layer1Featurizer(robust=True).featurize(train)
    featurizer = Layer1Featurizer(robust=True).fit(train)
    low, high = featurizer.ranges_["bytes_sent"]
    assert low == pytest.approx(np.percentile(np.log1p([10 ** (i % 7) for i in range(200)]), 1))
    rebuilt = Layer1Featurizer.from_spec(FeatureSpec.from_json(featurizer.spec.to_json()))
    test = events_table([{**BASE, "bytes_sent": 5_000}])
    assert np.array_equal(rebuilt.featurize(test), featurizer.featurize(test))
    assert rebuilt.spec.fingerprint == featurizer.spec.fingerprint
    assert featurizer.spec.fingerprint != Layer1Featurizer().spec.fingerprint


def test_feature_spec_refuses_tampering_and_other_transforms():
    spec = Layer1Featurizer().spec
    document = json.loads(spec.to_json())
    document["config"]["dim"] = 64
    with pytest.raises(SchemaError, match="was altered"):
        FeatureSpec.from_json(json.dumps(document))
    fitted = Layer1Featurizer(robust=True).fit(events_table([BASE])).spec
    with pytest.raises(SchemaError, match="another feature transform"):
        spec.require(fitted, "dataset x.npz")
    spec.require(FeatureSpec.from_json(spec.to_json()), "the same spec")
    with pytest.raises(SchemaError, match="cannot drive"):
        Layer1Featurizer.from_spec(FeatureSpec("layer2", "l2.v1"))


def test_a_canonical_table_without_canonical_columns_is_refused():
    with pytest.raises(SchemaError, match="must be a canonical event table"):
        events_table(pa.table({"a": [1]}))
