"""Layer 1's `l1.v4` identity block and `l1.v5`'s network dims (`training.features.
layer1_rarity`) on real events: what training saw, counted by `fit`, and what it never saw, as
the featurizer and a model's spec read it (the per-event path is pinned to the batch path in
`test_event_fast_path.py`)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pyarrow.compute as pc
import pytest

from training.features.encoding import FeatureSpec
from training.features.layer1 import Layer1Featurizer
from training.features.layer1_rarity import (FIELDS, PAIRS, PAIRS_AT, RARITY_AT, SEEN_AT,
                                             WIDTH, ValueCounts, write_rarity)
from training.features.seen_filter import ERROR, SeenFilter
from training.tests.conftest import collect


@pytest.fixture(scope="module")
def demo_events(tmp_path_factory):
    from training.demo.generator import write_demo_file

    path = write_demo_file(tmp_path_factory.mktemp("rarity") / "demo.json", n_events=3_000,
                           seed=5)
    events, _ = collect("json_file", path)
    return events.sort_by("timestamp")


def _dim(name: str, what: int = 2) -> int:
    """A field's dim: 0 present, 1 rarity, 2 never seen."""
    return RARITY_AT + WIDTH * FIELDS.index(name) + what


def test_values_training_never_saw_set_their_never_seen_dims(demo_events):
    train, test = demo_events.slice(0, 2_000), demo_events.slice(2_000)
    featurizer = Layer1Featurizer(layout="l1.v4").fit(train)
    seen_lines = set(train["command_line"].drop_null().to_pylist())
    vectors = featurizer.featurize(test)
    lines = test["command_line"].to_pylist()
    has = np.array([v is not None for v in lines])
    unseen = np.array([v is not None and v not in seen_lines for v in lines])
    assert unseen.any() and (has & ~unseen).any()
    np.testing.assert_array_equal(vectors[:, _dim("command_line", 0)], has)
    np.testing.assert_array_equal(vectors[:, _dim("command_line")], unseen)
    assert (vectors[unseen, _dim("command_line", 1)] == 1.0).all()
    assert (vectors[has & ~unseen, _dim("command_line", 1)] < 1.0).all()
    # Every training value was counted: nothing in training reads as never seen.
    trained = featurizer.featurize(train)
    never = [_dim(f) for f in FIELDS] + list(range(PAIRS_AT, PAIRS_AT + len(PAIRS)))
    assert not trained[:, never].any()
    # A host and account never seen together, though each was (lateral movement's sign).
    pair = PAIRS.index(("host", "user"))
    seen_pairs = set(zip(train["host"].to_pylist(), train["user"].to_pylist()))
    fresh = np.array([h is not None and u is not None and (h, u) not in seen_pairs
                      for h, u in zip(test["host"].to_pylist(), test["user"].to_pylist())])
    np.testing.assert_array_equal(vectors[:, PAIRS_AT + pair], fresh)
    each_seen = (vectors[:, _dim("host")] == 0) & (vectors[:, _dim("user")] == 0)
    assert (fresh & each_seen).any()


def test_the_counts_travel_in_the_spec_as_digests_and_score_the_same(demo_events):
    train = demo_events.slice(0, 2_000)
    featurizer = Layer1Featurizer(layout="l1.v4").fit(train)
    text = featurizer.spec.to_json()
    line = train["command_line"].drop_null()[0].as_py()
    assert line not in text  # no command line is written into a model file
    rebuilt = Layer1Featurizer.from_spec(FeatureSpec.from_json(text))
    np.testing.assert_array_equal(rebuilt.featurize(demo_events),
                                  featurizer.featurize(demo_events))
    # Unfitted (nothing counted), l1.v4 is l1.v3, hash buckets included, and says so.
    bare = Layer1Featurizer(layout="l1.v4")
    assert bare.spec.version == "l1.v3" and featurizer.spec.version == "l1.v4"
    np.testing.assert_array_equal(bare.featurize(demo_events),
                                  Layer1Featurizer(layout="l1.v3").featurize(demo_events))


