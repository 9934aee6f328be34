"""Tests of the synthetic demo data: determinism, shape, labels, and that no one field gives
the attacks away while combinations of fields still do."""

from __future__ import annotations

import functools
import json
import os
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import orjson
import pytest
import sklearn
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.tree import DecisionTreeClassifier

from training.demo.generator import DEFAULT_START, generate_demo_events, write_demo_file
from training.demo.scenarios import FIELDS, SCENARIOS
from training.errors import ConfigError

LABEL_FIELDS = ("label", "attack_type", "mitre_technique")
TECHNIQUES = {"port_scan": "T1046", "ssh_brute_force": "T1110.001", "c2_beaconing": "T1071.001",
              "data_exfiltration": "T1048", "lateral_movement": "T1021.002",
              "privilege_escalation": "T1548"}
NETWORK_ONLY = ("source_port", "dest_port", "protocol", "bytes_sent", "bytes_received",
                "packets_sent", "packets_received", "duration", "conn_state", "direction")
HOST_ONLY = ("process", "parent_process", "command_line", "file_path", "severity")
MAX_ONE_FIELD_AUC = 0.9


@functools.lru_cache(maxsize=None)
def _doc(seed: int = 42) -> dict:
    """A generated document (10,000 events) shared by the tests that only read it."""
    return generate_demo_events(seed=seed)


@pytest.fixture
def default_doc() -> dict:
    return _doc()


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts)


# ---- One-field separability -------------------------------------------------------------------

def _codes(values: list[str]) -> np.ndarray:
    """Integer code of each distinct value, in order of first appearance."""
    index: dict[str, int] = {}
    return np.array([index.setdefault(v, len(index)) for v in values])