def test_l1_v5_marks_a_connection_state_protocol_or_service_training_never_saw(demo_events):
    # Training without the demo's rejected connections, ICMP and Kerberos: the test part's
    # events of those values read as never seen, every other value (and a missing one) as seen.
    unseen = {"conn_state": "REJ", "protocol": "icmp", "service": "kerberos"}
    train, test = demo_events.slice(0, 2_000), demo_events.slice(2_000)
    for name, value in unseen.items():
        train = train.filter(pc.fill_null(pc.not_equal(train[name], value), True))
    featurizer = Layer1Featurizer().fit(train)
    assert featurizer.spec.version == "l1.v5"
    vectors = featurizer.featurize(test)
    for name, value in unseen.items():
        never = np.array([v == value for v in test[name].to_pylist()])
        assert never.any() and (~never).any()
        np.testing.assert_array_equal(vectors[:, SEEN_AT[name]], never)
    assert not featurizer.featurize(train)[:, list(SEEN_AT.values())].any()
    # l1.v4 counts no network value: its models keep their transform.
    old = Layer1Featurizer(layout="l1.v4").fit(train)
    assert not set(SEEN_AT) & set(old.spec.fitted["value_counts"]["totals"])
    np.testing.assert_array_equal(np.delete(old.featurize(test), list(SEEN_AT.values()), 1),
                                  np.delete(vectors, list(SEEN_AT.values()), 1))
    assert not old.featurize(test)[:, list(SEEN_AT.values())].any()


def test_a_seen_filter_finds_every_key_it_holds_and_few_others():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 2**63, 20_000, dtype=np.uint64) * np.uint64(2)  # even keys
    others = rng.integers(0, 2**63, 200_000, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    kept = SeenFilter.of(keys)
    assert kept.contains(keys).all()  # no false negatives
    false_positives = kept.contains(others).mean()
    assert false_positives < 2 * ERROR, false_positives  # sized for ERROR (0.1%)
    again = SeenFilter.from_dict(json.loads(json.dumps(kept.to_dict())))
    np.testing.assert_array_equal(again.contains(others[:5_000]), kept.contains(others[:5_000]))
    assert len(kept.bits) * 8 / len(keys) < 15  # about 14.4 bits a key


def _never_seen(counts: ValueCounts, table) -> np.ndarray:
    vectors = np.zeros((table.num_rows, 128), np.float32)
    write_rarity(vectors, table, counts)
    return vectors[:, [_dim(f) for f in FIELDS] + list(range(PAIRS_AT, PAIRS_AT + len(PAIRS)))]


def test_values_past_the_counted_ones_still_read_as_seen(demo_events, caplog):
    """A field of more distinct values than are counted (command lines with GUIDs): the rarer
    training values are in the filter, so no training event reads as never seen, and the
    vectors of other events are those of counting every value (filter errors aside)."""
    train, test = demo_events.slice(0, 2_000), demo_events.slice(2_000)
    assert len(pc.unique(train["command_line"])) > 20  # more than the 5 counted below
    every = ValueCounts.fit(train)
    capped = ValueCounts.fit(train, max_values=5)
    assert set(capped.seen) >= {"command_line", "host", "user"}
    assert not _never_seen(capped, train).any()
    rare = train["command_line"].drop_null().to_pylist()
    assert all(capped.value_rarity("command_line", v) < 1.0 for v in rare)  # per event too
    assert capped.value_rarity("command_line", "never.exe") == 1.0
    rebuilt = ValueCounts.from_dict(json.loads(json.dumps(capped.to_dict())))
    np.testing.assert_array_equal(_never_seen(rebuilt, test), _never_seen(every, test))
    # Without the filter (past its own cap too) the rarer ones read as never seen, and fitting
    # says how many.
    with caplog.at_level(logging.WARNING):
        neither = ValueCounts.fit(train, max_values=5, max_seen=0)
    assert _never_seen(neither, train).any()
    assert "command_line has" in caplog.text and "will read as never seen" in caplog.text