def one_field_views(events: list[dict]) -> dict[str, tuple[str, np.ndarray]]:
    """Every way a single field can be fed to a stump: name -> (kind, values).

    Numeric fields are used as numbers (null -> -1) and as categories; the timestamp as epoch
    seconds, hour of day (number and category) and weekday; everything else as a category.
    """
    views: dict[str, tuple[str, np.ndarray]] = {}
    for field in events[0]:
        if field in LABEL_FIELDS or field == "event_id":
            continue
        values = [e[field] for e in events]
        if field == "timestamp":
            stamps = np.array([v.rstrip("Z") for v in values], dtype="datetime64[us]")
            micros = stamps.astype(np.int64)
            hours = micros // 3_600_000_000
            views["timestamp:epoch"] = ("num", micros / 1e6)
            views["timestamp:hour"] = ("num", (hours % 24).astype(float))
            views["timestamp:hour_cat"] = ("cat", hours % 24)
            views["timestamp:weekday"] = ("cat", (hours // 24 + 3) % 7)  # 1970-01-01 was a Thursday
            continue
        if all(v is None or type(v) in (int, float) for v in values):
            numbers = [-1.0 if v is None else float(v) for v in values]  # -1: missing
            views[f"{field}:num"] = ("num", np.array(numbers))
        views[f"{field}:cat"] = ("cat", _codes(["<null>" if v is None else str(v) for v in values]))
    return views


def _encode_in_sample(train: np.ndarray, y: np.ndarray,
                      test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-category threat rate on train (categories as integer codes); unseen: the prior."""
    size = max(train.max(), test.max()) + 1
    count = np.bincount(train, minlength=size)
    threats = np.bincount(train, weights=y, minlength=size)
    rate = np.where(count > 0, threats / np.maximum(count, 1), y.mean())
    return rate[train], rate[test]


def _encode_cross_fitted(train: np.ndarray, y: np.ndarray,
                         test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same rate, out-of-fold on train, so rare values do not set the stump's threshold."""
    out = np.empty(len(train))
    for fit, held in StratifiedKFold(5, shuffle=True, random_state=0).split(train, y):
        out[held] = _encode_in_sample(train[fit], y[fit], train[held])[1]
    return out, _encode_in_sample(train, y, test)[1]


def _stump_auc(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
               y_test: np.ndarray) -> float:
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(x_train.reshape(-1, 1), y_train)
    return float(roc_auc_score(y_test, stump.predict_proba(x_test.reshape(-1, 1))[:, 1]))


def one_field_aucs(events: list[dict], split_seed: int = 0) -> dict[str, float]:
    """Test-set ROC-AUC of the strongest one-field stump, per field view."""
    y = np.array([e["label"] == "malicious" for e in events], dtype=int)
    train, test = train_test_split(np.arange(len(y)), test_size=0.3, stratify=y,
                                   random_state=split_seed)
    aucs = {}
    # inputs are built here and finite: skip sklearn's per-call checks (most of the run time)
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        for name, (kind, values) in one_field_views(events).items():
            if kind == "num":
                aucs[name] = _stump_auc(values[train], y[train], values[test], y[test])
                continue
            encodings = (enc(values[train], y[train], values[test])
                         for enc in (_encode_in_sample, _encode_cross_fitted))
            aucs[name] = max(_stump_auc(a, y[train], b, y[test]) for a, b in encodings)
    return aucs


@pytest.mark.parametrize("seed", [42, 7, 2024])
def test_no_single_field_separates_attacks(seed: int) -> None:
    aucs = one_field_aucs(_doc(seed)["events"])
    assert {name.split(":")[0] for name in aucs} == set(FIELDS) - set(LABEL_FIELDS) - {"event_id"}
    offending = {name: round(auc, 3) for name, auc in aucs.items() if auc >= MAX_ONE_FIELD_AUC}
    assert not offending, f"one-field stumps reach ROC-AUC >= {MAX_ONE_FIELD_AUC}: {offending}"


def test_stump_check_flags_a_leaky_field() -> None:
    events = [dict(e) for e in generate_demo_events(n_events=2000, seed=9)["events"]]
    for e in events:  # one categorical and one numeric field that give the attacks away
        e["leak_name"] = e["attack_type"] or "benign"
        e["leak_size"] = (e["bytes_sent"] or 0) + (10**9 if e["label"] == "malicious" else 0)
    aucs = one_field_aucs(events)
    assert aucs["leak_name:cat"] > 0.99 and aucs["leak_size:num"] > 0.99
    assert max(v for k, v in aucs.items() if not k.startswith("leak")) < MAX_ONE_FIELD_AUC


def test_field_combinations_still_detect_attacks(default_doc: dict) -> None:
    events = default_doc["events"]
    y = np.array([e["label"] == "malicious" for e in events], dtype=int)
    train, test = train_test_split(np.arange(len(y)), test_size=0.3, stratify=y, random_state=0)
    columns = []
    for kind, values in one_field_views(events).values():
        if kind == "num":
            columns.append((values[train], values[test]))
        else:
            columns.append(_encode_cross_fitted(values[train], y[train], values[test]))
    x_train = np.column_stack([a for a, _ in columns])
    x_test = np.column_stack([b for _, b in columns])
    model = DecisionTreeClassifier(max_depth=8, min_samples_leaf=5, random_state=0)
    model.fit(x_train, y[train])
    assert roc_auc_score(y[test], model.predict_proba(x_test)[:, 1]) > 0.95


def test_scans_are_bursts_of_failed_connections_to_many_ports(default_doc: dict) -> None:
    scans = [e for e in default_doc["events"] if e["attack_type"] == "port_scan"]
    by_host = defaultdict(list)
    for e in scans:
        by_host[e["source_ip"]].append(e)
    assert len(by_host) >= 3
    failed = sum(e["conn_state"] in ("S0", "REJ", "RSTO", "RSTR", "SH", "OTH") for e in scans)
    assert failed / len(scans) > 0.5  # most probes fail; open ports answer (SF)
    widest = max(len({(e["dest_ip"], e["dest_port"]) for e in group}) for group in by_host.values())
    assert widest >= 20
    for group in by_host.values():  # seconds between probes, where normal hosts take minutes
        times = sorted(_parse(e["timestamp"]).timestamp() for e in group)
        assert np.median(np.diff(times)) < 10.0


def _interval_cv(times: list[float]) -> float:
    """Coefficient of variation of the gaps, ignoring pauses (> 3x the median gap)."""
    gaps = np.diff(sorted(times))
    gaps = gaps[gaps < 3 * np.median(gaps)]
    return float(np.std(gaps) / np.mean(gaps))


def test_beacons_are_periodic_unlike_browsing(default_doc: dict) -> None:
    beacons, browsing = defaultdict(list), defaultdict(list)
    for e in default_doc["events"]:
        if e["event_type"] == "dns_query":
            continue
        if e["attack_type"] == "c2_beaconing":
            beacons[e["host"]].append(_parse(e["timestamp"]).timestamp())
        elif e["label"] == "benign" and e["event_type"] == "http_request":
            browsing[e["host"]].append(_parse(e["timestamp"]).timestamp())
    cvs = [_interval_cv(times) for times in beacons.values() if len(times) >= 10]
    assert len(cvs) >= 3 and max(cvs) < 0.5  # jitter only; a skipped check-in doubles one gap
    busiest = max(browsing.values(), key=len)
    assert _interval_cv(busiest) > 0.65  # people browse at random (Poisson-like, cut at 3x)


# ---- Determinism, shape, labels ---------------------------------------------------------------

def test_same_seed_same_document_and_other_seed_differs() -> None:
    first = generate_demo_events(n_events=3000, seed=11)
    assert orjson.dumps(generate_demo_events(n_events=3000, seed=11)) == orjson.dumps(first)
    other = generate_demo_events(n_events=3000, seed=12)
    assert other["events"] != first["events"]
    assert other["metadata"]["seed"] == 12


def test_default_document_has_ten_thousand_events(default_doc: dict) -> None:
    assert len(default_doc["events"]) == default_doc["metadata"]["n_events"] == 10_000


@pytest.mark.parametrize("n_events", [100, 101, 1234])
def test_n_events_is_exact(n_events: int) -> None:
    doc = generate_demo_events(n_events=n_events, seed=1)
    assert len(doc["events"]) == doc["metadata"]["n_events"] == n_events
    assert len({e["event_id"] for e in doc["events"]}) == n_events
    assert doc["events"][0]["event_id"] == "demo-000001"


def test_every_scenario_present_with_its_technique_and_share(default_doc: dict) -> None:
    events, meta = default_doc["events"], default_doc["metadata"]
    counts = Counter(e["attack_type"] for e in events if e["label"] == "malicious")
    assert set(counts) == set(TECHNIQUES) == set(SCENARIOS)
    for name, technique in TECHNIQUES.items():
        assert {e["mitre_technique"] for e in events if e["attack_type"] == name} == {technique}
        assert meta["scenarios"][name]["technique"] == technique
        assert meta["scenarios"][name]["count"] == counts[name]
        assert 0.005 <= counts[name] / len(events) <= 0.04
    assert 0.08 <= sum(counts.values()) / len(events) <= 0.12
    assert meta["n_malicious"] == sum(counts.values())


def test_attacks_spread_over_window_and_hosts_that_also_work_normally(default_doc: dict) -> None:
    events = default_doc["events"]
    benign_hosts = {e["host"] for e in events if e["label"] == "benign"}
    for name in TECHNIQUES:
        attack = [e for e in events if e["attack_type"] == name]
        days = {_parse(e["timestamp"]).date() for e in attack}
        assert len(days) >= 3, f"{name} falls on {len(days)} days only"
        hosts = {e["host"] for e in attack}
        assert len(hosts) >= 2 and hosts <= benign_hosts, name


def test_timestamps_sorted_and_within_window() -> None:
    start = datetime(2024, 6, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    doc = generate_demo_events(n_events=2000, seed=5, start=start, days=2)
    times = [_parse(e["timestamp"]) for e in doc["events"]]
    assert times == sorted(times)
    assert start <= times[0] and times[-1] < start + timedelta(days=2)
    assert doc["metadata"]["start"] == "2024-06-01T10:30:00.000000Z"
    assert doc["metadata"]["end"] == "2024-06-03T10:30:00.000000Z"


def test_default_window_is_a_fixed_utc_week(default_doc: dict) -> None:
    times = [_parse(e["timestamp"]) for e in default_doc["events"]]
    assert DEFAULT_START <= min(times) and max(times) < DEFAULT_START + timedelta(days=7)


def test_events_are_json_with_documented_fields(default_doc: dict) -> None:
    json.dumps(default_doc)  # plain Python values only: no numpy scalars
    for e in default_doc["events"]:
        assert tuple(e) == FIELDS
        assert all(v is None or type(v) in (str, int, float) for v in e.values())
        assert e["label"] in ("benign", "malicious")
        benign = e["label"] == "benign"
        assert benign == (e["attack_type"] is None) == (e["mitre_technique"] is None)
        assert e["event_type"] in ("network_connection", "dns_query", "http_request",
                                   "authentication", "process_creation", "file_access")
        network = e["event_type"] in ("network_connection", "dns_query", "http_request")
        if network:
            assert all(e[f] is not None for f in NETWORK_ONLY)
            assert all(e[f] is None for f in HOST_ONLY + ("user", "outcome"))
            assert 0 <= e["source_port"] <= 65535 and 0 <= e["dest_port"] <= 65535
            assert e["protocol"] in ("tcp", "udp", "icmp")
            assert e["direction"] in ("inbound", "outbound", "internal")
            assert e["conn_state"] in ("SF", "S0", "REJ", "RSTO", "RSTR", "SH", "OTH")
            assert min(e["bytes_sent"], e["bytes_received"], e["duration"]) >= 0
        else:
            assert all(e[f] is None for f in NETWORK_ONLY + ("domain",))
            assert e["host"] and e["user"] and 0.0 <= e["severity"] <= 1.0
        assert (e["outcome"] is not None) == (e["event_type"] == "authentication")
        assert (e["command_line"] is not None) == (e["event_type"] == "process_creation")
        assert (e["file_path"] is not None) == (e["event_type"] == "file_access")


def test_generation_is_fast() -> None:
    began = time.perf_counter()
    generate_demo_events(seed=3)
    assert time.perf_counter() - began < 2.0


# ---- Writing the file -------------------------------------------------------------------------

def test_write_demo_file_creates_folders_and_round_trips(tmp_path: Path) -> None:
    path = write_demo_file(tmp_path / "a" / "b" / "events.json", n_events=500, seed=3)
    with open(path, encoding="utf-8") as f:
        assert json.load(f) == json.loads(orjson.dumps(generate_demo_events(n_events=500, seed=3)))
    assert os.listdir(path.parent) == ["events.json"]  # no temporary file left behind


def test_write_demo_file_leaves_previous_file_intact_on_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "events.json"
    path.write_text("previous")

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_demo_file(path, n_events=100)
    assert path.read_text() == "previous"
    assert os.listdir(tmp_path) == ["events.json"]


# ---- Validation -------------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_events": 99}, "n_events must be between 100 and 10000000, got 99"),
    ({"n_events": 0}, "n_events must be between 100 and 10000000, got 0"),
    ({"n_events": True}, "n_events must be an integer, got True"),
    ({"n_events": 1000.0}, "n_events must be an integer, got 1000.0"),
    ({"days": 0}, "days must be between 1 and 366, got 0"),
    ({"days": 367}, "days must be between 1 and 366, got 367"),
    ({"seed": -1}, "seed must be between 0 and"),
    ({"seed": "42"}, "seed must be an integer, got '42'"),
    ({"start": datetime(2024, 3, 4)}, "start must be a timezone-aware datetime, got datetime"),
    ({"start": "2024-03-04"}, "start must be a timezone-aware datetime, got '2024-03-04'"),
])
def test_invalid_arguments_raise_config_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        generate_demo_events(**kwargs)
    assert str(info.value).startswith(message)


def test_edges_are_accepted() -> None:
    doc = generate_demo_events(n_events=100, seed=0, days=1)
    assert len(doc["events"]) == 100
    assert {e["attack_type"] for e in doc["events"]} - {None} == set(TECHNIQUES)


def test_write_demo_file_validates_before_touching_disk(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="n_events"):
        write_demo_file(tmp_path / "new" / "events.json", n_events=10)
    assert not (tmp_path / "new").exists()
